"""ParaformerBert: Paraformer trained with a BERT-embedding distillation loss (FunASR 0.x's
``ParaformerBert``, the seed's AISHELL-1/2 academic models; funasr 1.x no longer has the class).

Training adds one term: the hidden state after decoder layer ``embeds_id`` (0-based, the pass that
makes the logits), projected by ``pro_nn`` (decoder width -> ``embed_dims``, 768 for
bert-base-chinese), is pulled toward the per-token BERT embedding of the transcript by a cosine
loss::

    cos_loss = sum over valid tokens of (1 - cos(pro_nn(h), e)) / (B, or the token count with
               length_normalized_loss)
    loss = Paraformer's loss + embeds_loss_weight * cos_loss

The embeddings come with each batch (``embed`` (B, L, embed_dims), ``embed_lengths``: a data
dir's ``embeds.scp``, Kaldi matrices of L x embed_dims per utterance). Decoding is Paraformer's
(``pro_nn`` is unused), so a model dir decodes as a Paraformer dir with the same weights does.
"""

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.model import Paraformer


def cosine_distillation_loss(projected: torch.Tensor, embed: torch.Tensor, lengths: torch.Tensor,
                             length_normalized: bool) -> torch.Tensor:
    """FunASR's ``_calc_embed_loss`` after ``pro_nn``: projected, embed (B, L, D); lengths (B,)
    -> sum of (1 - cosine) over the valid tokens / (B, or the token count). Cosine eps 1e-6 on
    the zeroed padding, as FunASR's torch.nn.CosineSimilarity."""
    mask = sequence_mask(lengths, projected.size(1)).unsqueeze(-1).to(projected.dtype)
    cosine = nn.functional.cosine_similarity(projected * mask, embed * mask, dim=-1, eps=1e-6)
    total = ((1.0 - cosine) * mask.squeeze(-1)).sum()
    return total / (mask.sum() if length_normalized else lengths.size(0))


class ParaformerBert(Paraformer):
    """Paraformer + ``pro_nn`` (FunASR's name) + the distillation loss of the module docstring."""

    def __init__(self, *args, embeds_id: int = 2, embeds_loss_weight: float = 0.0, embed_dims: int = 768,
                 **kwargs):
        super().__init__(*args, **kwargs)
        layers = getattr(self.decoder, "decoders", None)
        if layers is None or not 0 <= embeds_id < len(layers):
            raise ValueError(f"embeds_id={embeds_id}: the decoder has {len(layers or [])} layers (0-based index)")
        if self.predictor_bias != 0:
            # FunASR's loss masks the decoder states by the transcript length; with </s> appended
            # they are one longer and its shapes do not meet.
            raise ValueError("ParaformerBert needs predictor_bias 0 (the decoder states align with the transcript)")
        self.embeds_id = embeds_id
        self.embeds_loss_weight = embeds_loss_weight
        self.embed_dims = embed_dims
        width = self.decoder.output_layer.in_features
        self.pro_nn = nn.Linear(width, embed_dims)
        self._layer_states: Optional[torch.Tensor] = None
        # The states after layer embeds_id of the latest decoder call: in training the last call
        # is the pass whose logits make the loss (after the sampler's first pass), as in FunASR.
        layers[embeds_id].register_forward_hook(self._keep_layer_states)

    def _keep_layer_states(self, module, inputs, output) -> None:
        self._layer_states = output[0] if isinstance(output, tuple) else output

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, text: torch.Tensor,
                text_lengths: torch.Tensor, embed: Optional[torch.Tensor] = None,
                embed_lengths: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, Dict[str, torch.Tensor], torch.Tensor]:
        """Paraformer's loss, + embeds_loss_weight * cos_loss when ``embed`` is given (stats
        ``cos_loss``: 0 without embeddings, e.g. a validation set that has none)."""
        text = text[:, : int(text_lengths.max())]
        encoder_out, encoder_out_lens = self.encode(speech, speech_lengths)
        self._layer_states = None
        loss, stats, weight = self.losses(encoder_out, encoder_out_lens, text, text_lengths)
        cos_loss = loss.new_zeros(())
        if embed is not None:
            if embed_lengths is not None and not torch.equal(embed_lengths.to(text_lengths.device), text_lengths):
                raise ValueError(f"embedding lengths {embed_lengths.tolist()} differ from the transcripts' "
                                 f"{text_lengths.tolist()}")
            states = self._layer_states[:, : text.size(1)]
            cos_loss = cosine_distillation_loss(self.pro_nn(states), embed[:, : text.size(1)].to(states.dtype),
                                                text_lengths, self.length_normalized_loss)
            loss = loss + self.embeds_loss_weight * cos_loss
        stats["cos_loss"] = cos_loss.detach()
        stats["loss"] = loss.detach()
        return loss, stats, weight
