"""Kaldi data-dir files: ``key value`` per line (wav.scp, text, utt2spk, feats.scp, ...).

Errors name the file and line. Keys are utterance (or speaker) ids; values keep inner spaces.

The data-dir contract: ``key value`` files sorted by key in C-locale byte order, without
duplicate keys: wav.scp, utt2spk, spk2utt (required), text (required unless --no-text),
feats.scp (required unless --no-feats), utt2num_frames, utt2speed, char_timestamps, utt2dur
(optional). Every per-utterance file covers the utterances of wav.scp (the optional ones: a
subset of them); utt2spk and spk2utt describe the same mapping; transcripts are not empty.
Checked by :mod:`funasr_lite.data.validate`, repaired by :mod:`funasr_lite.data.fix`; new data
dirs are made from existing ones by :mod:`funasr_lite.data.datadir_ops`.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Iterator, List, Sequence, Tuple

from funasr_lite.utils.fileio import atomic_open

# Per-utterance files. An utterance is kept by fix_data_dir only if it is in every one of the
# REQUIRED_IF_PRESENT files that exist; the FILTERED_ONLY ones follow but never drop an utterance.
REQUIRED_IF_PRESENT = ("wav.scp", "text", "utt2spk", "feats.scp", "utt2num_frames", "utt2speed")
FILTERED_ONLY = ("char_timestamps", "utt2dur")
PER_UTT_FILES = REQUIRED_IF_PRESENT + FILTERED_ONLY
# Files whose value may legitimately be empty on disk (an empty transcript is reported, not a
# format error).
EMPTY_VALUE_ALLOWED = ("text", "char_timestamps")
# How many ids a message lists before "...".
MAX_SHOWN = 5


class DataDirError(ValueError):
    """A malformed data-dir file; the message names the file and line."""


def c_locale_key(key: str) -> bytes:
    """Sort key of the contract's order (C locale: UTF-8 bytes), as ``LC_ALL=C sort``."""
    return key.encode("utf-8")


def shorten_list(items: Sequence[str]) -> str:
    """``a, b, c`` or ``a, b, c, d, e, ...`` (the first MAX_SHOWN), for messages."""
    text = ", ".join(items[:MAX_SHOWN])
    return text + (", ..." if len(items) > MAX_SHOWN else "")


def iter_kv(path, allow_empty_value: bool = False) -> Iterator[Tuple[str, str, int]]:
    """Yield ``(key, value, line_no)`` for each non-blank line of a Kaldi-style file.

    Raises DataDirError naming ``path:line`` on non-UTF-8 bytes or a missing value
    (unless ``allow_empty_value``).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataDirError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            parts = line.strip().split(maxsplit=1)
            key = parts[0]
            value = parts[1] if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                raise DataDirError(f"{path}:{line_no}: utterance {key!r} has no value")
            yield key, value, line_no


def read_kv(path, allow_empty_value: bool = False) -> Dict[str, str]:
    """Read a Kaldi-style file into an insertion-ordered dict; duplicate keys are an error."""
    out: Dict[str, str] = {}
    first_line: Dict[str, int] = {}
    for key, value, line_no in iter_kv(path, allow_empty_value):
        if key in out:
            raise DataDirError(f"{path}:{line_no}: duplicate key {key!r} (first at line {first_line[key]})")
        out[key] = value
        first_line[key] = line_no
    return out


def write_kv(path, items: Iterable[Tuple[str, str]] | Dict[str, str], sort: bool = True) -> None:
    """Write ``key value`` lines atomically, sorted by key (C-locale byte order) by default."""
    pairs: List[Tuple[str, str]] = list(items.items() if isinstance(items, dict) else items)
    if sort:
        pairs.sort(key=lambda kv: c_locale_key(kv[0]))
    with atomic_open(path) as f:
        for key, value in pairs:
            f.write(f"{key} {value}\n" if value != "" else f"{key}\n")


# ---------------------------------------------------------------- speaker maps

def utt2spk_to_spk2utt(utt2spk: Dict[str, str]) -> Dict[str, List[str]]:
    """{utt: spk} -> {spk: [utt, ...]} with speakers and utterances in C-locale order."""
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=c_locale_key):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: spk2utt[spk] for spk in sorted(spk2utt, key=c_locale_key)}


def spk2utt_to_utt2spk(spk2utt: Dict[str, List[str]]) -> Dict[str, str]:
    """{spk: [utt, ...]} -> {utt: spk}; an utterance under two speakers is an error."""
    utt2spk: Dict[str, str] = {}
    for spk, utts in spk2utt.items():
        for utt in utts:
            if utt in utt2spk:
                raise DataDirError(f"utterance {utt!r} is listed under speakers {utt2spk[utt]!r} and {spk!r}")
            utt2spk[utt] = spk
    return utt2spk


def read_spk2utt(path: str) -> Dict[str, List[str]]:
    return {spk: utts.split() for spk, utts in read_kv(path).items()}


def write_spk2utt(path: str, spk2utt: Dict[str, List[str]]) -> None:
    write_kv(path, {spk: " ".join(utts) for spk, utts in spk2utt.items()})
