"""Ground-truth character times of an utterance: the ``char_timestamps`` data-dir file.

One line per utterance, sorted by id (C locale)::

    UTT 字 start_ms end_ms 字 start_ms end_ms ...

Times are integer milliseconds from the start of the audio; a character's span never starts
before the previous one ends. Written by the synthetic corpus (``aishell_char_timestamps.txt``),
copied into ``data/<split>/char_timestamps`` by data preparation, read by scoring.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from funasr_lite.data.datadir import DataDirError, iter_kv
from funasr_lite.utils.fileio import atomic_open

CharTimes = List[Tuple[str, int, int]]


def write_char_timestamps(path: str, char_times: Dict[str, CharTimes]) -> None:
    """Write ``UTT 字 start_ms end_ms 字 start_ms end_ms ...`` lines sorted by utterance id."""
    with atomic_open(path) as f:
        for utt in sorted(char_times, key=lambda u: u.encode("utf-8")):
            fields = " ".join(f"{ch} {start} {end}" for ch, start, end in char_times[utt])
            f.write(f"{utt} {fields}\n")


def read_char_timestamps(path) -> Dict[str, CharTimes]:
    """Read the file written by :func:`write_char_timestamps`.

    Raises DataDirError naming ``path:line`` and the utterance on a malformed line (fields not
    in threes, non-integer or negative times, start after end, times going backwards, a
    duplicate utterance).
    """
    out: Dict[str, List[Tuple[str, int, int]]] = {}
    for utt, value, line_no in iter_kv(path):
        fields = value.split()
        where = f"{path}:{line_no}: utterance {utt!r}"
        if len(fields) % 3:
            raise DataDirError(f"{where}: {len(fields)} fields after the id, expected triples 'char start end'")
        if utt in out:
            raise DataDirError(f"{where}: duplicate utterance")
        entries = []
        previous_end = 0
        for i in range(0, len(fields), 3):
            char, start_text, end_text = fields[i:i + 3]
            try:
                start, end = int(start_text), int(end_text)
            except ValueError:
                raise DataDirError(f"{where}: times of {char!r} are not integers: {start_text} {end_text}") from None
            if start < previous_end or end < start:
                raise DataDirError(f"{where}: times of {char!r} ({start}, {end}) go backwards")
            entries.append((char, start, end))
            previous_end = end
        out[utt] = entries
    return out
