"""Global CMVN (docs/spec.md §1.4): statistics, ``am.mvn`` (Kaldi nnet1 text) and ``cmvn.json`` I/O.

Normalisation is ``x = (x + shift) * scale`` per dimension with shift = -mean and
scale = 1 / std, applied after LFR, so LFR models need 560-dim vectors (80 * m, m=7).

Why tiling 80-dim statistics m times is (almost) the same as computing them on LFR frames:
sub-block k of LFR frame i is the raw frame x[clamp(n*i + k)], so the statistics of
sub-block k are those of every n-th raw frame starting at phase k. Over a corpus the phase
of a frame is unrelated to its content, so each sub-block's mean and variance converge to the
raw-frame mean and variance; the only systematic difference is at utterance edges, where the
clamp repeats the first/last frame (a few frames per utterance, mostly silence).
"""

from __future__ import annotations

import collections
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import kaldiio
import numpy as np
import torch

from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.kaldi_kv import iter_kv
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

DEFAULT_VAR_FLOOR = 1e-10  # Kaldi cmvn-to-nnet's default floor on the variance


class CmvnError(ValueError):
    """Malformed or mismatched CMVN data; the message names the file (and line)."""


# ---------------------------------------------------------------- am.mvn (Kaldi nnet1 text)


def _format_vector(values: np.ndarray) -> str:
    # 9 significant digits round-trip float32 exactly; models apply CMVN in float32.
    return " ".join(format(float(v), ".9g") for v in values)


def write_am_mvn(path, shift, scale) -> None:
    """Write ``am.mvn`` atomically in the layout FunASR's ``load_cmvn`` reads.

    Args:
        shift: (D,) added first (= -mean).
        scale: (D,) multiplied after (= 1 / std).
    """
    shift = np.asarray(shift, dtype=np.float64).reshape(-1)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1)
    if shift.shape != scale.shape:
        raise CmvnError(f"{path}: shift has {shift.size} values but scale has {scale.size}")
    if not (np.all(np.isfinite(shift)) and np.all(np.isfinite(scale))):
        raise CmvnError(f"{path}: refusing to write non-finite CMVN values")
    dim = shift.size
    with atomic_open(path) as f:
        f.write("<Nnet>\n")
        f.write(f"<Splice> {dim} {dim}\n[ 0 ]\n")
        f.write(f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {_format_vector(shift)} ]\n")
        f.write(f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {_format_vector(scale)} ]\n")
        f.write("</Nnet>\n")


def _tokens_with_lines(path) -> List[Tuple[str, int]]:
    tokens = []
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise CmvnError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            tokens.extend((token, line_no) for token in line.split())
    return tokens


def _parse_component(path, tokens, start: int, name: str) -> Tuple[np.ndarray, int]:
    """Parse ``<Name> out in [<LearnRateCoef> c] [ v1 .. vD ]`` starting after the tag."""
    tag_line = tokens[start - 1][1]
    try:
        out_dim, in_dim = int(tokens[start][0]), int(tokens[start + 1][0])
    except (IndexError, ValueError):
        raise CmvnError(f"{path}:{tag_line}: {name} must be followed by two integer dimensions") from None
    if out_dim != in_dim:
        raise CmvnError(f"{path}:{tag_line}: {name} has output dim {out_dim} != input dim {in_dim}")
    position = start + 2
    if position < len(tokens) and tokens[position][0] == "<LearnRateCoef>":
        position += 2
    if position >= len(tokens) or tokens[position][0] != "[":
        raise CmvnError(f"{path}:{tag_line}: {name} has no '[ ... ]' vector")
    position += 1
    values = []
    while position < len(tokens) and tokens[position][0] != "]":
        token, line_no = tokens[position]
        try:
            values.append(float(token))
        except ValueError:
            raise CmvnError(f"{path}:{line_no}: {name} value {token!r} is not a number") from None
        position += 1
    if position >= len(tokens):
        raise CmvnError(f"{path}:{tag_line}: {name} vector is not closed by ']'")
    if len(values) != out_dim:
        raise CmvnError(f"{path}:{tag_line}: {name} declares {out_dim} values but has {len(values)}")
    vector = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(vector)):
        raise CmvnError(f"{path}:{tag_line}: {name} contains non-finite values")
    return vector.astype(np.float32), position + 1


