"""Training hotwords sampled from each batch's transcripts (FunASR's ``AudioDatasetHotword``).

Each utterance of 2+ tokens gives, with probability 0.75, one span of 2-8 of its tokens (two spans,
with probability 0.1, when it has more than 12); every span of the batch plus ``<s>`` is the
batch's hotword list, shared by all its utterances (the other utterances' spans act as
distractors). For SeACo the labels are ``seaco_id`` (NO_BIAS) on every token but the utterance's
own span, which keeps its tokens. Draws come from the ``random.Random`` the caller passes (the
trainer passes Python's global one, whose state checkpoints keep: a resumed run draws the same).
"""

from __future__ import annotations

import random
from typing import Dict, List, Optional

import torch

MIN_LENGTH, MAX_LENGTH, SAMPLE_RATE, DOUBLE_RATE = 2, 8, 0.75, 0.1  # FunASR's defaults (not configurable there)


def sample_spans(length: int, rng: random.Random) -> List[int]:
    """FunASR's ``generate_index``: [-1] (none), [start, end] or [start1, end1, start2, end2], ends inclusive."""
    if length < MIN_LENGTH or rng.random() >= SAMPLE_RATE:
        return [-1]
    if length == MIN_LENGTH:
        return [0, length - 1]
    if rng.random() < DOUBLE_RATE and length > MAX_LENGTH + MIN_LENGTH + 2:
        longest = min(MAX_LENGTH, length // 2)
        start1 = rng.randint(0, length // 3)
        end1 = rng.randint(start1 + MIN_LENGTH - 1, start1 + longest - 1)
        start2 = rng.randint(end1 + 1, length - MIN_LENGTH)
        end2 = rng.randint(min(length - 1, start2 + MIN_LENGTH - 1), min(length - 1, start2 + MAX_LENGTH - 1))
        return [start1, end1, start2, end2]
    start = rng.randint(0, length - MIN_LENGTH)
    end = rng.randint(min(length - 1, start + MIN_LENGTH - 1), min(length - 1, start + MAX_LENGTH - 1))
    return [start, end]


def error_span(wrong: List[int], length: int, rng: random.Random) -> List[int]:
    """A span of 2-8 tokens, [start, end] inclusive, around one of the ``wrong`` positions drawn at
    random (SeACo's ``seaco_error_spans``: spans the decoder cannot label by itself)."""
    at = rng.choice(wrong)
    size = rng.randint(MIN_LENGTH, min(MAX_LENGTH, length))
    start = rng.randint(max(0, at - size + 1), min(at, length - size))
    return [start, start + size - 1]


def spans_of_labels(labels: List[int], seaco_id: int) -> List[int]:
    """The spans a row of ``seaco_label_pad`` marks (:func:`hotword_batch`'s inverse): [-1] for
    none, else [start1, end1, ...] ends inclusive."""
    kept = [label >= 0 and label != seaco_id for label in labels]
    starts = [i for i, k in enumerate(kept) if k and (i == 0 or not kept[i - 1])]
    ends = [i for i, k in enumerate(kept) if k and (i == len(kept) - 1 or not kept[i + 1])]
    return [index for pair in zip(starts, ends) for index in pair] or [-1]


def hotword_batch(text: torch.Tensor, text_lengths: torch.Tensor, spans: List[List[int]], sos_id: int,
                  seaco_id: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """FunASR's collator: ``hotword_pad`` (N+1, L) padded with 0 (``<s>`` last), ``hotword_lengths``
    (N+1,) int32 and, with ``seaco_id``, ``seaco_label_pad`` (B, L_text) padded with -1."""
    words: List[torch.Tensor] = []
    labels = torch.full_like(text, -1) if seaco_id is not None else None
    for row, (indices, length) in enumerate(zip(spans, text_lengths.tolist())):
        if labels is not None:
            labels[row, :length] = seaco_id
        for start, end in zip(indices[::2], indices[1::2]):
            if start < 0:
                continue
            words.append(text[row, start : end + 1])
            if labels is not None:
                labels[row, start : end + 1] = text[row, start : end + 1]
    words.append(torch.tensor([sos_id], dtype=text.dtype))
    batch = {
        "hotword_pad": torch.nn.utils.rnn.pad_sequence(words, batch_first=True, padding_value=0),
        "hotword_lengths": torch.tensor([len(word) for word in words], dtype=torch.int32),
    }
    if labels is not None:
        batch["seaco_label_pad"] = labels
    return batch


def sample_hotword_batch(text: torch.Tensor, text_lengths: torch.Tensor, rng: random.Random, sos_id: int,
                         seaco_id: Optional[int] = None) -> Dict[str, torch.Tensor]:
    """Spans drawn per utterance (:func:`sample_spans`), then :func:`hotword_batch`."""
    spans = [sample_spans(int(length), rng) for length in text_lengths.tolist()]
    return hotword_batch(text, text_lengths, spans, sos_id, seaco_id)


__all__ = ["error_span", "hotword_batch", "sample_hotword_batch", "sample_spans", "spans_of_labels"]
