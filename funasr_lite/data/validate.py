"""The Kaldi data-dir contract: validate, fix, speed-perturb, combine and subset data dirs.

A data dir holds ``key value`` files sorted by key in C-locale byte order, without duplicate keys:
  wav.scp, utt2spk, spk2utt (required), text (required unless --no-text), feats.scp (required
  unless --no-feats), utt2num_frames, utt2speed, char_timestamps, utt2dur (optional). Every per-utterance file covers the utterances of wav.scp (the optional ones: a
  subset of them); utt2spk and spk2utt describe the same mapping; transcripts are not empty.

The shell tools in utils/ (validate_data_dir.sh, fix_data_dir.sh, perturb_data_dir_speed.sh,
combine_data.sh, subset_data_dir.sh) are thin wrappers around :func:`main`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from funasr_lite.data.datadir import DataDirError, read_kv, write_kv


# Per-utterance files. An utterance is kept by fix_data_dir only if it is in every one of the
# REQUIRED_IF_PRESENT files that exist; the FILTERED_ONLY ones follow but never drop an utterance.
REQUIRED_IF_PRESENT = ("wav.scp", "text", "utt2spk", "feats.scp", "utt2num_frames", "utt2speed")
FILTERED_ONLY = ("char_timestamps", "utt2dur")
PER_UTT_FILES = REQUIRED_IF_PRESENT + FILTERED_ONLY
# Files whose value may legitimately be empty on disk (an empty transcript is reported, not a
# format error).
EMPTY_VALUE_ALLOWED = ("text", "char_timestamps")
MAX_SHOWN = 5


def _sort_key(key: str) -> bytes:
    return key.encode("utf-8")


def _shown(items: Sequence[str]) -> str:
    """``a, b, c`` or ``a, b, c, d, e, ...`` (first MAX_SHOWN)."""
    text = ", ".join(items[:MAX_SHOWN])
    return text + (", ..." if len(items) > MAX_SHOWN else "")


def _problem(path: str, what: str, hits: Sequence[Tuple[int, str]]) -> str:
    """One problem line: ``path:first_line: what (count): KEY (line n), ...``."""
    hits = sorted(hits)
    listed = _shown([f"{key} (line {line})" for line, key in hits])
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
            if previous is not None and _sort_key(key) < previous:
                scanned.unsorted.append((line_no, key))
            previous = _sort_key(key)
            if not value and not allow_empty_value:
                scanned.no_value.append((line_no, key))
                continue
            if key in scanned.values:
                scanned.duplicates.append((line_no, key))
                continue
            scanned.values[key] = value
            scanned.lines[key] = line_no
    return scanned


# ---------------------------------------------------------------- speaker maps

def utt2spk_to_spk2utt(utt2spk: Dict[str, str]) -> Dict[str, List[str]]:
    """{utt: spk} -> {spk: [utt, ...]} with speakers and utterances in C-locale order."""
    spk2utt: Dict[str, List[str]] = {}
    for utt in sorted(utt2spk, key=_sort_key):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: spk2utt[spk] for spk in sorted(spk2utt, key=_sort_key)}


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


def _bad_values(scanned: ScannedFile, name: str) -> Tuple[str, List[Tuple[int, str]]]:
    """(description, [(line, key), ...]) of the values of ``name`` that break its rule."""
    if name not in _VALUE_RULES:
        return "", []
    what, is_good = _VALUE_RULES[name]
    return what, [(scanned.lines[k], k) for k, v in scanned.values.items() if not is_good(v)]


def _check_values(scanned: ScannedFile, name: str) -> List[str]:
    what, bad = _bad_values(scanned, name)
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


# ---------------------------------------------------------------- fixing

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
                parts.append(f"{len(utts)} {plural} (first: {_shown(utts)})")
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
                scanned.bad_value_what, scanned.bad_value = _bad_values(scanned, name)
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
    for utt in sorted(all_utts, key=_sort_key):
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


# ---------------------------------------------------------------- building new data dirs

def _read_per_utt(data_dir: str, name: str) -> Dict[str, str]:
    return read_kv(os.path.join(data_dir, name), allow_empty_value=name in EMPTY_VALUE_ALLOWED)


def _require(data_dir: str, names: Iterable[str]) -> None:
    for name in names:
        if not os.path.isfile(os.path.join(data_dir, name)):
            raise DataDirError(f"{os.path.join(data_dir, name)}: missing")


def _same_dir(a: str, b: str) -> bool:
    return os.path.realpath(a) == os.path.realpath(b)


def _write_data_dir(dst: str, per_utt: Dict[str, Dict[str, str]]) -> None:
    """Write the per-utt files, spk2utt from utt2spk, and remove stale per-utt files of ``dst``."""
    os.makedirs(dst, exist_ok=True)
    for name in PER_UTT_FILES:
        path = os.path.join(dst, name)
        if name in per_utt:
            write_kv(path, per_utt[name])
        elif os.path.exists(path):
            os.remove(path)  # left from an earlier run; it would not match the new utterances
    write_spk2utt(os.path.join(dst, "spk2utt"), utt2spk_to_spk2utt(per_utt["utt2spk"]))


def format_speed(speed: float) -> str:
    return f"{speed:.6g}"


def perturb_data_dir_speed(src: str, dst: str, factor: str) -> int:
    """Kaldi-named speed-perturbed copy: ``sp<factor>-UTT`` and ``sp<factor>-SPK``, the same
    wav.scp values, and ``utt2speed`` (composed with the source's utt2speed if any) for the
    feature extractor. feats.scp, utt2num_frames and char_timestamps are not copied (invalid at
    the new speed); utt2dur is divided by the factor. Returns the number of utterances."""
    try:
        speed = float(factor)
    except ValueError:
        speed = -1.0
    if not speed > 0:
        raise DataDirError(f"speed factor must be a positive number, got {factor!r}")
    if _same_dir(src, dst):
        raise DataDirError(f"source and destination are the same directory: {src}")
    _require(src, ("wav.scp", "utt2spk"))
    prefix = f"sp{factor}-"
    wav = _read_per_utt(src, "wav.scp")
    utt2spk = _read_per_utt(src, "utt2spk")
    out: Dict[str, Dict[str, str]] = {
        "wav.scp": {prefix + u: v for u, v in wav.items()},
        "utt2spk": {prefix + u: prefix + s for u, s in utt2spk.items()},
    }
    old_speed = _read_per_utt(src, "utt2speed") if os.path.isfile(os.path.join(src, "utt2speed")) else {}
    out["utt2speed"] = {prefix + u: format_speed(float(old_speed.get(u, 1.0)) * speed) for u in wav}
    if os.path.isfile(os.path.join(src, "text")):
        out["text"] = {prefix + u: v for u, v in _read_per_utt(src, "text").items()}
    if os.path.isfile(os.path.join(src, "utt2dur")):
        out["utt2dur"] = {prefix + u: f"{float(v) / speed:.3f}" for u, v in _read_per_utt(src, "utt2dur").items()}
    _write_data_dir(dst, out)
    return len(wav)


def combine_data_dirs(dst: str, srcs: Sequence[str]) -> Tuple[int, List[str]]:
    """Merge the per-utt files present in every source into ``dst`` (utt2speed: present in any
    source is enough, the others count as speed 1.0). Duplicate utterance ids are an error.
    Returns (number of utterances, names of files skipped because some source lacks them)."""
    if not srcs:
        raise DataDirError("no source data dirs")
    for src in srcs:
        if _same_dir(src, dst):
            raise DataDirError(f"destination {dst} is also a source")
        _require(src, ("wav.scp", "utt2spk"))
    present = {src: {n for n in PER_UTT_FILES if os.path.isfile(os.path.join(src, n))} for src in srcs}
    names = [n for n in PER_UTT_FILES if all(n in present[s] for s in srcs)]
    skipped = [n for n in PER_UTT_FILES
               if n != "utt2speed" and n not in names and any(n in present[s] for s in srcs)]
    with_speed = any("utt2speed" in present[s] for s in srcs)

    owner: Dict[str, str] = {}
    duplicates: List[str] = []
    merged: Dict[str, Dict[str, str]] = {n: {} for n in names}
    if with_speed:
        merged["utt2speed"] = {}
    for src in srcs:
        wav = _read_per_utt(src, "wav.scp")
        for utt in wav:
            if utt in owner:
                duplicates.append(f"{utt} ({owner[utt]} and {src})")
            else:
                owner[utt] = src
        for name in names:
            if name != "utt2speed":
                merged[name].update(_read_per_utt(src, name))
        if with_speed:
            speeds = _read_per_utt(src, "utt2speed") if "utt2speed" in present[src] else {}
            merged["utt2speed"].update({u: speeds.get(u, "1.0") for u in wav})
    if duplicates:
        raise DataDirError(f"{len(duplicates)} utterance id(s) in more than one source: {_shown(duplicates)}")
    _write_data_dir(dst, merged)
    return len(owner), skipped


def subset_data_dir(src: str, dst: str, first: Optional[int] = None,
                    utt_list: Optional[str] = None) -> Tuple[int, List[str]]:
    """Copy the first ``first`` utterances (C-locale order) or those listed in ``utt_list``
    (first field of each line) into ``dst``, filtering every per-utt file. Listed utterances that
    ``src`` lacks are skipped. Returns (number kept, listed-but-missing utterances)."""
    if (first is None) == (utt_list is None):
        raise DataDirError("give exactly one of --first N and --utt-list FILE")
    if _same_dir(src, dst):
        raise DataDirError(f"source and destination are the same directory: {src}")
    _require(src, ("wav.scp", "utt2spk"))
    data = {n: _read_per_utt(src, n) for n in PER_UTT_FILES if os.path.isfile(os.path.join(src, n))}
    utts = sorted(data["wav.scp"], key=_sort_key)
    missing: List[str] = []
    if first is not None:
        if not 1 <= first <= len(utts):
            raise DataDirError(f"--first {first}: {src} has {len(utts)} utterances")
        keep = set(utts[:first])
    else:
        keep = set()
        with open(utt_list, "rb") as f:
            for line_no, raw in enumerate(f, 1):
                try:
                    fields = raw.decode("utf-8").split()
                except UnicodeDecodeError:
                    raise DataDirError(f"{utt_list}:{line_no}: not valid UTF-8") from None
                if not fields:
                    continue
                if fields[0] in data["wav.scp"]:
                    keep.add(fields[0])
                elif fields[0] not in missing:
                    missing.append(fields[0])
        if not keep:
            raise DataDirError(f"{utt_list}: none of its utterances is in {src}")
    out = {n: {u: v for u, v in values.items() if u in keep} for n, values in data.items()}
    _write_data_dir(dst, out)
    return len(keep), missing


# ---------------------------------------------------------------- command line

_PROG = {"validate": "validate_data_dir.sh", "fix": "fix_data_dir.sh", "perturb-speed": "perturb_data_dir_speed.sh",
         "combine": "combine_data.sh", "subset": "subset_data_dir.sh"}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funasr_lite.data.validate",
                                     description="Data-dir tools behind utils/*_data_dir.sh.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate")
    p.add_argument("--no-feats", action="store_true")
    p.add_argument("--no-text", action="store_true")
    p.add_argument("data_dir")
    p = sub.add_parser("fix")
    p.add_argument("data_dir")
    p = sub.add_parser("perturb-speed")
    p.add_argument("factor")
    p.add_argument("src")
    p.add_argument("dst")
    p = sub.add_parser("combine")
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")
    p = sub.add_parser("subset")
    p.add_argument("--first", type=int)
    p.add_argument("--utt-list")
    p.add_argument("src")
    p.add_argument("dst")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _build_parser().parse_args(argv)
    prog = _PROG[args.command]

    def say(message: str) -> None:
        print(f"{prog}: {message}", file=sys.stderr)

    try:
        if args.command == "validate":
            problems = validate_data_dir(args.data_dir, require_feats=not args.no_feats,
                                         require_text=not args.no_text)
            if problems:
                say(f"{args.data_dir}: {len(problems)} problem(s):")
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
            say(f"{args.data_dir}: valid")
        elif args.command == "fix":
            report = fix_data_dir(args.data_dir)
            for note in report.notes:
                say(note)
            say(report.summary(args.data_dir))
        elif args.command == "perturb-speed":
            n = perturb_data_dir_speed(args.src, args.dst, args.factor)
            say(f"{args.src} -> {args.dst}: {n} utterances at speed {args.factor}")
        elif args.command == "combine":
            n, skipped = combine_data_dirs(args.dst, args.srcs)
            for name in skipped:
                say(f"warning: {name} not combined: some sources lack it")
            say(f"{' + '.join(args.srcs)} -> {args.dst}: {n} utterances")
        elif args.command == "subset":
            n, missing = subset_data_dir(args.src, args.dst, first=args.first, utt_list=args.utt_list)
            if missing:
                say(f"warning: {len(missing)} listed utterance(s) not in {args.src}, skipped: {_shown(missing)}")
            say(f"{args.src} -> {args.dst}: {n} utterances")
    except (DataDirError, OSError) as e:
        say(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
