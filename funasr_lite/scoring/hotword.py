"""Hotword scoring, as hotword papers report it (SeACo-Paraformer, arXiv 2308.03266; CB-Conformer):
on the same character alignment as the CER (:func:`funasr_lite.scoring.cer.align_sequences`).

* **Occurrences**: in each reference, the hotwords of the list found left to right, longest first
  where two overlap (a span is counted once); the same search over each hypothesis.
* **Recall**: the reference occurrences whose every character is aligned to an equal hypothesis
  character (the hotword came out right, where it was said) / all reference occurrences.
* **Precision**: the hypothesis occurrences that are such recalled spans / all hypothesis
  occurrences (a hotword put where none was said, or at the wrong place, counts against it).
* **U-CER** (unbiased CER): the CER over the reference characters outside every reference
  occurrence; an insertion counts where its left neighbour is (outside, or at the start).
  It shows what biasing costs the rest of the words. **B-CER**: the same inside the occurrences.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Mapping, Sequence, Set, Tuple

from funasr_lite.data.tokenizer import text_to_chars
from funasr_lite.scoring.cer import align_sequences


def find_occurrences(chars: Sequence[str], hotwords: Sequence[Sequence[str]]) -> List[Tuple[int, int]]:
    """Non-overlapping [start, end) spans of ``hotwords`` (char lists) in ``chars``: left to right,
    the longest hotword at a position first."""
    by_first: Dict[str, List[Tuple[str, ...]]] = {}
    for word in sorted({tuple(w) for w in hotwords if w}, key=len, reverse=True):
        by_first.setdefault(word[0], []).append(word)
    spans, position = [], 0
    while position < len(chars):
        for word in by_first.get(chars[position], ()):
            if tuple(chars[position : position + len(word)]) == word:
                spans.append((position, position + len(word)))
                position += len(word)
                break
        else:
            position += 1
    return spans


@dataclasses.dataclass
class HotwordScore:
    ref_occurrences: int = 0
    recalled: int = 0
    hyp_occurrences: int = 0
    hyp_correct: int = 0
    unbiased_chars: int = 0
    unbiased_errors: int = 0
    biased_chars: int = 0
    biased_errors: int = 0
    utterances: int = 0

    @property
    def recall(self) -> float:
        return 100.0 * self.recalled / self.ref_occurrences if self.ref_occurrences else 0.0

    @property
    def precision(self) -> float:
        return 100.0 * self.hyp_correct / self.hyp_occurrences if self.hyp_occurrences else 0.0

    @property
    def f1(self) -> float:
        total = self.recall + self.precision
        return 2 * self.recall * self.precision / total if total else 0.0

    @property
    def u_cer(self) -> float:
        return 100.0 * self.unbiased_errors / self.unbiased_chars if self.unbiased_chars else 0.0

    @property
    def b_cer(self) -> float:
        return 100.0 * self.biased_errors / self.biased_chars if self.biased_chars else 0.0

    def lines(self) -> List[str]:
        return [
            f"%HOTWORD_RECALL {self.recall:.2f} [ {self.recalled} / {self.ref_occurrences} reference occurrences ]",
            f"%HOTWORD_PRECISION {self.precision:.2f} [ {self.hyp_correct} / {self.hyp_occurrences} hypothesis "
            f"occurrences ] F1 {self.f1:.2f}",
            f"%U-CER {self.u_cer:.2f} [ {self.unbiased_errors} / {self.unbiased_chars} characters outside hotwords ]",
            f"%B-CER {self.b_cer:.2f} [ {self.biased_errors} / {self.biased_chars} characters of hotwords ]",
        ]


def score_hotwords(refs: Mapping[str, str], hyps: Mapping[str, str], hotwords: Sequence[str]) -> HotwordScore:
    """Score ``hyps`` against ``refs`` for the hotword list (module docstring); a missing hypothesis is empty."""
    words = [text_to_chars(word) for word in hotwords]
    score = HotwordScore()
    for key, ref_text in refs.items():
        ref, hyp = text_to_chars(ref_text), text_to_chars(hyps.get(key, ""))
        score.utterances += 1
        pairs = align_sequences(ref, hyp)
        ref_spans = find_occurrences(ref, words)
        inside: Set[int] = {i for start, end in ref_spans for i in range(start, end)}
        hyp_of_ref = {p.ref_index: p.hyp_index for p in pairs if p.op == "C"}
        recalled_spans = set()
        for start, end in ref_spans:
            if all(i in hyp_of_ref for i in range(start, end)) and \
                    hyp_of_ref[end - 1] - hyp_of_ref[start] == end - start - 1:  # nothing inserted inside
                recalled_spans.add((hyp_of_ref[start], hyp_of_ref[end - 1] + 1))
        score.ref_occurrences += len(ref_spans)
        score.recalled += len(recalled_spans)
        hyp_spans = find_occurrences(hyp, words)
        score.hyp_occurrences += len(hyp_spans)
        score.hyp_correct += sum(span in recalled_spans for span in hyp_spans)
        score.biased_chars += len(inside)
        score.unbiased_chars += len(ref) - len(inside)
        last_ref = -1  # an insertion counts where its left neighbour is (-1: the start, outside)
        for pair in pairs:  # in text order
            if pair.ref_index is not None:
                last_ref = pair.ref_index
            if pair.op == "C":
                continue
            if last_ref in inside:
                score.biased_errors += 1
            else:
                score.unbiased_errors += 1
    return score


__all__ = ["HotwordScore", "find_occurrences", "score_hotwords"]
