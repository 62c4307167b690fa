"""SpecAugment (Park et al., 2019) for batches of padded features, vectorised over the batch.

Two modules, built by name from a FunASR ``specaug`` / ``specaug_conf`` pair:

- ``SpecAug``: time warp, frequency masks and time masks on plain features, e.g. 80-dim fbank
  (AISHELL Conformer recipe: time warp 5, 2 freq masks of width < 30, 2 time masks < 40).
- ``SpecAugLFR``: the same on LFR-stacked features (B, T, n_mels * lfr_m). A frequency mask
  picks a mel band once and hits that band in every stacked sub-frame (docs/spec.md §1.5); time masks
  are in LFR frames.

Everything happens only inside each utterance's length: warps and time masks never reach the
padding, and padded frames come out unchanged. Widths follow FunASR: a width range ``(lo, hi)``
draws an integer in ``[lo, hi)``; an int ``w`` means ``(0, w)``. Masked values become 0
(after CMVN, the mean). Random numbers come from torch's global generator, so a trainer that
saves and restores torch's RNG state replays the same augmentation.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import nn

WidthRange = Union[int, Sequence[int]]
TIME_WARP_MODES = ("bicubic", "bilinear", "linear", "nearest")
# torch.nn.functional.interpolate's cubic convolution constant.
CUBIC_A = -0.75


def _width_range(value: WidthRange, name: str) -> Tuple[int, int]:
    """FunASR width range: int w -> (0, w); (lo, hi) with 0 <= lo < hi (hi exclusive)."""
    if isinstance(value, int):
        value = (0, value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise ValueError(f"{name} must be an int or two ints (lo, hi), got {value!r}")
    lo, hi = int(value[0]), int(value[1])
    if not 0 <= lo < hi:
        raise ValueError(f"{name} must satisfy 0 <= lo < hi, got {value!r}")
    return lo, hi


def _full_lengths(x: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
    if lengths is None:
        return torch.full((x.size(0),), x.size(1), dtype=torch.long, device=x.device)
    return lengths.to(device=x.device, dtype=torch.long)


def _random_ints(low: torch.Tensor, high_inclusive: torch.Tensor) -> torch.Tensor:
    """Uniform integers in [low, high_inclusive] elementwise (tensors of equal shape)."""
    span = (high_inclusive - low + 1).clamp(min=1)
    return low + torch.floor(torch.rand(low.shape, device=low.device) * span).long().clamp(max=span - 1)


def _cubic_weights(frac: torch.Tensor) -> torch.Tensor:
    """Cubic convolution weights of the taps at offsets -1, 0, 1, 2 for a fractional position.

    frac (...,) in [0, 1) -> (..., 4); the same kernel as torch's bicubic interpolation.
    """
    a = CUBIC_A

    def near(d):  # |d| <= 1
        return ((a + 2) * d - (a + 3)) * d * d + 1

    def far(d):  # 1 < |d| < 2
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    return torch.stack([far(frac + 1), near(frac), near(1 - frac), far(2 - frac)], dim=-1)


def time_warp(
    x: torch.Tensor,
    lengths: torch.Tensor,
    centers: torch.Tensor,
    warped: torch.Tensor,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Warp each utterance in time: frames [0, center) are resized to [0, warped), the rest to
    [warped, length). Same result as resizing the two segments separately with
    ``torch.nn.functional.interpolate(mode=..., align_corners=False)``.

    x (B, T, D); lengths, centers, warped (B,) long. An utterance with ``centers[b] == warped[b]``
    or ``centers[b] <= 0`` is left unchanged; frames at and beyond ``lengths[b]`` are untouched.
    Returns (B, T, D).
    """
    if mode not in TIME_WARP_MODES:
        raise ValueError(f"unknown time_warp_mode {mode!r} (expected one of {', '.join(TIME_WARP_MODES)})")
    batch, max_len, _ = x.shape
    if batch == 0 or max_len == 0:
        return x
    lengths = lengths.to(x.device).long()
    centers = centers.to(x.device).long()
    warped = warped.to(x.device).long()
    active = (centers > 0) & (centers < lengths) & (warped > 0) & (warped < lengths) & (centers != warped)

    out_pos = torch.arange(max_len, device=x.device).unsqueeze(0).expand(batch, max_len)  # (B, T)
    in_left = out_pos < warped.unsqueeze(1)
    # Per output frame: its segment's input start/size and output start/size.
    seg_in_start = torch.where(in_left, torch.zeros_like(out_pos), centers.unsqueeze(1))
    seg_in_size = torch.where(in_left, centers.unsqueeze(1), (lengths - centers).unsqueeze(1))
    seg_out_start = torch.where(in_left, torch.zeros_like(out_pos), warped.unsqueeze(1))
    seg_out_size = torch.where(in_left, warped.unsqueeze(1), (lengths - warped).unsqueeze(1))
    seg_in_size = seg_in_size.clamp(min=1)
    seg_out_size = seg_out_size.clamp(min=1)
    scale = seg_in_size.double() / seg_out_size.double()
    local_out = (out_pos - seg_out_start).double()
    seg_last = seg_in_size - 1

    def gather_frames(local_index: torch.Tensor) -> torch.Tensor:
        """(B, T) indices local to each frame's segment (clamped to it) -> (B, T, D) frames."""
        index = seg_in_start + local_index.clamp(min=0).minimum(seg_last)
        index = index.clamp(0, max_len - 1)
        return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.size(2)))

    if mode == "nearest":
        src = torch.floor(local_out * scale).long()
        warped_x = gather_frames(src)
    else:
        src = (local_out + 0.5) * scale - 0.5
        if mode in ("bilinear", "linear"):
            src = src.clamp(min=0.0)
            base = torch.floor(src)
            frac = (src - base).to(x.dtype).unsqueeze(-1)
            base = base.long()
            warped_x = gather_frames(base) * (1 - frac) + gather_frames(base + 1) * frac
        else:
            base = torch.floor(src)
            weights = _cubic_weights((src - base).to(x.dtype))  # (B, T, 4)
            base = base.long()
            warped_x = sum(gather_frames(base + k - 1) * weights[..., k : k + 1] for k in range(4))

    valid = out_pos < lengths.unsqueeze(1)
    use = (valid & active.unsqueeze(1)).unsqueeze(-1)
    return torch.where(use, warped_x.to(x.dtype), x)


