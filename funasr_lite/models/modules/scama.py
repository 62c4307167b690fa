"""SCAMA chunking (FunASR's ``models/scama/chunk_utilis.py``): how ParaformerStreaming is trained
so that it works on chunks.

An utterance of T frames is cut into ``ceil(T / stride)`` windows of ``chunk_size`` frames that
start ``stride`` frames apart (``pad_left`` zero frames before the first), each window prefixed by
``shift_fsmn`` zero frames so the FSMN convolution cannot read across windows. The encoder runs
on these windows laid end to end (the *chunk domain*, :func:`split_chunk`), attention restricted
by a block mask (a window sees itself and the stride frames of ``encoder_look_back`` earlier
windows); CIF counts only each window's stride frames; the decoder's token n attends only to the
window where CIF fired it and ``decoder_look_back`` windows before (:func:`cross_attention_mask`).
:func:`remove_chunk` maps chunk-domain frames back (the CTC branch).

Everything here is a pure function of the lengths and one chunk configuration, returned as a
:class:`ChunkPlan`; FunASR keeps the same matrices as state on its encoder object. The numpy
matrices are built as FunASR builds them (tested equal), so training matches FunASR's step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch


@dataclass(frozen=True)
class ChunkConfig:
    """One SCAMA configuration: window ``chunk_size`` frames, hop ``stride``, ``pad_left`` zero
    frames first, encoder/decoder look-back in windows, ``shift_fsmn`` (= (kernel - 1) // 2)."""

    chunk_size: int
    stride: int
    pad_left: int
    encoder_look_back: int
    decoder_look_back: int
    shift_fsmn: int

    @property
    def padded_size(self) -> int:
        """A window in the chunk domain: shift_fsmn zeros + chunk_size frames."""
        return self.chunk_size + self.shift_fsmn


@dataclass
class ChunkPlan:
    """The matrices of one batch's chunking (FunASR's ``chunk_outs``), numpy int32/float."""

    config: ChunkConfig
    x_add: np.ndarray  # (Tc, T + pad_left): chunk-domain frame <- frame
    x_len_chunk: np.ndarray  # (B,) chunk-domain lengths
    x_rm: np.ndarray  # (T, Tc): frame <- chunk-domain frame (each window's stride frames)
    x_len: np.ndarray  # (B,)
    mask_shift: np.ndarray  # (Tc, 1): 0 on the shift_fsmn pad frames
    mask_predictor: np.ndarray  # (Tc, 1): 1 on each window's stride frames (what CIF counts)
    mask_att_encoder: np.ndarray  # (Tc, Tc): which frames each frame attends to
    mask_shift_att_decoder: np.ndarray  # (Tc, 1)

    def tensor(self, name: str, like: torch.Tensor, batch: int = 0) -> torch.Tensor:
        """A matrix as a tensor of ``like``'s dtype/device; ``batch`` > 0 adds a batch axis."""
        value = torch.from_numpy(np.ascontiguousarray(getattr(self, name))).to(dtype=like.dtype, device=like.device)
        return value.unsqueeze(0).expand(batch, *value.shape) if batch else value


def chunk_plan(lengths, config: ChunkConfig) -> ChunkPlan:
    """FunASR's ``overlap_chunk.gen_chunk_mask`` for frame lengths (B,)."""
    x_len = np.asarray(lengths.cpu().numpy() if torch.is_tensor(lengths) else lengths)
    x_len_max = int(x_len.max())
    size, stride, pad_left, shift = config.chunk_size, config.stride, config.pad_left, config.shift_fsmn
    padded = config.padded_size
    pad_right = size - stride - pad_left
    chunks_each = np.ceil(x_len / stride).astype(np.int32)
    x_len_chunk = ((chunks_each - 1) * padded + shift + pad_left + x_len - (chunks_each - 1) * stride)
    x_len_chunk = x_len_chunk.astype(x_len.dtype)
    len_chunk_max = int(x_len_chunk.max())
    num_chunks = int(math.ceil(x_len_max / stride))
    width = max(size, x_len_max + pad_left)
    i32 = np.int32

    x_add, x_rm, mask_shift, mask_predictor, mask_att, mask_dec = [], [], [], [], [], []
    for chunk in range(num_chunks):
        # chunk-domain rows: shift zeros, then the window's frames chunk*stride + [0, size)
        rows = np.zeros((shift + size, width), dtype=np.float32)
        for offset in range(size):
            if chunk * stride + offset < width:
                rows[shift + offset, chunk * stride + offset] = 1.0
        x_add.append(rows)
        # back: frame chunk*stride + j <- window column shift + pad_left + j, j < stride
        cols = np.zeros((width, padded), dtype=i32)
        for j in range(stride):
            if chunk * stride + j < width:
                cols[chunk * stride + j, shift + pad_left + j] = 1
        x_rm.append(cols)
        mask_shift.append(np.concatenate([np.zeros((shift, 1), i32), np.ones((size, 1), i32)]))
        mask_predictor.append(np.concatenate([np.zeros((shift + pad_left, 1), i32), np.ones((stride, 1), i32),
                                              np.zeros((pad_right, 1), i32)]))
        # attention: the window's rows see the stride frames of the last encoder_look_back windows
        # and the whole of their own window
        att = np.zeros((padded, num_chunks * padded), dtype=i32)
        first_seen = max(chunk - config.encoder_look_back, 0)
        for earlier in range(first_seen, chunk):
            start = earlier * padded + shift
            att[shift:shift + stride, start:start + stride] = 1
        att[shift:, chunk * padded + shift:(chunk + 1) * padded] = 1
        mask_att.append(att)
        mask_dec.append(np.concatenate([np.zeros((shift, 1)), np.ones((size, 1))]))

    def stacked(parts, axis, shape):
        return np.concatenate(parts, axis=axis) if parts else np.zeros(shape)

    return ChunkPlan(
        config=config,
        x_add=stacked(x_add, 0, (0, width))[:len_chunk_max, : x_len_max + pad_left],
        x_len_chunk=x_len_chunk,
        x_rm=stacked(x_rm, 1, (width, 0))[:x_len_max, :len_chunk_max],
        x_len=x_len,
        mask_shift=stacked(mask_shift, 0, (0, 1))[:len_chunk_max],
        mask_predictor=stacked(mask_predictor, 0, (0, 1))[:len_chunk_max],
        mask_att_encoder=stacked(mask_att, 0, (0, num_chunks * padded))[:len_chunk_max, :len_chunk_max],
        mask_shift_att_decoder=stacked(mask_dec, 0, (0, 1))[:len_chunk_max],
    )


def _length_mask(lengths: torch.Tensor, width: int) -> torch.Tensor:
    """lengths (...) -> (..., width) bool, True before each length."""
    return torch.arange(width, device=lengths.device) < lengths[..., None]


def split_chunk(x: torch.Tensor, lengths: torch.Tensor, plan: ChunkPlan) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, T, D) frames -> (B, Tc, D) chunk domain, (B,) chunk-domain lengths (FunASR's split_chunk)."""
    x = x[:, : int(lengths.max())]
    x = x * _length_mask(lengths, x.size(1))[:, :, None].to(x.dtype)
    x = torch.nn.functional.pad(x, (0, 0, plan.config.pad_left, 0))
    batch, frames, dim = x.shape
    chunked = torch.mm(plan.tensor("x_add", x), x.transpose(0, 1).reshape(frames, -1))
    lengths_chunk = torch.from_numpy(plan.x_len_chunk).to(device=lengths.device, dtype=lengths.dtype)
    return chunked.reshape(-1, batch, dim).transpose(0, 1), lengths_chunk


def remove_chunk(x: torch.Tensor, lengths_chunk: torch.Tensor, plan: ChunkPlan) -> Tuple[torch.Tensor, torch.Tensor]:
    """(B, Tc, D) chunk domain -> (B, T, D) frames (each window's stride frames), (B,) lengths."""
    x = x[:, : int(lengths_chunk.max())]
    x = x * _length_mask(lengths_chunk, x.size(1))[:, :, None].to(x.dtype)
    batch, frames, dim = x.shape
    out = torch.mm(plan.tensor("x_rm", x), x.transpose(0, 1).reshape(frames, -1))
    lengths = torch.from_numpy(plan.x_len).to(device=lengths_chunk.device, dtype=lengths_chunk.dtype)
    return out.reshape(-1, batch, dim).transpose(0, 1), lengths


def frame_alignments(alphas: torch.Tensor, encoder_lengths: torch.Tensor, training: bool) -> torch.Tensor:
    """FunASR's ``CifPredictorV2.gen_frame_alignments``: (B, T) alphas -> (B, T) int32, at each
    frame how many tokens fire there (round of the alpha sum in training, floor otherwise)."""
    batch, frames = alphas.shape
    int_type = torch.int32
    total = torch.sum(alphas, dim=1)
    token_num = (torch.round(total) if training else torch.floor(total)).to(int_type)
    max_tokens = int(token_num.max())
    cumsum = torch.floor(torch.cumsum(alphas, dim=1)).to(int_type)[:, None, :].repeat(1, max_tokens, 1)
    index = torch.cumsum(torch.ones(batch, max_tokens, dtype=int_type), dim=1)[:, :, None].repeat(1, 1, frames)
    index = index.to(cumsum.device)
    before = torch.floor(torch.true_divide(cumsum, index)).to(int_type).eq(0).sum(-1) + 1
    before = torch.clamp(before, 0, int(encoder_lengths.max()))
    before = before * _length_mask(token_num, max_tokens).to(before.dtype)
    tile = before[:, :, None].repeat(1, 1, frames)
    position = torch.cumsum(torch.ones_like(tile), dim=2)
    fired_here = (tile == position).to(int_type)  # token n's fire frame (1-based position)
    alignments = fired_here.sum(dim=1).to(int_type)
    return (alignments * _length_mask(encoder_lengths, int(encoder_lengths.max())).to(int_type)).detach()


def cross_attention_mask(alignments: torch.Tensor, encoder_lengths: torch.Tensor, plan: ChunkPlan,
                         target_lengths: torch.Tensor, training: bool, dtype=torch.float32) -> torch.Tensor:
    """FunASR's ``build_scama_mask_for_cross_attention_decoder`` (chunk type "chunk", chunk_size 1,
    no center bias): (B, L, Tc) 0/1, which chunk-domain frames target token n may attend to — its
    fire window and ``decoder_look_back`` windows before, the stride frames of the next window."""
    device = alignments.device
    batch, num_frames = alignments.shape
    max_encoder = int(encoder_lengths.max())
    int_type = alignments.dtype
    if not training:
        target_lengths = alignments.sum(dim=-1).to(encoder_lengths.dtype)
    max_target = int(target_lengths.max())
    window = plan.config.padded_size
    cumsum = torch.cumsum(alignments, dim=1)[:, None, :].repeat(1, max_target, 1)
    index = torch.cumsum(torch.ones(batch, max_target, dtype=int_type, device=device), dim=1)
    index = index[:, :, None].repeat(1, 1, num_frames)
    fire = torch.floor(torch.divide(cumsum, index)).to(int_type).eq(0).sum(-1).to(int_type) + 1
    fire = torch.clip(fire, min=1, max=num_frames)
    fire = torch.clip(fire - 1, min=0, max=max_encoder)  # chunk_size 1, center bias 0
    window_end = (torch.floor(fire / window) + 1) * window
    max_len_chunk = math.ceil(max_encoder / window) * window

    def length_mask(lengths, mask_dtype):
        return _length_mask(lengths, max_len_chunk).to(mask_dtype)

    mask_flip = 1 - length_mask(torch.clip(window_end - window, 0, max_len_chunk), int_type)
    look_back = window * (plan.config.decoder_look_back + 1)
    mask_flip2 = 1 - length_mask(torch.clip(window_end - look_back, 0, max_len_chunk), int_type)
    mask = length_mask(window_end, dtype)
    predictor = plan.tensor("mask_predictor", mask, batch)[:, None, :, 0].repeat(1, max_target, 1)
    flipped = mask_flip * mask
    if max_len_chunk > 1:
        sliced = torch.cat([mask[:, :, window:], mask.new_zeros(batch, max_target, window)], dim=2)
        predictor = torch.nn.functional.pad(predictor, [0, max_len_chunk - predictor.size(2)])
        mask = flipped + sliced * predictor
    else:
        mask = flipped
    mask = mask * mask_flip2
    mask = mask[:, :max_target, :] * _length_mask(target_lengths, max_target).to(mask.dtype)[:, :, None]
    mask = mask[:, :, :max_encoder] * _length_mask(encoder_lengths, max_encoder).to(mask.dtype)[:, None, :]
    mask = mask * plan.tensor("mask_shift_att_decoder", mask, batch)[:, None, :, 0]
    return mask[:, :max_target, :max_encoder].to(dtype)


__all__ = ["ChunkConfig", "ChunkPlan", "chunk_plan", "split_chunk", "remove_chunk", "frame_alignments",
           "cross_attention_mask"]
