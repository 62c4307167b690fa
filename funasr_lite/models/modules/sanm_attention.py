"""SAN-M attention blocks: self-attention with an FSMN memory, decoder FSMN memory, cross-attention.

Parameter names (linear_q_k_v, linear_out, fsmn_block, linear_q, linear_k_v) follow FunASR so that
released checkpoints load with strict=True.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from funasr_lite.models.modules.dropout import Dropout, dropout


def fsmn_padding(kernel_size: int, sanm_shift: int) -> tuple:
    """(left, right) zero padding of the FSMN conv; a positive shift looks further into the past."""
    left = (kernel_size - 1) // 2 + max(sanm_shift, 0)
    right = kernel_size - 1 - left
    if right < 0:
        raise ValueError(f"sanm_shfit={sanm_shift} too large for kernel_size={kernel_size}")
    return left, right


def apply_fsmn(
    conv: nn.Conv1d,
    inputs: torch.Tensor,
    mask: Optional[torch.Tensor],
    padding: tuple,
    dropout: nn.Module,
) -> torch.Tensor:
    """FSMN memory: depthwise conv over time plus the input itself.

    inputs (B, T, D); mask (B, T) bool, True = valid. Padded frames are zeroed before the conv so
    they never leak into valid frames, and zeroed again at the output.
    """
    if mask is not None:
        mask = mask.unsqueeze(-1).to(inputs.dtype)
        inputs = inputs * mask
    x = F.pad(inputs.transpose(1, 2), padding)
    x = conv(x).transpose(1, 2) + inputs
    x = dropout(x)
    if mask is not None:
        x = x * mask
    return x


def _split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, T, H*d) -> (B, H, T, d)."""
    batch, length, dim = x.shape
    return x.view(batch, length, num_heads, dim // num_heads).transpose(1, 2)


def _masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: Optional[torch.Tensor], dropout_p: float
) -> torch.Tensor:
    """Scaled dot-product attention over (B, H, T, d) tensors; key_mask (B, Tk) bool -> (B, Tq, H*d).

    With dropout on the CPU the weights are computed here and dropped by :func:`dropout` (the fused
    kernel would draw its mask with ``bernoulli_``, 4 % of a demo training step); the same function."""
    if dropout_p > 0.0 and q.device.type == "cpu":
        scores = torch.matmul(q, k.transpose(-2, -1)) / q.size(-1) ** 0.5
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, None, :], float("-inf"))
        out = torch.matmul(dropout(torch.softmax(scores, dim=-1), dropout_p), v)
        batch, heads, length, dim = out.shape
        return out.transpose(1, 2).reshape(batch, length, heads * dim)
    attn_mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)
    batch, heads, length, dim = out.shape
    return out.transpose(1, 2).reshape(batch, length, heads * dim)


def _masked_attention_rows(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                           dropout_p: float) -> torch.Tensor:
    """Attention with a per-query mask (B, Tq, Tk) bool, FunASR's way: a query row with no key
    gets zero weights (not NaN). -> (B, Tq, H*d)."""
    scores = torch.matmul(q, k.transpose(-2, -1)) / q.size(-1) ** 0.5
    blocked = ~mask[:, None]
    weights = torch.softmax(scores.masked_fill(blocked, float("-inf")), dim=-1).masked_fill(blocked, 0.0)
    out = torch.matmul(dropout(weights, dropout_p) if dropout_p > 0.0 else weights, v)
    batch, heads, length, dim = out.shape
    return out.transpose(1, 2).reshape(batch, length, heads * dim)


