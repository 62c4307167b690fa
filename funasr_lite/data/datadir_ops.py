"""New Kaldi data dirs made from existing ones: a speed-perturbed copy, the union of several
dirs, a subset (utils/perturb_data_dir_speed.sh, combine_data.sh, subset_data_dir.sh). Each
writes every per-utterance file sorted and regenerates spk2utt from utt2spk.
"""

from __future__ import annotations

import os
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from funasr_lite.data.datadir import (
    EMPTY_VALUE_ALLOWED,
    PER_UTT_FILES,
    DataDirError,
    c_locale_key,
    read_kv,
    shorten_list,
    utt2spk_to_spk2utt,
    write_kv,
    write_spk2utt,
)


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
        raise DataDirError(f"{len(duplicates)} utterance id(s) in more than one source: {shorten_list(duplicates)}")
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
    utts = sorted(data["wav.scp"], key=c_locale_key)
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


__all__ = ["combine_data_dirs", "format_speed", "perturb_data_dir_speed", "subset_data_dir"]
