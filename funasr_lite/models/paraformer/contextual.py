"""Contextual Paraformer (FunASR's ``ContextualParaformer``, CLAS-style hotword biasing).

Hotwords (token-id lists, ``<s>`` last) are embedded with ``bias_embed`` (or the decoder's
embedding with ``use_decoder_embedding``) and a 1-layer LSTM whose last state is each hotword's
vector; the decoder (:class:`ContextualParaformerDecoder`) attends to them in its last
source-attention layer. Trained with the Paraformer loss, the hotwords of each batch sampled from
its transcripts. Without hotwords it is biased with ``<s>`` alone, as FunASR does.
"""

from typing import Dict, Optional, Sequence

import torch
from torch import nn

from funasr_lite.models.paraformer.model import Paraformer
from funasr_lite.models.paraformer.seaco import HotwordContext, pad_hotwords


class ContextualParaformer(Paraformer):
    """Paraformer + bias_embed + bias_encoder (FunASR names) + a ContextualParaformerDecoder."""

    takes_hotwords = True

    def __init__(self, *args, inner_dim: int = 256, bias_encoder_type: str = "lstm",
                 use_decoder_embedding: bool = False, crit_attn_weight: float = 0.0, crit_attn_smooth: float = 0.0,
                 bias_encoder_dropout_rate: float = 0.0, target_buffer_length: int = -1, **kwargs):
        super().__init__(*args, **kwargs)
        if bias_encoder_type != "lstm":
            raise ValueError(f"bias_encoder_type={bias_encoder_type!r}: only lstm is supported")
        if not hasattr(self.decoder, "bias_decoder"):
            raise ValueError(f"ContextualParaformer needs decoder ContextualParaformerDecoder, "
                             f"got {type(self.decoder).__name__}")
        if crit_attn_weight:
            raise ValueError("crit_attn_weight: FunASR computes no such loss (its code is commented out)")
        self.bias_encoder = nn.LSTM(inner_dim, inner_dim, 1, batch_first=True)
        self.bias_embed = nn.Embedding(self.vocab_size, inner_dim)
        self.use_decoder_embedding = use_decoder_embedding
        self.inner_dim = inner_dim

    def hotword_embeddings(self, hotword_pad: torch.Tensor, hotword_lengths: torch.Tensor) -> torch.Tensor:
        """(N, L) ids padded with 0, (N,) lengths -> (N, D): the LSTM's state after each last token."""
        embed = self.decoder.embed if self.use_decoder_embedding else self.bias_embed
        packed = nn.utils.rnn.pack_padded_sequence(embed(hotword_pad), hotword_lengths.cpu().long(),
                                                   batch_first=True, enforce_sorted=False)
        return self.bias_encoder(packed)[1][0][0]

    @torch.no_grad()
    def hotword_context(self, hotwords: Sequence[Sequence[int]], nfilter: int = 0,
                        seaco_weight: float = 1.0) -> HotwordContext:
        """Token-id lists (``<s>`` last) -> embeddings (no filter: FunASR's Contextual has none)."""
        pad, lengths = pad_hotwords(hotwords, self.bias_embed.weight.device)
        return HotwordContext(self.hotword_embeddings(pad, lengths), 0, 1.0)

    def _contextual_info(self, batch: int, context: Optional[HotwordContext]) -> torch.Tensor:
        if context is None:  # FunASR biases with <s> alone when there are no hotwords
            context = self.hotword_context([[self.sos]])
        return context.embeddings.unsqueeze(0).expand(batch, -1, -1)

    def decoder_log_probs(self, encoder_out, encoder_out_lens, acoustic_embeds, token_lengths,
                          context: Optional[HotwordContext] = None):
        info = self._contextual_info(encoder_out.size(0), context)
        logits = self.decoder(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths, contextual_info=info)[0]
        return torch.log_softmax(logits, dim=-1)

    def forward(self, speech, speech_lengths, text, text_lengths, hotword_pad: Optional[torch.Tensor] = None,
                hotword_lengths: Optional[torch.Tensor] = None, seaco_label_pad=None):
        """The Paraformer loss with the decoder biased by the batch's hotwords (FunASR's forward)."""
        if hotword_pad is None or hotword_lengths is None:
            raise ValueError("ContextualParaformer training needs hotword_pad and hotword_lengths "
                             "(the hotword batch of the data loader)")
        self._training_hotwords = (hotword_pad, hotword_lengths)
        try:
            return super().forward(speech, speech_lengths, text, text_lengths)
        finally:
            self._training_hotwords = None

    def decoder_kwargs(self, batch: int) -> Dict[str, torch.Tensor]:
        pad, lengths = getattr(self, "_training_hotwords", None) or (None, None)
        if pad is None:
            return {"contextual_info": self._contextual_info(batch, None)}
        return {"contextual_info": self.hotword_embeddings(pad, lengths).unsqueeze(0).expand(batch, -1, -1)}


__all__ = ["ContextualParaformer"]
