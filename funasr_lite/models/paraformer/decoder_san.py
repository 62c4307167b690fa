"""Paraformer SAN decoder (docs/spec.md §5): bidirectional Transformer decoder layers over the CIF
embeddings, used by the from-scratch AISHELL-1 recipe. Names follow FunASR's
`ParaformerSANDecoder`, so its `decoder_conf` builds this and its checkpoints load strictly.
"""

from typing import Tuple

import torch
from torch import nn

from funasr_lite.models.modules.attention import MultiHeadedAttention
from funasr_lite.models.modules.dropout import Dropout
from funasr_lite.models.modules.feed_forward import PositionwiseFeedForward
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.rel_position import PositionalEncoding

LAYER_NORM_EPS = 1e-12


class SANDecoderLayer(nn.Module):
    """Self-attention (padding mask only, not causal) -> cross-attention -> FFN. (B, L, D)."""

    def __init__(
        self,
        size: int,
        self_attn: MultiHeadedAttention,
        src_attn: MultiHeadedAttention,
        feed_forward: PositionwiseFeedForward,
        dropout_rate: float,
        normalize_before: bool = True,
        concat_after: bool = False,
    ):
        super().__init__()
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        self.norm2 = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        self.norm3 = nn.LayerNorm(size, eps=LAYER_NORM_EPS)
        self.dropout = Dropout(dropout_rate)
        self.normalize_before = normalize_before
        self.concat_after = concat_after
        if concat_after:
            self.concat_linear1 = nn.Linear(2 * size, size)
            self.concat_linear2 = nn.Linear(2 * size, size)

    def _attention_block(self, x, norm, attend, concat_linear):
        """x + dropout(attend(norm(x))), or x + concat_linear([norm(x), attend(norm(x))])."""
        y = norm(x) if self.normalize_before else x
        attended = attend(y)
        if self.concat_after:
            x = x + concat_linear(torch.cat([y, attended], dim=-1))
        else:
            x = x + self.dropout(attended)
        return x if self.normalize_before else norm(x)

    def forward(self, x, tgt_mask, memory, memory_mask) -> torch.Tensor:
        """x (B, L, D), tgt_mask (B, L), memory (B, T, D), memory_mask (B, T); True = valid."""
        x = self._attention_block(
            x, self.norm1, lambda y: self.self_attn(y, y, y, tgt_mask), getattr(self, "concat_linear1", None)
        )
        x = self._attention_block(
            x,
            self.norm2,
            lambda y: self.src_attn(y, memory, memory, memory_mask),
            getattr(self, "concat_linear2", None),
        )
        y = self.norm3(x) if self.normalize_before else x
        x = x + self.dropout(self.feed_forward(y))
        return x if self.normalize_before else self.norm3(x)


class ParaformerSANDecoder(nn.Module):
    """forward(hs_pad (B, T, D), hlens (B,), ys_in_pad (B, L, D), ys_in_lens (B,))
    -> (logits (B, L, V), ys_in_lens).

    `ys_in_pad` are acoustic embeddings (CIF output, or the sampler's mix), fed to the
    layers as they are: no token embedding and no position encoding on this path.

    `embed` = Sequential(Embedding(V, D), PositionalEncoding): `embed(token_ids (B, L))`
    -> (B, L, D) = dropout(E[ids] * sqrt(D) + PE(0..L-1)). Only the glancing sampler uses
    it, to put target-token embeddings in place of CIF embeddings (as FunASR does).
    """

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
        input_layer: str = "embed",
        use_output_layer: bool = True,
        normalize_before: bool = True,
        concat_after: bool = False,
        embeds_id: int = -1,
    ):
        super().__init__()
        if input_layer != "embed":
            raise NotImplementedError(f"input_layer={input_layer!r}: only 'embed'")
        if embeds_id != -1:
            raise NotImplementedError("returning intermediate embeddings (embeds_id) is not supported")
        attention_dim = encoder_output_size
        self.embed = nn.Sequential(
            nn.Embedding(vocab_size, attention_dim),
            PositionalEncoding(attention_dim, positional_dropout_rate),
        )
        self.decoders = nn.ModuleList(
            SANDecoderLayer(
                attention_dim,
                MultiHeadedAttention(attention_heads, attention_dim, self_attention_dropout_rate),
                MultiHeadedAttention(attention_heads, attention_dim, src_attention_dropout_rate),
                PositionwiseFeedForward(attention_dim, linear_units, dropout_rate),
                dropout_rate,
                normalize_before,
                concat_after,
            )
            for _ in range(num_blocks)
        )
        self.normalize_before = normalize_before
        if normalize_before:
            self.after_norm = nn.LayerNorm(attention_dim, eps=LAYER_NORM_EPS)
        self.output_layer = nn.Linear(attention_dim, vocab_size) if use_output_layer else None

    def forward(
        self,
        hs_pad: torch.Tensor,
        hlens: torch.Tensor,
        ys_in_pad: torch.Tensor,
        ys_in_lens: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        tgt_mask = sequence_mask(ys_in_lens, ys_in_pad.size(1))
        memory_mask = sequence_mask(hlens, hs_pad.size(1))
        x = ys_in_pad
        for layer in self.decoders:
            x = layer(x, tgt_mask, hs_pad, memory_mask)
        if self.normalize_before:
            x = self.after_norm(x)
        if self.output_layer is not None:
            x = self.output_layer(x)
        return x, ys_in_lens