class SANMSelfAttention(nn.Module):
    """Multi-head self-attention plus FSMN memory on the values (SAN-M).

    (B, T, in_feat) -> (B, T, n_feat). One fused linear produces q, k and v.
    """

    def __init__(
        self,
        n_head: int,
        in_feat: int,
        n_feat: int,
        dropout_rate: float,
        kernel_size: int,
        sanm_shfit: int = 0,
    ):
        super().__init__()
        if n_feat % n_head != 0:
            raise ValueError(f"n_feat={n_feat} is not divisible by n_head={n_head}")
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q_k_v = nn.Linear(in_feat, n_feat * 3)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.fsmn_block = nn.Conv1d(n_feat, n_feat, kernel_size, groups=n_feat, bias=False)
        self.fsmn_padding = fsmn_padding(kernel_size, sanm_shfit)
        self.dropout = Dropout(dropout_rate)
        self.attention_dropout_rate = dropout_rate

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], fsmn_mask: Optional[torch.Tensor] = None,
                att_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, T, in_feat), mask (B, T) bool -> (B, T, n_feat). SCAMA training (streaming
        models) adds fsmn_mask (B, T) bool, frames the FSMN may read, and att_mask (B, T, T) bool,
        which frames each frame attends to (a row with none attends to nothing: zeros, as FunASR)."""
        q, k, v = torch.split(self.linear_q_k_v(x), self.h * self.d_k, dim=-1)
        memory_mask = mask if fsmn_mask is None else mask & fsmn_mask
        memory = apply_fsmn(self.fsmn_block, v, memory_mask, self.fsmn_padding, self.dropout)
        dropout_p = self.attention_dropout_rate if self.training else 0.0
        q_h, k_h, v_h = _split_heads(q, self.h), _split_heads(k, self.h), _split_heads(v, self.h)
        if att_mask is None:
            context = _masked_attention(q_h, k_h, v_h, mask, dropout_p)
        else:
            context = _masked_attention_rows(q_h, k_h, v_h, mask[:, None, :] & att_mask, dropout_p)
        return self.linear_out(context) + memory


def chunk_attention(module, x: torch.Tensor, kv_cache, chunk_size, look_back: int):
    """FunASR's ``MultiHeadedAttentionSANM.forward_chunk`` on one streaming window x (B, W, in):
    the FSMN memory over the window alone, attention (no mask) over the window plus the K/V of
    the last ``look_back`` steps. Returns (output (B, W, n_feat), the new K/V cache or None)."""
    q, k, v = torch.split(module.linear_q_k_v(x), module.h * module.d_k, dim=-1)
    q_h, k_h, v_h = (_split_heads(t, module.h) for t in (q, k, v))
    new_cache = None
    if look_back > 0 or look_back == -1:
        look_ahead = chunk_size[2]
        stride_k, stride_v = k_h[:, :, : k_h.size(2) - look_ahead], v_h[:, :, : v_h.size(2) - look_ahead]
        if kv_cache is not None:
            k_h, v_h = torch.cat([kv_cache[0], k_h], dim=2), torch.cat([kv_cache[1], v_h], dim=2)
            stride_k, stride_v = torch.cat([kv_cache[0], stride_k], dim=2), torch.cat([kv_cache[1], stride_v], dim=2)
            if look_back != -1:
                keep = look_back * chunk_size[1]
                stride_k, stride_v = stride_k[:, :, -keep:], stride_v[:, :, -keep:]
        new_cache = (stride_k, stride_v)
    memory = apply_fsmn(module.fsmn_block, v, None, module.fsmn_padding, module.dropout)
    return module.linear_out(_masked_attention(q_h, k_h, v_h, None, 0.0)) + memory, new_cache


class SANMDecoderMemory(nn.Module):
    """The decoder's "self-attention": an FSMN memory block only, (B, L, D) -> (B, L, D)."""

    def __init__(self, n_feat: int, dropout_rate: float, kernel_size: int, sanm_shfit: int = 0):
        super().__init__()
        self.fsmn_block = nn.Conv1d(n_feat, n_feat, kernel_size, groups=n_feat, bias=False)
        self.fsmn_padding = fsmn_padding(kernel_size, sanm_shfit)
        self.dropout = Dropout(dropout_rate)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        return apply_fsmn(self.fsmn_block, x, mask, self.fsmn_padding, self.dropout)

    def forward_chunk(self, x: torch.Tensor, cache: Optional[torch.Tensor]):
        """One streaming step (FunASR's MultiHeadedAttentionSANMDecoder.forward with a cache), ported
        literally: the first step pads both sides and keeps the padded input (B, D, T+k-1) as the
        cache, right padding included; later steps prepend ``cache[:, :, 1:]`` and keep the last
        k-1+T frames. -> (output (B, T, D), new cache)."""
        frames = x.transpose(1, 2)
        if cache is None:
            frames = F.pad(frames, self.fsmn_padding)
        else:
            kernel_size = self.fsmn_block.kernel_size[0]
            frames = torch.cat([cache[:, :, 1:], frames], dim=2)[:, :, -(kernel_size + x.size(1) - 1):]
        out = self.fsmn_block(frames).transpose(1, 2)
        return self.dropout(out + x), frames


