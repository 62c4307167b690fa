"""Punctuation scores: per-class precision, recall and F1 of the marks after each token.

Reference and hypothesis label the SAME tokens (the reference text with its marks removed is what
the punctuator reads), so token i's reference mark is compared with its predicted mark; no
alignment is needed. For a class c (``，`` ``。`` ``？`` ``、``):

    tp = tokens with reference c and hypothesis c
    fp = tokens with hypothesis c and another reference (including none)
    fn = tokens with reference c and another hypothesis (including none)
    precision = tp / (tp + fp), recall = tp / (tp + fn), F1 = 2PR / (P + R)  (0 when undefined)

``overall`` is the micro average over the four classes (a mark in the right place but of the
wrong class counts as one fp and one fn); ``any_mark`` scores only WHERE a mark is, whatever its
class (a sentence/clause boundary score).
"""

from __future__ import annotations

from typing import Dict, Iterable, Sequence, Tuple

PUNC_CLASSES = ("，", "。", "？", "、")
NONE = ""  # no mark; "_" is read as none too


def _prf(tp: int, fp: int, fn: int) -> Dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn, "support": tp + fn}


def punctuation_scores(pairs: Iterable[Tuple[Sequence[str], Sequence[str]]],
                       classes: Sequence[str] = PUNC_CLASSES) -> Dict[str, Dict[str, float]]:
    """``pairs``: (reference marks, hypothesis marks) per text, one mark (or "" / "_") per token.

    Returns {class: {precision, recall, f1, tp, fp, fn, support}, "overall": ..., "any_mark": ...}.
    A pair of different lengths is an error.
    """
    counts = {c: [0, 0, 0] for c in classes}
    boundary = [0, 0, 0]
    for number, (reference, hypothesis) in enumerate(pairs):
        if len(reference) != len(hypothesis):
            raise ValueError(f"text {number}: {len(reference)} reference marks but {len(hypothesis)} hypothesis marks")
        for ref, hyp in zip(reference, hypothesis):
            ref = NONE if ref == "_" else ref
            hyp = NONE if hyp == "_" else hyp
            if ref == hyp:
                if ref in counts:
                    counts[ref][0] += 1
            else:
                if hyp in counts:
                    counts[hyp][1] += 1
                if ref in counts:
                    counts[ref][2] += 1
            ref_mark, hyp_mark = ref in counts, hyp in counts
            boundary[0] += ref_mark and hyp_mark
            boundary[1] += hyp_mark and not ref_mark
            boundary[2] += ref_mark and not hyp_mark
    scores = {c: _prf(*counts[c]) for c in classes}
    scores["overall"] = _prf(*(sum(counts[c][i] for c in classes) for i in range(3)))
    scores["any_mark"] = _prf(*boundary)
    return scores


def punctuation_score_lines(scores: Dict[str, Dict[str, float]]) -> list:
    """A small table: class, precision, recall, F1 (in %), support."""
    lines = [f"{'class':<9} {'P':>6} {'R':>6} {'F1':>6} {'support':>8}"]
    for name, s in scores.items():
        lines.append(f"{name:<9} {100 * s['precision']:6.2f} {100 * s['recall']:6.2f} {100 * s['f1']:6.2f} "
                     f"{int(s['support']):8d}")
    return lines
