"""Transformer attention decoder (autoregressive): FunASR's ``TransformerDecoder``.

Token embedding + absolute position encoding -> N x (causal self-attention -> cross-attention
-> FFN) -> LayerNorm -> Linear(vocab). Parameter names follow FunASR (``embed.0``,
``decoders.N.{self_attn,src_attn,feed_forward,norm1..3}``, ``after_norm``, ``output_layer``), so
its ``decoder_conf`` builds this and its checkpoints load strictly.

Two ways to run it:
* :meth:`TransformerDecoder.forward`: teacher forcing over whole target prefixes (training);
* :meth:`TransformerDecoder.forward_one_step`: the next-token log-probs of N prefixes, with a
  per-layer cache of the previous step's layer outputs (search), as FunASR's
  ``forward_one_step``; only the last position is computed when a cache is given.
"""

from typing import List, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.attention import MultiHeadedAttention
from funasr_lite.models.modules.feed_forward import PositionwiseFeedForward
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.modules.rel_position import PositionalEncoding
from funasr_lite.models.paraformer.decoder_san import LAYER_NORM_EPS, SANDecoderLayer

DecoderCache = List[torch.Tensor]  # per layer (N, U, D): that layer's outputs for the prefix


def causal_mask(length: int, device=None) -> torch.Tensor:
    """(L, L) bool, True where key j <= query i."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


class TransformerDecoderLayer(SANDecoderLayer):
    """The SAN layer's parameters and pre/post-norm rules, run causally and step by step."""

    def forward_last(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: Optional[torch.Tensor],
        cache: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """x (N, U, D) the layer input for the whole prefix -> (N, U, D) its output.

        With a cache (N, U-1, D) (this layer's output for the prefix without its last token),
        only the last position is computed and appended to it; without one, every position is
        computed under a causal mask.
        """
        y = self.norm1(x) if self.normalize_before else x
        if cache is None:
            query, residual, self_mask = y, x, causal_mask(x.size(1), x.device).unsqueeze(0)
        else:
            query, residual, self_mask = y[:, -1:], x[:, -1:], None
        attended = self.self_attn(query, y, y, self_mask)
        if self.concat_after:
            h = residual + self.concat_linear1(torch.cat([query, attended], dim=-1))
        else:
            h = residual + self.dropout(attended)
        if not self.normalize_before:
            h = self.norm1(h)
        h = self._attention_block(
            h, self.norm2, lambda z: self.src_attn(z, memory, memory, memory_mask),
            getattr(self, "concat_linear2", None),
        )
        z = self.norm3(h) if self.normalize_before else h
        h = h + self.dropout(self.feed_forward(z))
        if not self.normalize_before:
            h = self.norm3(h)
        return h if cache is None else torch.cat([cache, h], dim=1)


class TransformerDecoder(nn.Module):
    """forward(hs_pad (B, T, D), hlens (B,), ys_in_pad (B, L) ids, ys_in_lens (B,))
    -> (logits (B, L, V), ys_in_lens)."""

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
    ):
        super().__init__()
        if input_layer != "embed":
            raise NotImplementedError(f"input_layer={input_layer!r}: only 'embed'")
        if not use_output_layer:
            raise NotImplementedError("use_output_layer=False: the decoder must produce token scores")
        attention_dim = encoder_output_size
        self.vocab_size = vocab_size
        self.embed = nn.Sequential(
            nn.Embedding(vocab_size, attention_dim),
            PositionalEncoding(attention_dim, positional_dropout_rate),
        )
        self.decoders = nn.ModuleList(
            TransformerDecoderLayer(
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
        self.output_layer = nn.Linear(attention_dim, vocab_size)

    def _output(self, x: torch.Tensor) -> torch.Tensor:
        if self.normalize_before:
            x = self.after_norm(x)
        return self.output_layer(x)

    def forward(
        self,
        hs_pad: torch.Tensor,
        hlens: torch.Tensor,
        ys_in_pad: torch.Tensor,
        ys_in_lens: torch.Tensor,
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        length = ys_in_pad.size(1)
        # (B, L, L): causal, and padded keys masked.
        tgt_mask = sequence_mask(ys_in_lens, length).unsqueeze(1) & causal_mask(length, ys_in_pad.device).unsqueeze(0)
        memory_mask = sequence_mask(hlens, hs_pad.size(1))
        x = self.embed(ys_in_pad)
        for layer in self.decoders:
            x = layer(x, tgt_mask, hs_pad, memory_mask)
        return self._output(x), ys_in_lens

    def forward_one_step(
        self,
        tokens: torch.Tensor,
        memory: torch.Tensor,
        memory_mask: Optional[torch.Tensor] = None,
        cache: Optional[DecoderCache] = None,
    ) -> Tuple[torch.Tensor, DecoderCache]:
        """Next-token log-probs of N prefixes.

        tokens (N, U) ids starting with ``<s>``; memory (N, T, D) encoder output; memory_mask
        (N, T) True = valid frame (None: every frame, as FunASR's search of one utterance);
        cache None or what the call for the same prefixes without their last token returned
        (rows reordered with :meth:`select_cache`). Returns (N, V) log-probs and the new cache.
        """
        if cache is not None and (len(cache) != len(self.decoders) or cache[0].size(1) != tokens.size(1) - 1):
            raise ValueError(f"decoder cache does not match prefixes of length {tokens.size(1)}")
        x = self.embed(tokens)
        new_cache: DecoderCache = []
        for index, layer in enumerate(self.decoders):
            x = layer.forward_last(x, memory, memory_mask, None if cache is None else cache[index])
            new_cache.append(x)
        return torch.log_softmax(self._output(x[:, -1]), dim=-1), new_cache

    @staticmethod
    def select_cache(cache: DecoderCache, rows: torch.Tensor) -> DecoderCache:
        """Keep/reorder/repeat cache rows: rows (M,) indices into N -> per layer (M, U, D)."""
        return [layer_cache.index_select(0, rows) for layer_cache in cache]


__all__ = ["DecoderCache", "TransformerDecoder", "TransformerDecoderLayer", "causal_mask"]
