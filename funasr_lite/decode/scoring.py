"""Character error rate with Kaldi-style reports, all from ONE alignment per utterance.

Spaces are removed and every remaining character is one unit (SPEC §7). Each utterance is
aligned once (:func:`align_sequences`: minimum edit distance, unit costs, Kaldi's tie-breaking)
and every number below is counted from that alignment: the totals of ``cer.txt``, the
``per_utt`` rows, the error lists of ``errors.txt`` and the pairs of ``timestamp.txt``. So the
``cer.txt`` totals are the sums of the ``#csid`` lines, and ``ab`` against ``ba`` is two
substitutions everywhere (not a deletion plus an insertion in one file and two substitutions in
another). Among equal-cost alignments Kaldi's rule is used (``LevenshteinAlignment`` in
``util/edit-distance-inl.h``, which ``align-text``/``wer_per_utt_details.pl`` show, and icefall's
kaldialign): tracing back from the end, prefer a match/substitution, then a deletion, then an
insertion. Preferring substitutions keeps reference and hypothesis characters paired, which the
timestamp metrics need. The validation CER of the trainer is :func:`char_errors`, the same
alignment's error count.

Files written by :func:`score_decode_dir` into ``out_dir``:

* ``cer.txt``: one line ``%CER 4.82 [ 5050 / 104765, 124 ins, 180 del, 4746 sub ]``;
* ``per_utt``: per utterance ``ref``, ``hyp``, ``op`` (C/S/D/I, ``***`` = nothing) and ``#csid``
  lines, as Kaldi's ``wer_per_utt_details.pl`` writes them;
* ``errors.txt``: the CER line, utterances without a hypothesis (scored as all deletions),
  hypotheses without a reference (ignored), then the 20 most frequent substitutions, deletions
  and insertions;
* ``timestamp.txt`` (with timestamps): hypothesis token times against ground-truth character
  times, three lines (the first is the original format and is kept as it was)::

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

import collections
import dataclasses
import logging
import math
import os
import unicodedata
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.tokenizer import NON_TEXT_TOKENS, text_to_chars
from funasr_lite.decode.writers import read_time_stamps, read_tokens
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

EPSILON = "***"  # Kaldi's placeholder for "no token on this side"
TOP_ERRORS = 20


@dataclasses.dataclass(frozen=True)
class AlignedPair:
    """One step of an alignment: op in C/S/D/I; the index on a side is None when it is empty."""

    op: str
    ref_index: Optional[int]
    hyp_index: Optional[int]


def align_sequences(ref: Sequence[str], hyp: Sequence[str]) -> List[AlignedPair]:
    """Minimum edit-distance alignment (unit costs), in order: the one alignment of scoring.

    Among equal-cost alignments the backtrace prefers a match/substitution, then a deletion,
    then an insertion, at each step from the end (Kaldi's ``LevenshteinAlignment`` rule).
    """
    num_ref, num_hyp = len(ref), len(hyp)
    # cost[i][j]: edit distance between ref[:i] and hyp[:j]
    cost = [list(range(num_hyp + 1))]
    for i in range(1, num_ref + 1):
        previous = cost[-1]
        row = [i] + [0] * num_hyp
        ref_unit = ref[i - 1]
        for j in range(1, num_hyp + 1):
            row[j] = min(previous[j - 1] + (ref_unit != hyp[j - 1]), previous[j] + 1, row[j - 1] + 1)
        cost.append(row)

    pairs: List[AlignedPair] = []
    i, j = num_ref, num_hyp
    while i > 0 or j > 0:
        if i > 0 and j > 0 and cost[i][j] == cost[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append(AlignedPair("C" if ref[i - 1] == hyp[j - 1] else "S", i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i > 0 and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append(AlignedPair("D", i - 1, None))
            i -= 1
        else:
            pairs.append(AlignedPair("I", None, j - 1))
            j -= 1
    pairs.reverse()
    return pairs


def char_errors(reference: str, hypothesis: str) -> Tuple[int, int]:
    """(errors, reference characters) of one utterance, whitespace removed: the CER numerator
    and denominator from :func:`align_sequences` (what the trainer's validation CER sums)."""
    ref, hyp = text_to_chars(reference), text_to_chars(hypothesis)
    return sum(1 for pair in align_sequences(ref, hyp) if pair.op != "C"), len(ref)


@dataclasses.dataclass
class UttAlignment:
    key: str
    ref: List[str]
    hyp: List[str]
    pairs: List[AlignedPair]
    hyp_missing: bool = False

    def count(self, op: str) -> int:
        return sum(1 for p in self.pairs if p.op == op)

    @property
    def csid(self) -> Tuple[int, int, int, int]:
        return self.count("C"), self.count("S"), self.count("D"), self.count("I")


@dataclasses.dataclass
class CerResult:
    """Corpus totals (the sums over ``utts``) and the per-utterance alignments."""

    num_ref_chars: int
    substitutions: int
    deletions: int
    insertions: int
    utts: List[UttAlignment]
    missing_hyp_utts: List[str]
    extra_hyp_utts: List[str]
    # the lines of timestamp.txt, set by score_decode_dir when it scores timestamps
    timestamp_lines: Optional[List[str]] = None

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def cer_percent(self) -> float:
        return 100.0 * self.errors / self.num_ref_chars

    def cer_line(self) -> str:
        return (f"%CER {self.cer_percent:.2f} [ {self.errors} / {self.num_ref_chars}, "
                f"{self.insertions} ins, {self.deletions} del, {self.substitutions} sub ]")


def compute_cer(refs: Mapping[str, str], hyps: Mapping[str, str]) -> CerResult:
    """Score every reference utterance; a missing hypothesis counts as all deletions.

    Args:
        refs: utt -> reference transcript (spaces are ignored).
        hyps: utt -> hypothesis transcript; utts not in ``refs`` are reported and ignored.
    """
    keys = sorted(refs, key=lambda k: k.encode("utf-8"))
    missing = [k for k in keys if k not in hyps]
    extra = sorted((k for k in hyps if k not in refs), key=lambda k: k.encode("utf-8"))
    if missing:
        logger.warning("%d reference utterances have no hypothesis (scored as all deletions), e.g. %s",
                       len(missing), ", ".join(missing[:5]))
    if extra:
        logger.warning("%d hypothesis utterances have no reference (ignored), e.g. %s",
                       len(extra), ", ".join(extra[:5]))
    ref_chars = [text_to_chars(refs[k]) for k in keys]
    hyp_chars = [text_to_chars(hyps.get(k, "")) for k in keys]
    num_ref_chars = sum(len(r) for r in ref_chars)
    if num_ref_chars == 0:
        raise ValueError("the reference has no characters to score")

    utts = [UttAlignment(k, r, h, align_sequences(r, h), hyp_missing=k not in hyps)
            for k, r, h in zip(keys, ref_chars, hyp_chars)]
    totals = [sum(counts) for counts in zip(*(utt.csid for utt in utts))]
    _, substitutions, deletions, insertions = totals
    return CerResult(num_ref_chars, substitutions, deletions, insertions, utts, missing, extra)


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def per_utt_lines(utt: UttAlignment) -> List[str]:
    """Kaldi wer_per_utt_details lines: ``<utt> ref|hyp|op ...`` columns padded alike, then #csid."""
    columns = []
    for p in utt.pairs:
        ref_unit = utt.ref[p.ref_index] if p.ref_index is not None else EPSILON
        hyp_unit = utt.hyp[p.hyp_index] if p.hyp_index is not None else EPSILON
        columns.append((ref_unit, hyp_unit, p.op))
    rows = {"ref": [], "hyp": [], "op": []}
    for column in columns:
        width = max(_display_width(cell) for cell in column)
        for name, cell in zip(rows, column):
            rows[name].append(cell + " " * (width - _display_width(cell)))
    # "op" padded like "ref"/"hyp" so the three rows' columns line up
    lines = [f"{utt.key} {name:<3} " + " ".join(cells) for name, cells in rows.items()]
    lines.append(f"{utt.key} #csid " + " ".join(str(n) for n in utt.csid))
    return [line.rstrip() for line in lines]


def error_report_lines(result: CerResult, top: int = TOP_ERRORS) -> List[str]:
    substitutions: collections.Counter = collections.Counter()
    deletions: collections.Counter = collections.Counter()
    insertions: collections.Counter = collections.Counter()
    for utt in result.utts:
        for p in utt.pairs:
            if p.op == "S":
                substitutions[(utt.ref[p.ref_index], utt.hyp[p.hyp_index])] += 1
            elif p.op == "D":
                deletions[utt.ref[p.ref_index]] += 1
            elif p.op == "I":
                insertions[utt.hyp[p.hyp_index]] += 1

    def most_common(counter):  # ties in a stable order: by count, then by the units
        return sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:top]

    lines = [result.cer_line(), ""]
    lines.append(f"MISSING HYPOTHESES (scored as all deletions): {len(result.missing_hyp_utts)}")
    lines += [f"  {k}" for k in result.missing_hyp_utts]
    lines.append(f"HYPOTHESES WITHOUT REFERENCE (ignored): {len(result.extra_hyp_utts)}")
    lines += [f"  {k}" for k in result.extra_hyp_utts]
    lines += ["", f"SUBSTITUTIONS (top {top}): count ref -> hyp"]
    lines += [f"{n:6d}  {ref} -> {hyp}" for (ref, hyp), n in most_common(substitutions)]
    lines += ["", f"DELETIONS (top {top}): count ref"]
    lines += [f"{n:6d}  {ref}" for ref, n in most_common(deletions)]
    lines += ["", f"INSERTIONS (top {top}): count hyp"]
    lines += [f"{n:6d}  {hyp}" for hyp, n in most_common(insertions)]
    return lines


def load_char_timestamps(path) -> Dict[str, List[Tuple[str, float, float]]]:
    """Ground-truth char times (:mod:`funasr_lite.data.char_timestamps`)."""
    return read_char_timestamps(path)


TimedUnit = Tuple[str, float, float]


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


def score_decode_dir(
    ref_text,
    hyp_text,
    out_dir,
    ref_timestamps=None,
    hyp_timestamps=None,
    hyp_token=None,
) -> CerResult:
    """Score one decode and write cer.txt, per_utt, errors.txt (and timestamp.txt) into out_dir.

    With timestamps, the returned result's ``timestamp_lines`` holds the lines of timestamp.txt.

    Args:
        ref_text: Kaldi ``text`` of the reference (e.g. data/test/text).
        hyp_text: ``1best_recog/text``; empty hypotheses (``utt`` alone) are allowed.
        ref_timestamps: data/<split>/char_timestamps (ground truth); needs ``hyp_timestamps``.
        hyp_timestamps: ``1best_recog/time_stamp``.
        hyp_token: ``1best_recog/token``; default: beside ``hyp_timestamps``.
    """
    if (ref_timestamps is None) != (hyp_timestamps is None):
        raise ValueError("timestamps need both the reference and the hypothesis file")
    result = compute_cer(read_kv(ref_text), read_kv(hyp_text, allow_empty_value=True))
    os.makedirs(out_dir, exist_ok=True)
    with atomic_open(os.path.join(out_dir, "cer.txt")) as f:
        f.write(result.cer_line() + "\n")
    with atomic_open(os.path.join(out_dir, "per_utt")) as f:
        for utt in result.utts:
            f.write("\n".join(per_utt_lines(utt)) + "\n")
    with atomic_open(os.path.join(out_dir, "errors.txt")) as f:
        f.write("\n".join(error_report_lines(result)) + "\n")

    timestamp_report = os.path.join(out_dir, "timestamp.txt")
    if ref_timestamps is None and os.path.exists(timestamp_report):
        os.unlink(timestamp_report)  # from an earlier scoring; would not match this one
    if ref_timestamps is not None:
        if hyp_token is None:
            hyp_token = os.path.join(os.path.dirname(os.fspath(hyp_timestamps)), "token")
        ref_times = load_char_timestamps(ref_timestamps)
        tokens, times = read_tokens(hyp_token), read_time_stamps(hyp_timestamps)
        scores = compute_timestamp_scores(result, ref_times, tokens, times)
        result.timestamp_lines = ([timestamp_shift_line(scores.shift, len(scores.skipped))]
                                  + correct_char_timing_lines(scores.timing))
        with atomic_open(timestamp_report) as f:
            f.write("\n".join(result.timestamp_lines) + "\n")
    return result

