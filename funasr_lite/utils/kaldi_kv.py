"""Kaldi-style ``key value`` text files (wav.scp, text, utt2spk, feats.scp, utt2speed, ...).

One reader and one writer for every such file, at the bottom layer so that the frontend (which
reads wav.scp and utt2speed) and the data package (whose data-dir contract,
:mod:`funasr_lite.data.datadir`, is built on these files and re-exports them) share them.
Errors name the file and line. Keys are utterance (or speaker) ids; values keep inner spaces.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, Iterator, List, Tuple

from funasr_lite.utils.fileio import atomic_open


class DataDirError(ValueError):
    """A malformed data-dir file; the message names the file and line."""


def c_locale_key(key: str) -> bytes:
    """Sort key of the contract's order (C locale: UTF-8 bytes), as ``LC_ALL=C sort``."""
    return key.encode("utf-8")


def iter_kv(path, allow_empty_value: bool = False) -> Iterator[Tuple[str, str, int]]:
    """Yield ``(key, value, line_no)`` for each non-blank line of a Kaldi-style file.

    Raises DataDirError naming ``path:line`` on non-UTF-8 bytes or a missing value
    (unless ``allow_empty_value``). CRLF line ends and a UTF-8 byte-order mark at the start of
    the file are accepted (Windows editors write them); they are not part of any key or value.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataDirError(f"{path}:{line_no}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
            line = line.rstrip("\r\n")
            if line_no == 1 and line.startswith("\ufeff"):  # a byte-order mark (Windows editors): not part of the key
                line = line[1:]
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
