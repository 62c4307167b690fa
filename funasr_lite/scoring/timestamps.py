"""Timestamps scored against ground-truth character times, on the pairs of the CER alignment.

``timestamp.txt`` (written by :func:`funasr_lite.scoring.decode_dir.score_decode_dir`): hypothesis token
times against ground-truth character times, three lines (the first is the original format and is
kept as it was)::


  %AAS start 164.36 ms end 250.41 ms [ 2894 pairs: 1462 cor, 1432 sub; 8 del, 2 ins; 0 utts skipped ]
  %AAS_COR start 163.26 ms end 251.47 ms [ 1462 correct chars: 50.38% of 2902 ref chars ]
  %BIAS_COR start +154.03 ms end +249.82 ms [ mean hyp - ref over the same 1462 chars ]

``%AAS``: mean absolute start/end shift over the correct AND substituted pairs of the CER
alignment (:func:`timestamp_shift`); a substituted token may not even cover the same
sound, so this mixes timing and recognition errors. ``%AAS_COR``: the same mean absolute shift
over the characters aligned as correct only, with how many there were and what share of the
reference characters (of the utterances with ground truth) that is. ``%BIAS_COR``: the mean
signed error ``hyp - ref`` over the same characters: positive = the hypothesis is late. A bias
close to the absolute shift means a systematic offset rather than scatter.
Deleted and inserted characters, and substitutions, never enter the ``_COR`` lines; values
are ``nan`` when no character is aligned as correct.

The pairs are those of the utterance's CER alignment, so the ground-truth characters must be
the reference text's characters and the hypothesis tokens (without ``<unk>``-like tokens, which
have no text) the hypothesis text's characters. ``utts skipped`` counts the hypotheses without
ground truth and the utterances where the units differ (e.g. multi-character BPE tokens, or a
ground-truth line for an utterance the reference text does not have); a warning names them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.tokenizer import NON_TEXT_TOKENS
from funasr_lite.scoring.cer import AlignedPair, CerResult, TimedUnit, align_sequences

logger = logging.getLogger(__name__)


def load_char_timestamps(path) -> Dict[str, List[Tuple[str, float, float]]]:
    """Ground-truth char times (:mod:`funasr_lite.data.char_timestamps`)."""
    return read_char_timestamps(path)


def _hypothesis_units(key: str, hyp_tokens: Mapping[str, Sequence[str]],
                      hyp_timestamps: Mapping[str, Sequence[Sequence[float]]]) -> List[TimedUnit]:
    """``(token, start_ms, end_ms)`` per hypothesis token of one utterance (empty without one);
    tokens without text (``<unk>``, ``</s>``, ...: not in the hypothesis text) are left out."""
    tokens = list(hyp_tokens.get(key, []))
    times = list(hyp_timestamps.get(key, []))
    if len(tokens) != len(times):
        raise ValueError(f"utterance {key}: {len(tokens)} hypothesis tokens but {len(times)} timestamps")
    return [(token, start, end) for token, (start, end) in zip(tokens, times) if token not in NON_TEXT_TOKENS]


def _pairs_of(ref: Sequence[TimedUnit], hyp: Sequence[TimedUnit],
              pairs: Optional[Sequence[AlignedPair]]) -> Sequence[AlignedPair]:
    return pairs if pairs is not None else align_sequences([u[0] for u in ref], [u[0] for u in hyp])


@dataclasses.dataclass
class TimestampShift:
    """Summed absolute start/end shifts over aligned (correct or substituted) token pairs."""

    start_shift_ms_sum: float = 0.0
    end_shift_ms_sum: float = 0.0
    num_correct: int = 0
    num_substituted: int = 0
    num_deleted: int = 0
    num_inserted: int = 0

    @property
    def num_pairs(self) -> int:
        return self.num_correct + self.num_substituted

    @property
    def mean_start_shift_ms(self) -> float:
        return self.start_shift_ms_sum / self.num_pairs if self.num_pairs else float("nan")

    @property
    def mean_end_shift_ms(self) -> float:
        return self.end_shift_ms_sum / self.num_pairs if self.num_pairs else float("nan")

    def __add__(self, other: "TimestampShift") -> "TimestampShift":
        return TimestampShift(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def timestamp_shift(ref: Sequence[TimedUnit], hyp: Sequence[TimedUnit],
                    pairs: Optional[Sequence[AlignedPair]] = None) -> TimestampShift:
    """Accumulate |start_hyp - start_ref| and |end_hyp - end_ref| over aligned token pairs.

    Args:
        ref: ground truth ``(char, start_ms, end_ms)`` per character.
        hyp: ``(token, start_ms, end_ms)`` per hypothesis token.
        pairs: the utterance's CER alignment of these units (default: :func:`align_sequences`).
    Only correct and substituted pairs contribute; deletions and insertions are counted.
    """
    shift = TimestampShift()
    for pair in _pairs_of(ref, hyp, pairs):
        if pair.op == "D":
            shift.num_deleted += 1
        elif pair.op == "I":
            shift.num_inserted += 1
        else:
            _, ref_start, ref_end = ref[pair.ref_index]
            _, hyp_start, hyp_end = hyp[pair.hyp_index]
            shift.start_shift_ms_sum += abs(float(hyp_start) - float(ref_start))
            shift.end_shift_ms_sum += abs(float(hyp_end) - float(ref_end))
            if pair.op == "C":
                shift.num_correct += 1
            else:
                shift.num_substituted += 1
    return shift


@dataclasses.dataclass
class CorrectCharTiming:
    """Start/end errors ``hyp - ref`` (ms) summed over the characters aligned as correct.

    Only "C" pairs of the CER alignment count: a substituted token may time a different sound,
    and deleted/inserted ones have no partner. ``num_ref_chars`` counts every reference character
    (with ground truth), so the share of characters behind the means is known.
    """

    num_ref_chars: int = 0
    num_correct: int = 0
    start_error_ms_sum: float = 0.0  # signed: positive = hypothesis late
    end_error_ms_sum: float = 0.0
    start_abs_error_ms_sum: float = 0.0
    end_abs_error_ms_sum: float = 0.0

    def _mean(self, total: float) -> float:
        return total / self.num_correct if self.num_correct else float("nan")

    @property
    def mean_abs_start_ms(self) -> float:
        return self._mean(self.start_abs_error_ms_sum)

    @property
    def mean_abs_end_ms(self) -> float:
        return self._mean(self.end_abs_error_ms_sum)

    @property
    def mean_start_bias_ms(self) -> float:
        return self._mean(self.start_error_ms_sum)

    @property
    def mean_end_bias_ms(self) -> float:
        return self._mean(self.end_error_ms_sum)

    @property
    def usable_percent(self) -> float:
        """Correct characters as a percentage of the reference characters."""
        return 100.0 * self.num_correct / self.num_ref_chars if self.num_ref_chars else float("nan")

    def __add__(self, other: "CorrectCharTiming") -> "CorrectCharTiming":
        return CorrectCharTiming(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))


def correct_char_timing(ref: Sequence[TimedUnit], hyp: Sequence[TimedUnit],
                        pairs: Optional[Sequence[AlignedPair]] = None) -> CorrectCharTiming:
    """Errors of one utterance's hypothesis times over its characters aligned as correct.

    Args:
        ref: ground truth ``(char, start_ms, end_ms)`` per character.
        hyp: ``(token, start_ms, end_ms)`` per hypothesis token.
        pairs: the utterance's CER alignment of these units (default: :func:`align_sequences`),
            so these characters are exactly the ``cor`` count of the ``%AAS`` line.
    """
    timing = CorrectCharTiming(num_ref_chars=len(ref))
    for pair in _pairs_of(ref, hyp, pairs):
        if pair.op != "C":
            continue
        _, ref_start, ref_end = ref[pair.ref_index]
        _, hyp_start, hyp_end = hyp[pair.hyp_index]
        start_error = float(hyp_start) - float(ref_start)
        end_error = float(hyp_end) - float(ref_end)
        timing.num_correct += 1
        timing.start_error_ms_sum += start_error
        timing.end_error_ms_sum += end_error
        timing.start_abs_error_ms_sum += abs(start_error)
        timing.end_abs_error_ms_sum += abs(end_error)
    return timing


@dataclasses.dataclass
class TimestampScores:
    """The timestamp metrics of a decode, and the utterances left out (see the module docstring)."""

    shift: TimestampShift
    timing: CorrectCharTiming
    skipped: List[str]


def compute_timestamp_scores(
    result: CerResult,
    ref_timestamps: Mapping[str, Sequence[TimedUnit]],
    hyp_tokens: Mapping[str, Sequence[str]],
    hyp_timestamps: Mapping[str, Sequence[Sequence[float]]],
) -> TimestampScores:
    """Timestamp shift and correct-character timing over the scored utterances with ground truth,
    each on the pairs of its CER alignment in ``result``.

    A reference utterance without a hypothesis counts its characters as deleted. Skipped (named
    in a warning, counted): hypotheses without ground truth, and utterances whose ground-truth
    characters or hypothesis tokens are not the units the CER alignment paired.
    """
    shift, timing = TimestampShift(), CorrectCharTiming()
    scored = set()
    differing: List[str] = []
    for utt in result.utts:
        if utt.key not in ref_timestamps:
            continue
        ref = list(ref_timestamps[utt.key])
        hyp = _hypothesis_units(utt.key, hyp_tokens, hyp_timestamps)
        if [u[0] for u in ref] != utt.ref or [u[0] for u in hyp] != utt.hyp:
            differing.append(utt.key)
            continue
        shift = shift + timestamp_shift(ref, hyp, utt.pairs)
        timing = timing + correct_char_timing(ref, hyp, utt.pairs)
        scored.add(utt.key)
    no_truth = [k for k in hyp_timestamps if k not in ref_timestamps]
    unscored_truth = [k for k in ref_timestamps if k not in scored and k not in differing]
    if no_truth:
        logger.warning("%d hypothesis utterances have no ground-truth timestamps (skipped), e.g. %s",
                       len(no_truth), ", ".join(no_truth[:5]))
    if differing:
        logger.warning("%d utterances skipped in timestamp scoring: their ground-truth characters or hypothesis "
                       "tokens are not the characters of the texts scored for CER, e.g. %s",
                       len(differing), ", ".join(differing[:5]))
    if unscored_truth:
        logger.warning("%d ground-truth timestamp utterances are not in the reference text (skipped), e.g. %s",
                       len(unscored_truth), ", ".join(unscored_truth[:5]))
    skipped = sorted(set(no_truth) | set(differing) | set(unscored_truth), key=lambda k: k.encode("utf-8"))
    return TimestampScores(shift, timing, skipped)


def _format_ms(value: float, signed: bool = False) -> str:
    if math.isnan(value):
        return "nan"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def correct_char_timing_lines(timing: CorrectCharTiming) -> List[str]:
    """The ``%AAS_COR`` and ``%BIAS_COR`` lines of timestamp.txt (see the module docstring)."""
    usable = "nan" if math.isnan(timing.usable_percent) else f"{timing.usable_percent:.2f}"
    return [
        f"%AAS_COR start {_format_ms(timing.mean_abs_start_ms)} ms end {_format_ms(timing.mean_abs_end_ms)} ms "
        f"[ {timing.num_correct} correct chars: {usable}% of {timing.num_ref_chars} ref chars ]",
        f"%BIAS_COR start {_format_ms(timing.mean_start_bias_ms, signed=True)} ms "
        f"end {_format_ms(timing.mean_end_bias_ms, signed=True)} ms "
        f"[ mean hyp - ref over the same {timing.num_correct} chars ]",
    ]


def timestamp_shift_line(shift: TimestampShift, num_skipped: int = 0) -> str:
    """``%AAS start <ms> ms end <ms> ms [ <pairs> pairs: <n> cor, <n> sub; <n> del, <n> ins; <n> skipped ]``."""
    return (f"%AAS start {shift.mean_start_shift_ms:.2f} ms end {shift.mean_end_shift_ms:.2f} ms "
            f"[ {shift.num_pairs} pairs: {shift.num_correct} cor, {shift.num_substituted} sub; "
            f"{shift.num_deleted} del, {shift.num_inserted} ins; {num_skipped} utts skipped ]")

