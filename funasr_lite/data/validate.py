"""Validation of Kaldi data dirs against the contract (see :mod:`funasr_lite.data.datadir`):
:func:`validate_data_dir` lists EVERY problem (file:line, utterance ids, counts) instead of
stopping at the first. Also the tolerant reader :func:`scan_kv_file` and the value rules that
:mod:`funasr_lite.data.fix` uses to repair a dir.

Command line: utils/validate_data_dir.sh (``python -m funasr_lite.bin.data_dir_tools validate``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from funasr_lite.data.datadir import EMPTY_VALUE_ALLOWED, FILTERED_ONLY, PER_UTT_FILES, c_locale_key, shorten_list


def _problem(path: str, what: str, hits: Sequence[Tuple[int, str]]) -> str:
    """One problem line: ``path:first_line: what (count): KEY (line n), ...``."""
    hits = sorted(hits)
    listed = shorten_list([f"{key} (line {line})" for line, key in hits])
    return f"{path}:{hits[0][0]}: {what} ({len(hits)}): {listed}"


# ---------------------------------------------------------------- tolerant reading

@dataclass
class ScannedFile:
    """A Kaldi key-value file read without stopping at the first error.

    ``values``/``lines`` hold the first good line of each key; bad lines are listed by kind.
    """

    path: str
    values: Dict[str, str] = field(default_factory=dict)
    lines: Dict[str, int] = field(default_factory=dict)
    not_utf8: List[Tuple[int, str]] = field(default_factory=list)
    no_value: List[Tuple[int, str]] = field(default_factory=list)
    duplicates: List[Tuple[int, str]] = field(default_factory=list)
    bad_value: List[Tuple[int, str]] = field(default_factory=list)  # filled by fix_data_dir only
    bad_value_what: str = "malformed value"
    unsorted: List[Tuple[int, str]] = field(default_factory=list)

    def format_problems(self) -> List[str]:
        out = []
        if self.not_utf8:
            out.append(_problem(self.path, "line not valid UTF-8", self.not_utf8))
        if self.no_value:
            out.append(_problem(self.path, "line with a key but no value", self.no_value))
        if self.duplicates:
            out.append(_problem(self.path, "duplicate key", self.duplicates))
        if self.bad_value:
            out.append(_problem(self.path, self.bad_value_what, self.bad_value))
        if self.unsorted:
            out.append(_problem(self.path, "not sorted (C-locale byte order): key before the previous one",
                                self.unsorted))
        return out

    def bad_keys(self) -> set:
        """Keys that appear on a dropped (malformed) line and on no good line."""
        return {key for _, key in self.not_utf8 + self.no_value + self.bad_value if key not in self.values}


def scan_kv_file(path: str, allow_empty_value: bool = False) -> ScannedFile:
    """Read ``path`` collecting every format problem instead of raising at the first."""
    scanned = ScannedFile(path)
    previous: Optional[bytes] = None
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                key = raw.split(maxsplit=1)[0].decode("utf-8", "replace") if raw.strip() else "?"
                scanned.not_utf8.append((line_no, key))
                continue
            parts = line.strip().split(maxsplit=1)
            if not parts:
                continue
            key = parts[0]
            value = parts[1] if len(parts) > 1 else ""
            if previous is not None and c_locale_key(key) < previous:
                scanned.unsorted.append((line_no, key))
            previous = c_locale_key(key)
            if not value and not allow_empty_value:
                scanned.no_value.append((line_no, key))
                continue
            if key in scanned.values:
                scanned.duplicates.append((line_no, key))
                continue
            scanned.values[key] = value
            scanned.lines[key] = line_no
    return scanned


# ---------------------------------------------------------------- validation

def _is_positive_number(value: str) -> bool:
    try:
        return float(value) > 0
    except ValueError:
        return False


# File -> (what is wrong, test of a good value), for the files whose values have a fixed form.
_VALUE_RULES = {
    "utt2spk": ("speaker id with spaces", lambda v: len(v.split()) == 1),
    "utt2num_frames": ("frame count not a positive integer", lambda v: v.isdigit() and int(v) > 0),
    "utt2speed": ("speed not a positive number", _is_positive_number),
    "utt2dur": ("duration not a positive number", _is_positive_number),
    "text": ("empty transcript", lambda v: bool(v.strip())),
}


def bad_values(scanned: ScannedFile, name: str) -> Tuple[str, List[Tuple[int, str]]]:
    """(description, [(line, key), ...]) of the values of ``name`` that break its rule."""
    if name not in _VALUE_RULES:
        return "", []
    what, is_good = _VALUE_RULES[name]
    return what, [(scanned.lines[k], k) for k, v in scanned.values.items() if not is_good(v)]


def _check_values(scanned: ScannedFile, name: str) -> List[str]:
    what, bad = bad_values(scanned, name)
    return [_problem(scanned.path, what, bad)] if bad else []


def _missing_from(source: ScannedFile, other: ScannedFile, other_name: str, what: str = "") -> List[str]:
    hits = [(source.lines[k], k) for k in source.values if k not in other.values]
    return [_problem(source.path, what or f"utterance not in {other_name}", hits)] if hits else []


def _check_speakers(utt2spk: ScannedFile, spk2utt: ScannedFile) -> List[str]:
    problems = []
    listed: Dict[str, Tuple[str, int]] = {}  # utt -> (spk, spk2utt line)
    wrong, twice, empty = [], [], []
    for spk, value in spk2utt.values.items():
        line = spk2utt.lines[spk]
        utts = value.split()
        if not utts:
            empty.append((line, spk))
        for utt in utts:
            if utt in listed:
                twice.append((line, utt))
                continue
            listed[utt] = (spk, line)
            if utt2spk.values.get(utt) != spk:
                wrong.append((line, f"{spk}:{utt}"))
    if wrong:
        problems.append(_problem(spk2utt.path, "speaker:utterance pair not in utt2spk", wrong))
    if twice:
        problems.append(_problem(spk2utt.path, "utterance listed more than once", twice))
    if empty:
        problems.append(_problem(spk2utt.path, "speaker without utterances", empty))
    absent = [(utt2spk.lines[u], u) for u, s in utt2spk.values.items()
              if u not in listed and len(s.split()) == 1]
    if absent:
        problems.append(_problem(utt2spk.path, "utterance missing from spk2utt", absent))
    return problems


def validate_data_dir(data_dir: str, require_feats: bool = True, require_text: bool = True) -> List[str]:
    """Check ``data_dir`` against the contract; return every problem found (empty = valid)."""
    if not os.path.isdir(data_dir):
        return [f"{data_dir}: not a directory"]
    required = ["wav.scp", "utt2spk", "spk2utt"]
    if require_text:
        required.append("text")
    if require_feats:
        required.append("feats.scp")
    problems = []
    for name in required:
        if not os.path.isfile(os.path.join(data_dir, name)):
            hint = {"text": " (give --no-text for data without transcripts)",
                    "feats.scp": " (give --no-feats before feature extraction)",
                    "spk2utt": " (make it with utt2spk_to_spk2utt.py or fix_data_dir.sh)"}.get(name, "")
            problems.append(f"{os.path.join(data_dir, name)}: missing{hint}")

    files: Dict[str, ScannedFile] = {}
    for name in PER_UTT_FILES + ("spk2utt",):
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            files[name] = scan_kv_file(path, allow_empty_value=name in EMPTY_VALUE_ALLOWED)
            problems += files[name].format_problems()
            problems += _check_values(files[name], name)

    wav = files.get("wav.scp")
    if wav is not None:
        if not wav.values and not wav.not_utf8 and not wav.no_value:
            problems.append(f"{wav.path}: no utterances")
        for name in ("text", "utt2spk", "feats.scp"):
            if name in files:  # these must cover exactly the utterances of wav.scp
                problems += _missing_from(files[name], wav, "wav.scp")
                problems += _missing_from(wav, files[name], name)
        for name in ("utt2num_frames", "utt2speed") + FILTERED_ONLY:
            if name in files:  # these may cover fewer utterances
                problems += _missing_from(files[name], wav, "wav.scp")
    if "utt2num_frames" in files and "feats.scp" in files:
        problems += _missing_from(files["feats.scp"], files["utt2num_frames"], "utt2num_frames")
    if "utt2spk" in files and "spk2utt" in files:
        problems += _check_speakers(files["utt2spk"], files["spk2utt"])
    return problems


__all__ = ["ScannedFile", "bad_values", "scan_kv_file", "validate_data_dir"]

