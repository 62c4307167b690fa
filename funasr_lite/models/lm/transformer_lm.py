"""Causal Transformer token LM for shallow fusion in beam search.

The module layout and parameter names follow the ESPnet/FunASR ``TransformerLM`` (as in the
released ``speech_transformer_lm_zh-cn-common-vocab8404`` model, whose checkpoint keys carry an
extra ``lm.`` prefix that :func:`strip_lm_prefix` removes)::

    embed.weight                               token embedding (V, embed_unit)
    encoder.embed.0.{weight,bias}              Linear(embed_unit, att_unit)
    encoder.embed.1.{weight,bias}              LayerNorm(att_unit), eps 1e-5 (torch default)
    encoder.encoders.N.self_attn.linear_{q,k,v,out}.{weight,bias}
    encoder.encoders.N.feed_forward.w_{1,2}.{weight,bias}
    encoder.encoders.N.norm{1,2}.{weight,bias}  LayerNorm eps 1e-12, pre-norm
    encoder.after_norm.{weight,bias}
    decoder.{weight,bias}                      Linear(att_unit, V)

Constructor arguments use the ESPnet ``lm_conf`` names (embed_unit, att_unit, head, unit,
layer, pos_enc) so a FunASR LM config reads unchanged. Token ids come from the ASR model's
tokens.txt: ``<s>`` (1) starts every sentence and ``</s>`` (2) ends it.
"""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import nn

from funasr_lite.models.modules.attention import MultiHeadedAttention
from funasr_lite.models.modules.dropout import Dropout
from funasr_lite.models.modules.feed_forward import PositionwiseFeedForward
from funasr_lite.models.modules.layer_norm import LayerNorm
from funasr_lite.models.modules.mask import sequence_mask

SOS_ID = 1
EOS_ID = 2
CHECKPOINT_PREFIX = "lm."

# Per layer, the layer's outputs for the positions already seen: List[(N, U-1, att_unit)].
LMCache = List[torch.Tensor]


def causal_mask(size: int, device=None) -> torch.Tensor:
    """(size, size) bool, True where query position i may attend key position j (j <= i)."""
    return torch.ones(size, size, dtype=torch.bool, device=device).tril()


