"""Batch collation: pad features with 0 and token ids with -1, keep utterance ids."""

from __future__ import annotations

from typing import Dict, List, Sequence

import torch

FEATURE_PAD = 0.0
TEXT_PAD = -1  # the models' ignore_id


def pad_sequences(sequences: Sequence[torch.Tensor], pad_value) -> torch.Tensor:
    """[(T_i, ...)] -> (B, max T_i, ...) padded with ``pad_value`` at the end."""
    if not sequences:
        raise ValueError("cannot pad an empty list of sequences")
    max_len = max(int(seq.shape[0]) for seq in sequences)
    first = sequences[0]
    out = first.new_full((len(sequences), max_len, *first.shape[1:]), pad_value)
    for i, seq in enumerate(sequences):
        out[i, : seq.shape[0]] = seq
    return out


def collate_batch(items: Sequence[Dict[str, object]]) -> Dict[str, object]:
    """Dataset items -> batch.

    Returns ``utt_ids`` (list of B str), ``speech`` (B, T, D) float32 padded with 0,
    ``speech_lengths`` (B,) int64, ``text`` (B, L) int64 padded with -1, ``text_lengths`` (B,),
    ``skipped_utts`` (the ids of items marked ``"unreadable"`` by the dataset, left out; see
    funasr_lite/data/dataset.py), and when the items carry ``embed`` (L, D): ``embed`` (B, L, D)
    padded with 0 and ``embed_lengths``. Every item unreadable: ValueError naming them.
    """
    skipped = [str(item["utt_id"]) for item in items if "unreadable" in item]
    if skipped:
        items = [item for item in items if "unreadable" not in item]
        if not items:
            raise ValueError(f"every utterance of this batch is unreadable: {', '.join(skipped)} "
                             "(see the warnings above; fix or drop them: utils/fix_data_dir.sh)")
    utt_ids: List[str] = [item["utt_id"] for item in items]
    speech = [item["speech"] for item in items]
    text = [item["text"] for item in items]
    batch = {
        "utt_ids": utt_ids,
        "speech": pad_sequences(speech, FEATURE_PAD),
        "speech_lengths": torch.tensor([int(s.shape[0]) for s in speech], dtype=torch.long),
        "text": pad_sequences(text, TEXT_PAD),
        "text_lengths": torch.tensor([int(t.shape[0]) for t in text], dtype=torch.long),
        "skipped_utts": skipped,
    }
    if "embed" in items[0]:
        embeds = [item["embed"] for item in items]
        batch["embed"] = pad_sequences(embeds, 0.0)
        batch["embed_lengths"] = torch.tensor([int(e.shape[0]) for e in embeds], dtype=torch.long)
    return batch