def sample_time_warp(lengths: torch.Tensor, window: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """FunASR/ESPnet's draw per utterance: center in [window, L - window), warped in
    (center - window, center + window]. Utterances with L <= 2 * window get center = 0 (no warp).

    lengths (B,) -> centers (B,), warped (B,) long.
    """
    lengths = lengths.long()
    can_warp = lengths > 2 * window
    centers = _random_ints(torch.full_like(lengths, window), (lengths - window - 1).clamp(min=window))
    warped = _random_ints(centers - window + 1, centers + window)
    zeros = torch.zeros_like(lengths)
    return torch.where(can_warp, centers, zeros), torch.where(can_warp, warped, zeros)


def sample_mask_spans(
    limits: torch.Tensor, num_mask: int, width_range: Tuple[int, int]
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Draw ``num_mask`` spans per row inside [0, limit): width in [lo, hi) capped at the limit,
    start uniform so that the span fits.

    limits (B,) long -> starts (B, num_mask), widths (B, num_mask) long.
    """
    lo, hi = width_range
    batch = limits.size(0)
    shape = (batch, num_mask)
    widths = _random_ints(torch.full(shape, lo, device=limits.device), torch.full(shape, hi - 1, device=limits.device))
    widths = widths.minimum(limits.unsqueeze(1)).clamp(min=0)
    starts = _random_ints(torch.zeros_like(widths), limits.unsqueeze(1) - widths)
    return starts, widths


def spans_to_mask(starts: torch.Tensor, widths: torch.Tensor, size: int) -> torch.Tensor:
    """starts, widths (B, N) -> (B, size) bool, True inside any span (= to be masked)."""
    positions = torch.arange(size, device=starts.device).view(1, 1, size)
    inside = (positions >= starts.unsqueeze(-1)) & (positions < (starts + widths).unsqueeze(-1))
    return inside.any(dim=1)


class _SpecAugBase(nn.Module):
    """Shared option handling; subclasses say how many sub-frames a feature vector holds."""

    def __init__(
        self,
        apply_time_warp: bool,
        time_warp_window: int,
        time_warp_mode: str,
        apply_freq_mask: bool,
        freq_mask_width_range: WidthRange,
        num_freq_mask: int,
        apply_time_mask: bool,
        time_mask_width_range: Optional[WidthRange],
        time_mask_width_ratio_range: Optional[Sequence[float]],
        num_time_mask: int,
    ):
        super().__init__()
        if not (apply_time_warp or apply_freq_mask or apply_time_mask):
            raise ValueError("SpecAug: enable at least one of apply_time_warp, apply_freq_mask, apply_time_mask")
        if apply_time_warp:
            if time_warp_mode not in TIME_WARP_MODES:
                raise ValueError(
                    f"SpecAug: unknown time_warp_mode {time_warp_mode!r} (expected one of {', '.join(TIME_WARP_MODES)})"
                )
            if int(time_warp_window) < 1:
                raise ValueError(f"SpecAug: time_warp_window must be >= 1, got {time_warp_window!r}")
        self.apply_time_warp = bool(apply_time_warp)
        self.time_warp_window = int(time_warp_window)
        self.time_warp_mode = time_warp_mode
        self.apply_freq_mask = bool(apply_freq_mask)
        self.num_freq_mask = int(num_freq_mask)
        self.freq_mask_width_range = (
            _width_range(freq_mask_width_range, "freq_mask_width_range") if apply_freq_mask else None
        )
        self.apply_time_mask = bool(apply_time_mask)
        self.num_time_mask = int(num_time_mask)
        self.time_mask_width_range = None
        self.time_mask_width_ratio_range = None
        if apply_time_mask:
            if (time_mask_width_range is None) == (time_mask_width_ratio_range is None):
                raise ValueError(
                    "SpecAug: give exactly one of time_mask_width_range and time_mask_width_ratio_range"
                )
            if time_mask_width_range is not None:
                self.time_mask_width_range = _width_range(time_mask_width_range, "time_mask_width_range")
            else:
                ratio = time_mask_width_ratio_range
                if isinstance(ratio, (int, float)):
                    ratio = (0.0, float(ratio))
                lo, hi = float(ratio[0]), float(ratio[1])
                if not 0.0 <= lo < hi <= 1.0:
                    raise ValueError(f"SpecAug: time_mask_width_ratio_range must be 0 <= lo < hi <= 1, got {ratio!r}")
                self.time_mask_width_ratio_range = (lo, hi)

    def extra_repr(self) -> str:
        return (
            f"time_warp={self.apply_time_warp}(window={self.time_warp_window}, mode={self.time_warp_mode}), "
            f"freq_mask={self.apply_freq_mask}(n={self.num_freq_mask}, width={self.freq_mask_width_range}), "
            f"time_mask={self.apply_time_mask}(n={self.num_time_mask}, "
            f"width={self.time_mask_width_range or self.time_mask_width_ratio_range})"
        )

    def _num_sub_frames(self, feat_dim: int) -> int:
        return 1

    def _time_mask_spans(self, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.time_mask_width_range is not None:
            return sample_mask_spans(lengths, self.num_time_mask, self.time_mask_width_range)
        lo_ratio, hi_ratio = self.time_mask_width_ratio_range
        # Ratio widths: draw in [floor(lo * L), floor(hi * L)) per utterance.
        lo = torch.floor(lengths.double() * lo_ratio).long()
        hi = torch.floor(lengths.double() * hi_ratio).long().maximum(lo + 1)
        shape = (lengths.size(0), self.num_time_mask)
        widths = _random_ints(lo.unsqueeze(1).expand(shape), (hi - 1).unsqueeze(1).expand(shape))
        widths = widths.minimum(lengths.unsqueeze(1))
        starts = _random_ints(torch.zeros_like(widths), lengths.unsqueeze(1) - widths)
        return starts, widths

    def forward(self, x: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """x (B, T, D), lengths (B,) -> (augmented x (B, T, D), lengths unchanged)."""
        if x.dim() != 3:
            raise ValueError(f"SpecAug expects (B, T, D) features, got shape {tuple(x.shape)}")
        full_lengths = _full_lengths(x, lengths)
        batch, max_len, feat_dim = x.shape
        if self.apply_time_warp:
            centers, warped = sample_time_warp(full_lengths, self.time_warp_window)
            x = time_warp(x, full_lengths, centers, warped, self.time_warp_mode)
        masked = torch.zeros(batch, max_len, feat_dim, dtype=torch.bool, device=x.device)
        if self.apply_freq_mask and self.num_freq_mask > 0:
            sub_frames = self._num_sub_frames(feat_dim)
            band_dim = feat_dim // sub_frames
            starts, widths = sample_mask_spans(
                torch.full((batch,), band_dim, device=x.device), self.num_freq_mask, self.freq_mask_width_range
            )
            band_mask = spans_to_mask(starts, widths, band_dim)  # (B, band_dim)
            # LFR layout: sub-frame k occupies dims [k*band_dim, (k+1)*band_dim).
            masked |= band_mask.repeat(1, sub_frames).unsqueeze(1)
        if self.apply_time_mask and self.num_time_mask > 0:
            starts, widths = self._time_mask_spans(full_lengths)
            masked |= spans_to_mask(starts, widths, max_len).unsqueeze(2)
        valid = torch.arange(max_len, device=x.device).unsqueeze(0) < full_lengths.unsqueeze(1)
        masked &= valid.unsqueeze(2)
        return x.masked_fill(masked, 0.0), lengths


class SpecAug(_SpecAugBase):
    """SpecAugment on plain features (B, T, D): time warp, frequency masks, time masks.

    FunASR ``specaug_conf`` keywords; widths in [lo, hi).
    """

    def __init__(
        self,
        apply_time_warp: bool = True,
        time_warp_window: int = 5,
        time_warp_mode: str = "bicubic",
        apply_freq_mask: bool = True,
        freq_mask_width_range: WidthRange = (0, 20),
        num_freq_mask: int = 2,
        apply_time_mask: bool = True,
        time_mask_width_range: Optional[WidthRange] = None,
        time_mask_width_ratio_range: Optional[Sequence[float]] = None,
        num_time_mask: int = 2,
    ):
        super().__init__(
            apply_time_warp,
            time_warp_window,
            time_warp_mode,
            apply_freq_mask,
            freq_mask_width_range,
            num_freq_mask,
            apply_time_mask,
            time_mask_width_range,
            time_mask_width_ratio_range,
            num_time_mask,
        )


class SpecAugLFR(_SpecAugBase):
    """SpecAugment on LFR features (B, T, n_mels * lfr_m): a frequency mask covers the same mel
    band in all ``lfr_m`` stacked sub-frames; time masks and warps are in LFR frames.

    The number of sub-frames is ``lfr_m`` when given, else FunASR's convention
    ``lfr_rate + 1`` (its paraformer-large config says ``lfr_rate: 6`` for lfr_m = 7). With
    neither (lfr_rate 0) every feature dim is its own band, i.e. plain SpecAug.
    Unlike FunASR, time masks are plain spans of LFR frames (FunASR repeats them T/lfr apart).
    """

    def __init__(
        self,
        apply_time_warp: bool = True,
        time_warp_window: int = 5,
        time_warp_mode: str = "bicubic",
        apply_freq_mask: bool = True,
        freq_mask_width_range: WidthRange = (0, 20),
        num_freq_mask: int = 2,
        lfr_rate: int = 0,
        apply_time_mask: bool = True,
        time_mask_width_range: Optional[WidthRange] = None,
        time_mask_width_ratio_range: Optional[Sequence[float]] = None,
        num_time_mask: int = 2,
        lfr_m: Optional[int] = None,
    ):
        super().__init__(
            apply_time_warp,
            time_warp_window,
            time_warp_mode,
            apply_freq_mask,
            freq_mask_width_range,
            num_freq_mask,
            apply_time_mask,
            time_mask_width_range,
            time_mask_width_ratio_range,
            num_time_mask,
        )
        sub_frames = int(lfr_m) if lfr_m is not None else int(lfr_rate) + 1
        if sub_frames < 1:
            raise ValueError(f"SpecAugLFR: lfr_m must be >= 1 (got lfr_m={lfr_m!r}, lfr_rate={lfr_rate!r})")
        self.lfr_m = sub_frames

    def _num_sub_frames(self, feat_dim: int) -> int:
        if feat_dim % self.lfr_m:
            raise ValueError(
                f"SpecAugLFR: feature dim {feat_dim} is not a multiple of lfr_m={self.lfr_m} "
                "(check specaug_conf.lfr_rate / lfr_m against frontend_conf.lfr_m)"
            )
        return self.lfr_m

    def extra_repr(self) -> str:
        return f"lfr_m={self.lfr_m}, " + super().extra_repr()


SPECAUG_CLASSES = {"SpecAug": SpecAug, "SpecAugLFR": SpecAugLFR}


def build_specaug(name: Optional[str], conf: Optional[dict]) -> Optional[nn.Module]:
    """``specaug`` name + ``specaug_conf`` -> module, or None when ``name`` is empty/None."""
    if not name:
        return None
    if name not in SPECAUG_CLASSES:
        raise ValueError(f"unknown specaug {name!r} (expected one of {', '.join(SPECAUG_CLASSES)})")
    try:
        return SPECAUG_CLASSES[name](**(conf or {}))
    except TypeError as e:
        raise ValueError(f"specaug_conf for {name}: {e}") from None


__all__ = [
    "SpecAug",
    "SpecAugLFR",
    "build_specaug",
    "sample_mask_spans",
    "sample_time_warp",
    "spans_to_mask",
    "time_warp",
]