def read_am_mvn(path) -> Tuple[np.ndarray, np.ndarray]:
    """Read ``(shift, scale)`` (each (D,) float32) from a Kaldi nnet1 ``am.mvn``."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise CmvnError(f"{path}: no such CMVN file")
    tokens = _tokens_with_lines(path)
    found: Dict[str, np.ndarray] = {}
    position = 0
    while position < len(tokens):
        token = tokens[position][0]
        if token in ("<AddShift>", "<Rescale>"):
            if token in found:
                raise CmvnError(f"{path}:{tokens[position][1]}: {token} appears twice")
            found[token], position = _parse_component(path, tokens, position + 1, token)
        else:
            position += 1
    for name in ("<AddShift>", "<Rescale>"):
        if name not in found:
            raise CmvnError(f"{path}: no {name} component (not a Kaldi nnet1 am.mvn?)")
    shift, scale = found["<AddShift>"], found["<Rescale>"]
    if shift.size != scale.size:
        raise CmvnError(f"{path}: <AddShift> has {shift.size} dims but <Rescale> has {scale.size}")
    return shift, scale


def apply_cmvn(x, shift, scale, source: Optional[str] = None):
    """``(x + shift) * scale`` over the last dimension.

    Args:
        x: (..., D) numpy array or torch tensor (result has the same type, dtype and device).
        shift, scale: (D,) vectors, e.g. from :func:`read_am_mvn`.
        source: file the vectors came from, named in the dimension-mismatch error.
    """
    dim = int(np.shape(shift)[-1])
    if x.shape[-1] != dim or int(np.shape(scale)[-1]) != dim:
        where = f"{source}: " if source else ""
        raise CmvnError(
            f"{where}CMVN has {dim} dims (scale {int(np.shape(scale)[-1])}) but features have {x.shape[-1]}"
            " (LFR models need 80 * lfr_m)"
        )
    if isinstance(x, torch.Tensor):
        shift_t = torch.as_tensor(shift, dtype=x.dtype, device=x.device)
        scale_t = torch.as_tensor(scale, dtype=x.dtype, device=x.device)
        return (x + shift_t) * scale_t
    x = np.asarray(x)
    return (x + np.asarray(shift, dtype=x.dtype)) * np.asarray(scale, dtype=x.dtype)


def tile_for_lfr(vector, lfr_m: int) -> np.ndarray:
    """Repeat a (D,) statistic m times -> (m*D,), matching the LFR frame layout."""
    return np.tile(np.asarray(vector).reshape(-1), lfr_m)


# ---------------------------------------------------------------- statistics


def stats_to_shift_scale(
    sum_, sum_sq, count, var_floor: float = DEFAULT_VAR_FLOOR
) -> Tuple[np.ndarray, np.ndarray]:
    """From per-dimension sums to ``(shift, scale) = (-mean, 1/sqrt(max(var, var_floor)))``."""
    if count <= 0:
        raise CmvnError("cannot compute CMVN from 0 frames")
    mean = np.asarray(sum_, dtype=np.float64) / count
    variance = np.asarray(sum_sq, dtype=np.float64) / count - mean * mean
    floored = int(np.sum(variance < var_floor))
    if floored:
        logger.warning("CMVN: variance of %d dimension(s) floored to %g", floored, var_floor)
    return -mean, 1.0 / np.sqrt(np.maximum(variance, var_floor))


@dataclass
class CmvnStats:
    """Streaming per-dimension sum, sum of squares and frame count, in float64."""

    dim: Optional[int] = None
    frame_count: int = 0
    sum: Optional[np.ndarray] = None
    sum_sq: Optional[np.ndarray] = None

    def add(self, feats, source: Optional[str] = None) -> None:
        """Accumulate (T, D) frames; a D different from earlier frames raises CmvnError."""
        feats = np.asarray(feats, dtype=np.float64)
        if feats.ndim != 2:
            raise CmvnError(f"{source or 'features'}: expected (T, D) frames, got shape {feats.shape}")
        if self.dim is None:
            self.dim = feats.shape[1]
            self.sum = np.zeros(self.dim)
            self.sum_sq = np.zeros(self.dim)
        elif feats.shape[1] != self.dim:
            raise CmvnError(f"{source or 'features'}: {feats.shape[1]}-dim frames, earlier frames were {self.dim}-dim")
        self.sum += feats.sum(axis=0)
        self.sum_sq += np.square(feats).sum(axis=0)
        self.frame_count += feats.shape[0]

    def merge(self, other: "CmvnStats") -> None:
        if other.dim is None:
            return
        if self.dim is None:
            self.dim, self.frame_count = other.dim, other.frame_count
            self.sum, self.sum_sq = other.sum.copy(), other.sum_sq.copy()
            return
        if other.dim != self.dim:
            raise CmvnError(f"cannot merge {other.dim}-dim CMVN stats into {self.dim}-dim stats")
        self.sum += other.sum
        self.sum_sq += other.sum_sq
        self.frame_count += other.frame_count

    def shift_scale(self, var_floor: float = DEFAULT_VAR_FLOOR) -> Tuple[np.ndarray, np.ndarray]:
        return stats_to_shift_scale(self.sum, self.sum_sq, self.frame_count, var_floor)


def write_cmvn_json(path, stats: CmvnStats, var_floor: float = DEFAULT_VAR_FLOOR) -> None:
    """``cmvn.json``: mean / istd / frame count, plus the raw sums (FunASR's key names) for merging."""
    shift, scale = stats.shift_scale(var_floor)
    content = {
        "dim": stats.dim,
        "frame_num": stats.frame_count,
        "mean": (-shift).tolist(),
        "istd": scale.tolist(),
        "mean_stats": stats.sum.tolist(),
        "var_stats": stats.sum_sq.tolist(),
        "total_frames": stats.frame_count,
    }
    with atomic_open(path) as f:
        json.dump(content, f, indent=1)
        f.write("\n")


def read_cmvn_json(path) -> CmvnStats:
    """Read the sums back from ``cmvn.json`` (ours or FunASR's compute_audio_cmvn output)."""
    try:
        with open(path, "r", encoding="utf-8") as f:
            content = json.load(f)
        sum_ = np.asarray(content["mean_stats"], dtype=np.float64)
        sum_sq = np.asarray(content["var_stats"], dtype=np.float64)
        count = int(content["total_frames"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CmvnError(f"{path}: not a readable cmvn.json ({e})") from None
    if sum_.shape != sum_sq.shape or sum_.ndim != 1:
        raise CmvnError(f"{path}: mean_stats has {sum_.size} values but var_stats has {sum_sq.size}")
    return CmvnStats(dim=sum_.size, frame_count=count, sum=sum_, sum_sq=sum_sq)


@dataclass
class CmvnJobSummary:
    total: int = 0
    used: int = 0
    dropped: Dict[str, Tuple[str, str]] = field(default_factory=dict)  # utt -> (reason, detail)

    def describe(self) -> str:
        """e.g. ``6 utterances, 3 used, 3 dropped: 2 unreadable, 1 dim mismatch``."""
        text = f"{self.total} utterances, {self.used} used, {len(self.dropped)} dropped"
        counts = collections.Counter(reason for reason, _ in self.dropped.values())
        if counts:
            ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            text += ": " + ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in ordered)
        return text


def accumulate_feats_scp(feats_scp, expected_dim: Optional[int] = None) -> Tuple[CmvnStats, CmvnJobSummary]:
    """Stream every matrix of ``feats_scp`` (kaldiio) into float64 CMVN statistics.

    Unreadable, non-finite or wrongly-sized utterances are logged (naming scp:line and utt),
    skipped and returned in the summary. The first good utterance fixes the dimension unless
    ``expected_dim`` is given.
    """
    stats = CmvnStats(dim=None)
    summary = CmvnJobSummary()
    open_files: Dict[str, object] = {}
    entries = list(iter_kv(feats_scp))
    summary.total = len(entries)
    try:
        for utt_id, value, line_no in progress(entries, desc="cmvn", unit="utt"):
            where = f"{feats_scp}:{line_no}"
            try:
                feats = np.asarray(kaldiio.load_mat(value, fd_dict=open_files))
            except Exception as e:  # kaldiio raises many types for bad offsets/files
                reason, detail = "unreadable", f"cannot load {value}: {type(e).__name__}: {e}".rstrip(": ")
            else:
                dim = expected_dim if expected_dim is not None else stats.dim
                if feats.ndim != 2:
                    reason, detail = "bad_shape", f"expected a (T, D) matrix, got shape {feats.shape}"
                elif dim is not None and feats.shape[1] != dim:
                    reason, detail = "dim_mismatch", f"{feats.shape[1]}-dim frames, expected {dim}"
                elif not np.all(np.isfinite(feats)):
                    reason, detail = "non_finite", "contains NaN or inf"
                else:
                    stats.add(feats, where)
                    summary.used += 1
                    continue
            logger.warning("utt %s (%s): %s: %s, dropped", utt_id, where, reason.replace("_", " "), detail)
            summary.dropped[utt_id] = (reason, f"{where}: {detail}")
    finally:
        for handle in open_files.values():
            handle.close()
    return stats, summary
