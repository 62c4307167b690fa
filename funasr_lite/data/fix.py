"""Repair of a Kaldi data dir in place (utils/fix_data_dir.sh): keep the utterances present in
every per-utterance file, drop malformed and duplicate lines and empty transcripts, sort, and
regenerate spk2utt; :class:`FixReport` says what was dropped and why.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Dict, Iterable, List

from funasr_lite.data.datadir import (
    EMPTY_VALUE_ALLOWED,
    PER_UTT_FILES,
    REQUIRED_IF_PRESENT,
    DataDirError,
    c_locale_key,
    shorten_list,
    utt2spk_to_spk2utt,
    write_kv,
    write_spk2utt,
)
from funasr_lite.data.validate import ScannedFile, bad_values, scan_kv_file


@dataclass
class FixReport:
    """What fix_data_dir did: utterance counts, the dropped ones by reason, notes on bad lines."""

    before: int
    after: int
    dropped: Dict[str, List[str]]  # reason -> utterances
    notes: List[str]

    def summary(self, data_dir: str) -> str:
        """``data/train: 120 -> 117 utterances: 2 not in wav.scp (first: U1, U2), 1 empty transcript (U9)``."""
        head = f"{data_dir}: {self.before} -> {self.after} utterances"
        if not self.dropped:
            return head + " (nothing dropped)"
        parts = []
        for reason, utts in self.dropped.items():
            if len(utts) == 1:
                parts.append(f"1 {reason} ({utts[0]})")
            else:
                plural = reason.replace("empty transcript", "empty transcripts")
                parts.append(f"{len(utts)} {plural} (first: {shorten_list(utts)})")
        return head + ": " + ", ".join(parts)


def _backup(data_dir: str, names: Iterable[str]) -> None:
    backup_dir = os.path.join(data_dir, ".backup")
    os.makedirs(backup_dir, exist_ok=True)
    for name in names:
        shutil.copy2(os.path.join(data_dir, name), os.path.join(backup_dir, name))


def fix_data_dir(data_dir: str) -> FixReport:
    """Keep only utterances present in every per-utt file that exists and with a non-empty
    transcript; drop malformed and duplicate lines; sort; regenerate spk2utt. The originals go
    to ``<data_dir>/.backup/``. Raises DataDirError (changing nothing) if nothing would be left."""
    for name in ("wav.scp", "utt2spk"):
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise DataDirError(f"{os.path.join(data_dir, name)}: missing (fix_data_dir.sh needs wav.scp and utt2spk)")
    files: Dict[str, ScannedFile] = {}
    notes: List[str] = []
    for name in PER_UTT_FILES:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            scanned = scan_kv_file(path, allow_empty_value=name in EMPTY_VALUE_ALLOWED)
            scanned.unsorted = []  # sorting is part of the fix, not worth a note
            if name != "text":  # a malformed value makes the line unusable (empty text: below)
                scanned.bad_value_what, scanned.bad_value = bad_values(scanned, name)
                for _, key in scanned.bad_value:
                    del scanned.values[key], scanned.lines[key]
            notes += [p + " [line dropped]" for p in scanned.format_problems()]
            files[name] = scanned

    required = [name for name in REQUIRED_IF_PRESENT if name in files]
    bad_keys = {name: files[name].bad_keys() for name in required}
    all_utts = set()
    for name in required:
        all_utts.update(files[name].values)
        all_utts.update(bad_keys[name])
    dropped: Dict[str, List[str]] = {}
    kept = []
    for utt in sorted(all_utts, key=c_locale_key):
        reason = None
        for name in required:
            if utt not in files[name].values:
                reason = f"bad line in {name}" if utt in bad_keys[name] else f"not in {name}"
                break
        if reason is None and "text" in files and not files["text"].values[utt].strip():
            reason = "empty transcript"
        if reason is None:
            kept.append(utt)
        else:
            dropped.setdefault(reason, []).append(utt)
    if not kept:
        raise DataDirError(f"{data_dir}: no utterance is in all of {', '.join(required)} with a transcript; "
                           "nothing changed")

    existing = [name for name in PER_UTT_FILES + ("spk2utt",) if os.path.isfile(os.path.join(data_dir, name))]
    _backup(data_dir, existing)
    kept_set = set(kept)
    for name, scanned in files.items():
        write_kv(os.path.join(data_dir, name), {u: v for u, v in scanned.values.items() if u in kept_set})
    utt2spk = {u: files["utt2spk"].values[u] for u in kept}
    write_spk2utt(os.path.join(data_dir, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
    # Reasons in file order (wav.scp first), empty transcripts last.
    rank = {reason: i for i, reason in enumerate(
        [f"{kind} {name}" for name in required for kind in ("not in", "bad line in")] + ["empty transcript"])}
    dropped = {reason: dropped[reason] for reason in sorted(dropped, key=rank.__getitem__)}
    return FixReport(before=len(all_utts), after=len(kept), dropped=dropped, notes=notes)


__all__ = ["FixReport", "fix_data_dir"]
