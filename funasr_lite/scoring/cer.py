"""Character error rate with Kaldi-style reports, all from ONE alignment per utterance.

Spaces are removed and every remaining character is one unit (SPEC-paraformer.md, "Scoring"). Each
utterance is aligned once (:func:`align_sequences`: minimum edit distance, unit costs, Kaldi's
tie-breaking) and every number is counted from that alignment: the totals of ``cer.txt``, the
``per_utt`` rows, the error lists of ``errors.txt`` and the pairs the timestamp scores use
(:mod:`funasr_lite.scoring.timestamps`). So the ``cer.txt`` totals are the sums of the ``#csid``
lines, and ``ab`` against ``ba`` is two substitutions everywhere (not a deletion plus an insertion
in one file and two substitutions in another). Among equal-cost alignments Kaldi's rule is used
(``LevenshteinAlignment`` in ``util/edit-distance-inl.h``, which ``align-text``/``wer_per_utt_details.pl``
show, and icefall's kaldialign): tracing back from the end, prefer a match/substitution, then a
deletion, then an insertion. Preferring substitutions keeps reference and hypothesis characters
paired, which the timestamp metrics need. The validation CER of the trainer is :func:`char_errors`,
the same alignment's error count.

Report lines (written by :func:`funasr_lite.scoring.decode_dir.score_decode_dir`):

* ``cer.txt``: one line ``%CER 4.82 [ 5050 / 104765, 124 ins, 180 del, 4746 sub ]``;
* ``per_utt``: per utterance ``ref``, ``hyp``, ``op`` (C/S/D/I, ``***`` = nothing) and ``#csid``
  lines, as Kaldi's ``wer_per_utt_details.pl`` writes them: ``#csid`` is correct, substitutions,
  insertions, deletions (in that order, insertions before deletions);
* ``errors.txt``: the CER line, utterances without a hypothesis (scored as all deletions),
  hypotheses without a reference (ignored), then the 20 most frequent substitutions, deletions
  and insertions.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import unicodedata
from typing import List, Mapping, Optional, Sequence, Tuple

from funasr_lite.data.tokenizer import text_to_chars

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
        """(correct, substitutions, insertions, deletions): Kaldi's ``#csid`` order (I before D)."""
        return self.count("C"), self.count("S"), self.count("I"), self.count("D")


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
    _, substitutions, insertions, deletions = totals
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


TimedUnit = Tuple[str, float, float]

