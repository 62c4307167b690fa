"""Token timestamps from the CIF predictor.

Their accuracy against ground truth is scored in :mod:`funasr_lite.scoring.cer` (on the CER
alignment); this module imports nothing from the rest of the package.

`cif_timestamps` follows FunASR's rules for the LFR-6 Paraformer (its
`ts_prediction_lfr6_standard`), restated here on whole arrays:

* a frame whose CIF accumulator (``peaks``) reaches 1 - 1e-4 is a fire; the fires mark token
  ends, and the model is expected to fire once per token plus once more (the ``</s>`` or
  tail-threshold fire), so token i spans from fire i to fire i + 1;
* every fire is moved by a fixed -1.5 frames (the predictor fires late);
* a span longer than 12 frames is cut: the token keeps the first 12 frames, the rest is silence;
* the last token ends at the last frame, or half-way between the last fire and the last frame
  when more than 5 frames follow the last fire (trailing silence);
* when the fire count is not tokens + 1, alphas are rescaled to sum to tokens + 1 and fired
  again (integrate-and-fire with one fire per frame at most, carrying any excess forward).

Frame constants (5, 12, -1.5) are in predictor frames: 60 ms for the LFR-6 predictor, 20 ms
for an upsampled (x3) one. Milliseconds are ``int(seconds * 1000)`` as in FunASR, so a
boundary at 150 ms can come out as 149: kept so our ``time_stamp`` files match FunASR's.

Argument order: FunASR's plain-Paraformer ``inference`` passes (peaks, alphas) where the
function expects (alphas, peaks) (FunASR issue #3723), so its timestamps come from the wrong
signal. We take ``alphas`` first and refuse arrays that cannot be in that order (a CIF
accumulator always holds at least the current frame's alpha, so peaks >= alphas).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import List, Sequence

import numpy as np

logger = logging.getLogger(__name__)

FIRE_THRESHOLD = 1.0 - 1e-4
TIME_SHIFT_FRAMES = -1.5
MAX_TOKEN_FRAMES = 12
BOUNDARY_SILENCE_FRAMES = 5
SILENCE = "<sil>"
END_OF_SENTENCE = "</s>"
# peaks may fall short of alphas by float rounding only; more means the arguments are swapped.
_ORDER_TOLERANCE = 1e-4


def _as_1d_array(values, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch.Tensor, without importing torch here
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1:
        raise ValueError(f"{name} must have shape (T,) (or (1, T)), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    return array


def cif_peaks(alphas: np.ndarray, threshold: float) -> np.ndarray:
    """The integrate-and-fire accumulator per frame, before a fire resets it.

    Sequential rule: add alpha_t; if the sum >= threshold, fire and subtract threshold (a frame
    fires at most once; excess weight waits for the next frames). With c the prefix sum and
    m_t = floor(c_t / threshold), the fire count obeys k_t = min(k_{t-1} + 1, m_t), which
    unrolls to k_t = t + min(1, min_{s<=t} (m_s - s)), so no loop over frames is needed.

    Args:
        alphas: (T,) non-negative frame weights.
    Returns:
        (T,) float64 accumulator c_t - k_{t-1} * threshold; fires where it is >= threshold.
    """
    prefix_sums = np.cumsum(alphas.astype(np.float64))
    whole_thresholds = np.floor(prefix_sums / threshold)
    frame_index = np.arange(len(alphas), dtype=np.float64)
    fires_so_far = frame_index + np.minimum(np.minimum.accumulate(whole_thresholds - frame_index), 1)
    fires_before = np.concatenate([[0.0], fires_so_far[:-1]])
    return prefix_sums - fires_before * threshold


@dataclasses.dataclass(frozen=True)
class CifSegment:
    """A token or a silence between two boundaries, in predictor frames (may be fractional)."""

    label: str
    start_frame: float
    end_frame: float


def cif_segments(
    alphas,
    peaks,
    tokens: Sequence[str],
    time_shift_frames: float = TIME_SHIFT_FRAMES,
    max_token_frames: int = MAX_TOKEN_FRAMES,
    boundary_silence_frames: int = BOUNDARY_SILENCE_FRAMES,
    check_argument_order: bool = True,
) -> List[CifSegment]:
    """Tokens and silences with their spans in frames (see the module docstring for the rules).

    Args:
        alphas: (T,) CIF weights per predictor frame, including the tail frame appended at
            inference.
        peaks: (T,) CIF accumulator per frame before a fire resets it; None = integrate-and-
            fire ``alphas`` here.
        tokens: output tokens; a trailing ``</s>`` is dropped.
        max_token_frames: cap on a token's span; negative = no cap.
    Returns:
        segments in time order; exactly one non-``<sil>`` segment per token.
    """
    tokens = list(tokens)
    if tokens and tokens[-1] == END_OF_SENTENCE:
        tokens = tokens[:-1]
    if not tokens:
        return []
    alphas = _as_1d_array(alphas, "alphas")
    if len(alphas) == 0:
        raise ValueError(f"no predictor frames for {len(tokens)} tokens")
    if peaks is None:
        peaks = cif_peaks(alphas, 1.0)  # what the predictor reports (threshold 1)
    else:
        peaks = _as_1d_array(peaks, "peaks")
        if peaks.shape != alphas.shape:
            raise ValueError(f"alphas {alphas.shape} and peaks {peaks.shape} differ in length")
        if check_argument_order and np.any(peaks < alphas - _ORDER_TOLERANCE):
            frame = int(np.argmax(peaks < alphas - _ORDER_TOLERANCE))
            raise ValueError(
                f"peaks[{frame}]={peaks[frame]:.4f} < alphas[{frame}]={alphas[frame]:.4f}: "
                "alphas and peaks look swapped (pass alphas first; see FunASR issue #3723)")
    # Compare in the array's own precision, as FunASR compares a float32 tensor.
    fires = np.flatnonzero(peaks >= np.asarray(FIRE_THRESHOLD, dtype=peaks.dtype))

    expected_fires = len(tokens) + 1
    if len(fires) != expected_fires:
        total = float(alphas.astype(np.float64).sum())
        if total > 0:
            rescaled = alphas.astype(np.float64) * (expected_fires / total)
        else:  # nothing to go on: spread the tokens evenly
            rescaled = np.full(len(alphas), expected_fires / len(alphas))
        fires = np.flatnonzero(cif_peaks(rescaled, FIRE_THRESHOLD) >= FIRE_THRESHOLD)
        if len(fires) < expected_fires:
            # Excess weight was still queued at the last frame (one fire per frame at most):
            # let the missing fires happen there, as zero-length tokens.
            logger.warning("%d of %d fires fall past the last frame; placing them on it",
                           expected_fires - len(fires), expected_fires)
            fires = np.concatenate([fires, np.full(expected_fires - len(fires), len(alphas) - 1)])
        # The rescaled sum allows floor((tokens + 1) / threshold) fires: one too many only past
        # ~10^4 tokens; keep the first ones so every token still gets one span.
        fires = fires[:expected_fires]
    boundaries = fires + time_shift_frames
    num_frames = len(alphas)

    starts = boundaries[:-1]
    ends = boundaries[1:]
    if max_token_frames >= 0:
        too_long = ends - starts > max_token_frames
    else:
        too_long = np.zeros(len(starts), dtype=bool)
    token_ends = np.where(too_long, starts + max_token_frames, ends)

    segments: List[CifSegment] = []
    if boundaries[0] > boundary_silence_frames:
        segments.append(CifSegment(SILENCE, 0.0, float(boundaries[0])))
    for token, start, token_end, end, split in zip(tokens, starts, token_ends, ends, too_long):
        segments.append(CifSegment(token, float(start), float(token_end)))
        if split:
            segments.append(CifSegment(SILENCE, float(token_end), float(end)))

    # The last segment (the last token, or the silence cut from it) runs to the end of the audio,
    # unless a long tail follows the last fire: then it stops half-way and the rest is silence.
    last_fire = boundaries[-1]
    last = segments[-1]
    if num_frames - last_fire > boundary_silence_frames:
        tail_start = float((num_frames + last_fire) * 0.5)
        segments[-1] = dataclasses.replace(last, end_frame=tail_start)
        segments.append(CifSegment(SILENCE, tail_start, float(num_frames)))
    else:
        segments[-1] = dataclasses.replace(last, end_frame=float(num_frames))
    return segments


def frames_to_ms(frame: float, frame_ms: float, offset_ms: float = 0.0) -> int:
    """FunASR's conversion: seconds first, then int(seconds * 1000) (truncates toward zero)."""
    seconds = frame * (frame_ms / 1000.0)
    if offset_ms:
        seconds = seconds + offset_ms / 1000.0
    return int(seconds * 1000)