class SinusoidalPositionalEncoding(nn.Module):
    """ESPnet's PositionalEncoding: x * sqrt(d) + PE, positions from 0, sin/cos interleaved.

    (B, U, d) -> (B, U, d). Parameter-free.
    """

    def __init__(self, dim: int, dropout_rate: float):
        super().__init__()
        self.dim = dim
        self.dropout = Dropout(dropout_rate)

    def encoding(self, num_positions: int, dtype, device) -> torch.Tensor:
        """(num_positions, dim): even channels sin(p * w_i), odd channels cos(p * w_i)."""
        positions = torch.arange(num_positions, dtype=torch.float32, device=device)[:, None]
        frequencies = torch.exp(
            torch.arange(0, self.dim, 2, dtype=torch.float32, device=device) * -(math.log(10000.0) / self.dim)
        )
        table = torch.zeros(num_positions, self.dim, device=device)
        table[:, 0::2] = torch.sin(positions * frequencies)
        table[:, 1::2] = torch.cos(positions * frequencies)
        return table.to(dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        table = self.encoding(x.size(1), x.dtype, x.device)
        return self.dropout(x * math.sqrt(self.dim) + table[None])


class LMEncoderLayer(nn.Module):
    """Pre-norm Transformer layer: x + drop(SelfAttn(LN1 x)), then x + drop(FFN(LN2 x))."""

    def __init__(self, att_unit: int, head: int, unit: int, dropout_rate: float, attention_dropout_rate: float):
        super().__init__()
        self.self_attn = MultiHeadedAttention(head, att_unit, attention_dropout_rate)
        self.feed_forward = PositionwiseFeedForward(att_unit, unit, dropout_rate)
        self.norm1 = LayerNorm(att_unit)
        self.norm2 = LayerNorm(att_unit)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """x (B, U, D), mask (B or 1, U, U) True = may attend -> (B, U, D).

        With ``last_only`` only the last position is computed (keys still span all U
        positions): x (B, U, D), mask (B or 1, 1, U) -> (B, 1, D).
        """
        normed = self.norm1(x)
        query, residual = (normed[:, -1:], x[:, -1:]) if last_only else (normed, x)
        x = residual + self.dropout(self.self_attn(query, normed, normed, mask))
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class LMEncoder(nn.Module):
    """Linear input layer (+ optional position encoding), causal layers, final LayerNorm."""

    def __init__(
        self,
        embed_unit: int,
        att_unit: int,
        head: int,
        unit: int,
        layer: int,
        dropout_rate: float,
        attention_dropout_rate: float,
        pos_enc: Optional[str],
    ):
        super().__init__()
        if pos_enc == "sinusoidal":
            position = SinusoidalPositionalEncoding(att_unit, dropout_rate)
        elif pos_enc is None:
            position = nn.Identity()  # causal attention alone carries the order (ESPnet's default)
        else:
            raise ValueError(f"unknown pos_enc {pos_enc!r} (expected 'sinusoidal' or null)")
        self.embed = nn.Sequential(
            nn.Linear(embed_unit, att_unit),
            nn.LayerNorm(att_unit),
            Dropout(dropout_rate),
            nn.ReLU(),
            position,
        )
        self.encoders = nn.ModuleList(
            LMEncoderLayer(att_unit, head, unit, dropout_rate, attention_dropout_rate) for _ in range(layer)
        )
        self.after_norm = LayerNorm(att_unit)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Embedded tokens (B, U, embed_unit) -> hidden states (B, U, att_unit), causally."""
        x = self.embed(x)
        mask = causal_mask(x.size(1), x.device)[None]
        for layer in self.encoders:
            x = layer(x, mask)
        return self.after_norm(x)

    def forward_last(self, x: torch.Tensor, cache: Optional[LMCache]) -> Tuple[torch.Tensor, LMCache]:
        """Hidden state of the last position only, reusing the layer outputs of earlier ones.

        x (N, U, embed_unit) the whole prefix; cache None or per layer (N, U-1, att_unit).
        Returns (N, att_unit) and the new cache, per layer (N, U, att_unit).
        """
        if cache is None:
            hidden = self.embed(x)
            new_cache = []
            mask = causal_mask(x.size(1), x.device)[None]
            for layer in self.encoders:
                hidden = layer(hidden, mask)
                new_cache.append(hidden)
            return self.after_norm(hidden[:, -1]), new_cache
        if len(cache) != len(self.encoders) or cache[0].size(1) != x.size(1) - 1:
            raise ValueError(f"cache does not match a prefix of length {x.size(1)}")
        layer_input = self.embed(x)  # every position: layer 0 attends over all embeddings
        new_cache = []
        for layer, layer_cache in zip(self.encoders, cache):
            output = layer(layer_input, None, last_only=True)  # the last query may see every key
            layer_input = torch.cat([layer_cache, output], dim=1)
            new_cache.append(layer_input)
        return self.after_norm(layer_input[:, -1]), new_cache


class TransformerLM(nn.Module):
    """Causal Transformer LM over ASR token ids.

    Args:
        vocab_size: V, the size of the ASR token list.
        embed_unit: token embedding size.
        att_unit: model width d.
        head: attention heads.
        unit: feed-forward hidden size.
        layer: number of layers.
        dropout_rate: dropout after attention/FFN/input layer (and in the position encoding).
        attention_dropout_rate: dropout on attention weights.
        pos_enc: "sinusoidal" or None (ESPnet's default: no position encoding).
        sos_id, eos_id: ``<s>`` and ``</s>`` ids.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_unit: int = 128,
        att_unit: int = 256,
        head: int = 4,
        unit: int = 1024,
        layer: int = 2,
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        pos_enc: Optional[str] = None,
        sos_id: int = SOS_ID,
        eos_id: int = EOS_ID,
    ):
        super().__init__()
        if not (0 <= sos_id < vocab_size and 0 <= eos_id < vocab_size):
            raise ValueError(f"sos_id={sos_id}, eos_id={eos_id} must be < vocab_size={vocab_size}")
        self.vocab_size = vocab_size
        self.sos_id = sos_id
        self.eos_id = eos_id
        self.embed = nn.Embedding(vocab_size, embed_unit)
        self.encoder = LMEncoder(embed_unit, att_unit, head, unit, layer, dropout_rate, attention_dropout_rate, pos_enc)
        self.decoder = nn.Linear(att_unit, vocab_size)

    def log_probs(self, inputs: torch.Tensor) -> torch.Tensor:
        """Token ids (B, U) -> next-token log-probs (B, U, V); position u sees inputs[:, :u+1]."""
        hidden = self.encoder(self.embed(inputs))
        return torch.log_softmax(self.decoder(hidden), dim=-1)

    def add_sos_eos(self, ys: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Sentences ys (B, U) of ``lengths`` (B,) -> inputs ``<s> y`` and targets ``y </s>`` (B, U+1).

        Positions past a sentence's end hold 0 in both (masked out of the loss by lengths + 1).
        """
        batch_size = ys.size(0)
        valid = sequence_mask(lengths, ys.size(1))
        ys = ys.masked_fill(~valid, 0)
        sos_column = torch.full((batch_size, 1), self.sos_id, dtype=ys.dtype, device=ys.device)
        inputs = torch.cat([sos_column, ys], dim=1)
        targets = torch.cat([ys, torch.zeros_like(sos_column)], dim=1)
        targets[torch.arange(batch_size, device=ys.device), lengths] = self.eos_id
        return inputs, targets

    def forward(self, ys: torch.Tensor, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Negative log-likelihood of each sentence, ``</s>`` included.

        ys (B, U) token ids without ``<s>``/``</s>`` (anything past ``lengths`` is ignored),
        lengths (B,). Returns nll (B,) summed over each sentence's U_b + 1 predictions and
        token_counts (B,) = lengths + 1; perplexity = exp(sum nll / sum token_counts).
        """
        inputs, targets = self.add_sos_eos(ys, lengths)
        logp = self.log_probs(inputs)
        target_logp = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, U+1)
        token_counts = lengths + 1
        valid = sequence_mask(token_counts, inputs.size(1))
        nll = -(target_logp * valid).sum(dim=1)
        return nll, token_counts

    @torch.no_grad()
    def score(self, prefixes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log-probs of the next token after each prefix.

        prefixes (N, U) token ids starting with ``<s>``, right-padded (anything past a row's
        length is ignored, as attention is causal); lengths (N,) >= 1. Returns (N, V).
        """
        if (lengths < 1).any():
            raise ValueError("every prefix needs at least <s>")
        logp = self.log_probs(prefixes)
        last = (lengths - 1).to(torch.long)
        return logp[torch.arange(prefixes.size(0), device=prefixes.device), last]

    @torch.no_grad()
    def score_step(self, prefixes: torch.Tensor, cache: Optional[LMCache] = None) -> Tuple[torch.Tensor, LMCache]:
        """Incremental :meth:`score` for prefixes of one length U (what a beam search holds).

        prefixes (N, U) starting with ``<s>``; cache None or what the call for the same
        prefixes without their last token returned (rows reordered with :meth:`select_cache`).
        Returns log-probs (N, V) and the cache for these prefixes.
        """
        hidden, cache = self.encoder.forward_last(self.embed(prefixes), cache)
        return torch.log_softmax(self.decoder(hidden), dim=-1), cache

    @staticmethod
    def select_cache(cache: LMCache, rows: torch.Tensor) -> LMCache:
        """Keep/reorder/repeat cache rows: rows (M,) indices into N -> per layer (M, U, D)."""
        return [layer_cache.index_select(0, rows) for layer_cache in cache]


def strip_lm_prefix(state_dict):
    """FunASR/ESPnet LM checkpoints prefix every key with ``lm.``; drop it (other keys kept)."""
    return {
        (key[len(CHECKPOINT_PREFIX):] if key.startswith(CHECKPOINT_PREFIX) else key): value
        for key, value in state_dict.items()
    }