class SANMCrossAttention(nn.Module):
    """Source attention from decoder states (B, L, n_feat) to encoder memory (B, T, memory_dim)."""

    def __init__(self, n_head: int, n_feat: int, dropout_rate: float, memory_dim: Optional[int] = None):
        super().__init__()
        if n_feat % n_head != 0:
            raise ValueError(f"n_feat={n_feat} is not divisible by n_head={n_head}")
        self.h = n_head
        self.d_k = n_feat // n_head
        self.linear_q = nn.Linear(n_feat, n_feat)
        self.linear_k_v = nn.Linear(memory_dim or n_feat, n_feat * 2)
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.attention_dropout_rate = dropout_rate

    def project_memory(self, memory: torch.Tensor) -> torch.Tensor:
        """memory (..., T, Dm) -> its keys and values (..., T, 2D): what ``memory_kv`` takes. A memory
        read many times (SeACo's hotword list, once per utterance) is projected once."""
        return self.linear_k_v(memory)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor],
                memory_kv: Optional[torch.Tensor] = None) -> torch.Tensor:
        """x (B, L, D), memory (B, T, Dm), memory_mask (B, T) bool, or (B, L, T) bool per token
        (a streaming model's SCAMA mask) -> (B, L, D). ``memory_kv`` (B, T, 2D): the memory already
        through :meth:`project_memory` (then ``memory`` is not read)."""
        kv = self.linear_k_v(memory) if memory_kv is None else memory_kv
        k, v = torch.split(kv, self.h * self.d_k, dim=-1)
        dropout_p = self.attention_dropout_rate if self.training else 0.0
        q_h, k_h, v_h = _split_heads(self.linear_q(x), self.h), _split_heads(k, self.h), _split_heads(v, self.h)
        if memory_mask is not None and memory_mask.dim() == 3:
            return self.linear_out(_masked_attention_rows(q_h, k_h, v_h, memory_mask, dropout_p))
        return self.linear_out(_masked_attention(q_h, k_h, v_h, memory_mask, dropout_p))

    def forward_chunk(self, x: torch.Tensor, memory: torch.Tensor, kv_cache, chunk_size, look_back: int):
        """One streaming step (FunASR's MultiHeadedAttentionCrossAtt.forward_chunk): attention (no
        mask) over the cached K/V plus this window's; with ``look_back`` > 0 the cache keeps the
        last look_back * chunk_size[1] frames of both (the window's look-ahead included, as
        FunASR does). -> (output (B, L, D), new cache or None)."""
        k, v = torch.split(self.linear_k_v(memory), self.h * self.d_k, dim=-1)
        k_h, v_h = _split_heads(k, self.h), _split_heads(v, self.h)
        new_cache = None
        if look_back > 0:
            if kv_cache is not None:
                k_h, v_h = torch.cat([kv_cache[0], k_h], dim=2), torch.cat([kv_cache[1], v_h], dim=2)
            keep = look_back * chunk_size[1]
            new_cache = (k_h[:, :, -keep:], v_h[:, :, -keep:])
        return self.linear_out(_masked_attention(_split_heads(self.linear_q(x), self.h), k_h, v_h, None, 0.0)), new_cache

    def attention_probs(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor,
                        memory_kv: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The softmax attention weights (B, H, L, T), 0 at masked memory frames (memory_mask (B, T) bool);
        ``memory_kv`` as in :meth:`forward`."""
        kv = self.linear_k_v(memory) if memory_kv is None else memory_kv
        k = _split_heads(torch.split(kv, self.h * self.d_k, dim=-1)[0], self.h)
        scores = torch.matmul(_split_heads(self.linear_q(x), self.h), k.transpose(-2, -1)) / self.d_k ** 0.5
        masked = ~memory_mask[:, None, None, :]
        return torch.softmax(scores.masked_fill(masked, float("-inf")), dim=-1).masked_fill(masked, 0.0)