def cif_timestamps(
    alphas,
    peaks,
    tokens: Sequence[str],
    frame_ms: float = 60.0,
    offset_ms: float = 0.0,
    time_shift_frames: float = TIME_SHIFT_FRAMES,
    max_token_frames: int = MAX_TOKEN_FRAMES,
    boundary_silence_frames: int = BOUNDARY_SILENCE_FRAMES,
    check_argument_order: bool = True,
) -> List[List[int]]:
    """``[[start_ms, end_ms], ...]``, one pair per token (a trailing ``</s>`` is dropped).

    Args:
        alphas: (T,) or (1, T) CIF weights (numpy, torch or list), alphas FIRST.
        peaks: (T,) or (1, T) CIF accumulator per frame, or None to integrate ``alphas`` here.
        tokens: output tokens.
        frame_ms: predictor frame length: 60 for LFR-6, 20 for an x3 upsampled predictor.
        offset_ms: added to every time (e.g. the VAD segment start).
    A token that starts in the first frames can get a negative start (the -1.5 frame shift),
    as in FunASR.
    """
    segments = cif_segments(alphas, peaks, tokens, time_shift_frames, max_token_frames,
                            boundary_silence_frames, check_argument_order)
    return [[frames_to_ms(s.start_frame, frame_ms, offset_ms), frames_to_ms(s.end_frame, frame_ms, offset_ms)]
            for s in segments if s.label != SILENCE]
