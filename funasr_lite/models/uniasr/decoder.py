"""FunASR's ``FsmnDecoderSCAMAOpt`` (UniASR's decoders): an autoregressive SAN-M decoder whose token
input is the previous token's embedding, concatenated with the CIF embedding of the position
(``concat_embeds``, through ``embed_concat_ffn``), and whose source attention is confined by the
SCAMA chunk mask.

* :meth:`forward` (training, teacher forcing): (encoder output (B, T, E), lengths, input tokens
  (B, L), their lengths, chunk_mask (B, L, T), pre_acoustic_embeds (B, L, E)) -> logits (B, L, V).
* :meth:`score_step` (beam search): one token given the last one, its CIF embedding, the encoder
  output and the mask row of the position, with per-layer FSMN caches -> log-probabilities.

The FSMN of every layer with one (``decoders`` and ``decoders2``) uses ``sanm_shfit`` (default:
(kernel-1)/2, reading earlier tokens only). Submodule names are FunASR's, so its weights load.
"""

from typing import List, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.layer_norm import LayerNorm
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.sanm_attention import SANMCrossAttention, SANMDecoderMemory
from funasr_lite.models.paraformer.decoder_sanm import DecoderFeedForwardSANM, SANMDecoderLayer


class FsmnDecoderSCAMAOpt(nn.Module):
    """See the module docstring; keyword names are FunASR's config keys."""

    def __init__(self, vocab_size: int, encoder_output_size: int, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, self_attention_dropout_rate: float = 0.0,
                 src_attention_dropout_rate: float = 0.0, input_layer: str = "embed", use_output_layer: bool = True,
                 pos_enc_class: str = "PositionalEncoding", normalize_before: bool = True, concat_after: bool = False,
                 att_layer_num: int = 6, kernel_size: int = 21, sanm_shfit: Optional[int] = None,
                 concat_embeds: bool = False, attention_dim: Optional[int] = None,
                 tf2torch_tensor_name_prefix_torch: str = "decoder",
                 tf2torch_tensor_name_prefix_tf: str = "seq2seq/decoder", embed_tensor_name_prefix_tf: str = None):
        super().__init__()
        for name, value, supported in (("input_layer", input_layer, "embed"), ("normalize_before", normalize_before, True),
                                       ("concat_after", concat_after, False), ("use_output_layer", use_output_layer, True)):
            if value != supported:
                raise NotImplementedError(f"FsmnDecoderSCAMAOpt: {name}={value!r} is not supported (only {supported!r})")
        adim = int(attention_dim or encoder_output_size)
        if sanm_shfit is None:
            sanm_shfit = (kernel_size - 1) // 2
        self.vocab_size, self.attention_dim, self.concat_embeds = vocab_size, adim, bool(concat_embeds)

        def layer(with_memory: bool, with_source: bool) -> SANMDecoderLayer:
            return SANMDecoderLayer(
                adim,
                SANMDecoderMemory(adim, self_attention_dropout_rate, kernel_size, sanm_shfit) if with_memory else None,
                SANMCrossAttention(attention_heads, adim, src_attention_dropout_rate, memory_dim=encoder_output_size)
                if with_source else None,
                DecoderFeedForwardSANM(adim, linear_units, dropout_rate), dropout_rate)

        self.embed = nn.Sequential(nn.Embedding(vocab_size, adim))
        self.after_norm = LayerNorm(adim)
        self.output_layer = nn.Linear(adim, vocab_size)
        self.decoders = nn.ModuleList([layer(True, True) for _ in range(att_layer_num)])
        plain = num_blocks - att_layer_num
        self.decoders2 = nn.ModuleList([layer(True, False) for _ in range(plain)]) if plain > 0 else None
        self.decoders3 = nn.ModuleList([layer(False, False)])
        self.embed_concat_ffn = nn.ModuleList([SANMDecoderLayer(
            adim + encoder_output_size, None, None,
            DecoderFeedForwardSANM(adim + encoder_output_size, linear_units, dropout_rate, adim=adim), dropout_rate,
        )]) if concat_embeds else None

    def _memory_layers(self) -> List[SANMDecoderLayer]:
        return list(self.decoders) + list(self.decoders2 or ())

    def _inputs(self, tokens: torch.Tensor, pre_acoustic_embeds: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.embed(tokens)
        if pre_acoustic_embeds is not None and self.concat_embeds:
            x = self.embed_concat_ffn[0](torch.cat([x, pre_acoustic_embeds], dim=-1), None, None, None)
        return x

    def forward(self, encoder_out: torch.Tensor, encoder_out_lens: torch.Tensor, tokens: torch.Tensor,
                token_lengths: torch.Tensor, chunk_mask: Optional[torch.Tensor] = None,
                pre_acoustic_embeds: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        token_mask = sequence_mask(token_lengths, tokens.size(1))
        memory_mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        if chunk_mask is not None:
            memory_mask = memory_mask[:, None, :] & (chunk_mask > 0)
            if memory_mask.size(1) != tokens.size(1):  # FunASR repeats the last-but-one row
                memory_mask = torch.cat([memory_mask, memory_mask[:, -2:-1, :]], dim=1)
        x = self._inputs(tokens, pre_acoustic_embeds)
        for layer in self._memory_layers():
            x = layer(x, token_mask, encoder_out, memory_mask)
        for layer in self.decoders3:
            x = layer(x, token_mask, encoder_out, memory_mask)
        return self.output_layer(self.after_norm(x)), token_lengths

    def score_step(self, last_token: torch.Tensor, pre_acoustic_embed: Optional[torch.Tensor],
                   encoder_out: torch.Tensor, memory_mask: Optional[torch.Tensor],
                   caches: Optional[List[Optional[torch.Tensor]]] = None):
        """FunASR's ``score``/``forward_one_step``: last_token (B,) ids, pre_acoustic_embed (B, E) or
        None, encoder_out (B, T, E), memory_mask (B, 1, T) 0/1 (a SCAMA row) or None ->
        (log-probabilities (B, V), the new per-layer FSMN caches)."""
        layers = self._memory_layers()
        caches = list(caches) if caches is not None else [None] * len(layers)
        embed = None if pre_acoustic_embed is None else pre_acoustic_embed[:, None, :]
        x = self._inputs(last_token[:, None], embed)
        mask = None if memory_mask is None else memory_mask > 0
        for index, layer in enumerate(layers):
            x, caches[index] = layer.forward_step(x, encoder_out, mask if layer.src_attn is not None else None,
                                                  caches[index])
        for layer in self.decoders3:
            x = layer.feed_forward(layer.norm1(x))
        return torch.log_softmax(self.output_layer(self.after_norm(x[:, -1])), dim=-1), caches


__all__ = ["FsmnDecoderSCAMAOpt"]
