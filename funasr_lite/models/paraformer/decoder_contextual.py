"""FunASR's ContextualParaformerDecoder (Contextual Paraformer, CLAS-style hotword biasing).

The SAN-M decoder of :mod:`funasr_lite.models.paraformer.decoder_sanm` with its last source-attention
layer split: ``last_decoder`` gives the layer's state after the FSMN memory (x_self) and its
source attention over the encoder (x_src, no residual); ``bias_decoder`` attends from x_self to
the hotword embeddings (cx); ``bias_output`` (a 1x1 convolution, 2D -> D) mixes x_src with
cx * clas_scale, added to x_self. Submodule names are FunASR's, so its checkpoints load strictly.
"""

from typing import Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.dropout import Dropout
from funasr_lite.models.modules.layer_norm import LayerNorm
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.sanm_attention import SANMCrossAttention
from funasr_lite.models.paraformer.decoder_sanm import ParaformerSANMDecoder


class ContextualBiasDecoder(nn.Module):
    """LN -> source attention over the hotwords -> dropout (FunASR's ContextualBiasDecoder)."""

    def __init__(self, size: int, attention_heads: int, dropout_rate: float, src_attention_dropout_rate: float):
        super().__init__()
        self.src_attn = SANMCrossAttention(attention_heads, size, src_attention_dropout_rate)
        self.norm3 = LayerNorm(size)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, hotwords: torch.Tensor, hotword_mask: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.src_attn(self.norm3(x), hotwords, hotword_mask))


class ContextualParaformerDecoder(ParaformerSANMDecoder):
    """forward(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths, contextual_info (B, N, D),
    clas_scale=1.0) -> (logits (B, L, V), token_lengths)."""

    def __init__(self, vocab_size: int, encoder_output_size: int, attention_heads: int = 4,
                 linear_units: int = 2048, num_blocks: int = 6, dropout_rate: float = 0.1,
                 positional_dropout_rate: float = 0.1, self_attention_dropout_rate: float = 0.0,
                 src_attention_dropout_rate: float = 0.0, input_layer: str = "embed", use_output_layer: bool = True,
                 pos_enc_class: str = "PositionalEncoding", normalize_before: bool = True, concat_after: bool = False,
                 att_layer_num: int = 6, kernel_size: int = 21, sanm_shfit: Optional[int] = 0):
        if att_layer_num < 1:
            raise ValueError(f"ContextualParaformerDecoder needs att_layer_num >= 1, got {att_layer_num}")
        # decoders: att_layer_num - 1 layers; decoders2: num_blocks - att_layer_num (as FunASR)
        super().__init__(vocab_size, encoder_output_size, attention_heads, linear_units, num_blocks - 1, dropout_rate,
                         positional_dropout_rate, self_attention_dropout_rate, src_attention_dropout_rate,
                         input_layer, use_output_layer, False, pos_enc_class, normalize_before, concat_after,
                         att_layer_num - 1, kernel_size, sanm_shfit)
        shift = (kernel_size - 1) // 2 if sanm_shfit is None else sanm_shfit
        self.last_decoder = self.make_layer(attention_heads, linear_units, dropout_rate, self_attention_dropout_rate,
                                            src_attention_dropout_rate, kernel_size, shift)
        self.bias_decoder = ContextualBiasDecoder(encoder_output_size, attention_heads, dropout_rate,
                                                  src_attention_dropout_rate)
        self.bias_output = nn.Conv1d(encoder_output_size * 2, encoder_output_size, 1, bias=False)
        self.dropout = Dropout(dropout_rate)

    def forward_hidden(self, encoder_out, encoder_out_lens, acoustic_embeds, token_lengths,
                       contextual_info: Optional[torch.Tensor] = None, clas_scale: float = 1.0) -> torch.Tensor:
        if contextual_info is None:
            raise ValueError("ContextualParaformerDecoder needs contextual_info (the hotword embeddings)")
        token_mask = sequence_mask(token_lengths, acoustic_embeds.size(1))
        memory_mask = sequence_mask(encoder_out_lens, encoder_out.size(1))
        x = acoustic_embeds
        for layer in self.decoders:
            x = layer(x, token_mask, encoder_out, memory_mask)
        last = self.last_decoder
        x_self = x + last.dropout(last.self_attn(last.norm2(last.feed_forward(last.norm1(x))), token_mask))
        x_src = last.src_attn(last.norm3(x_self), encoder_out, memory_mask)
        hotword_mask = torch.ones(contextual_info.shape[:2], dtype=torch.bool, device=contextual_info.device)
        cx = self.bias_decoder(x_self, contextual_info, hotword_mask)
        mixed = self.bias_output(torch.cat([x_src, cx * clas_scale], dim=2).transpose(1, 2)).transpose(1, 2)
        x = x_self + self.dropout(mixed)
        for layer in self.decoders2 or ():
            x = layer(x, token_mask, encoder_out, memory_mask)
        for layer in self.decoders3:
            x = layer(x, token_mask, encoder_out, memory_mask)
        return self.after_norm(x)

    def forward(self, encoder_out, encoder_out_lens, acoustic_embeds, token_lengths,
                contextual_info: Optional[torch.Tensor] = None, clas_scale: float = 1.0
                ) -> Tuple[torch.Tensor, torch.Tensor]:
        hidden = self.forward_hidden(encoder_out, encoder_out_lens, acoustic_embeds, token_lengths,
                                     contextual_info, clas_scale)
        return self.output_layer(hidden), token_lengths


__all__ = ["ContextualBiasDecoder", "ContextualParaformerDecoder"]
