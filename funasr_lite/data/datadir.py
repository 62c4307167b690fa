"""Kaldi data-dir files: ``key value`` per line (wav.scp, text, utt2spk, feats.scp, ...).

Errors name the file and line. Keys are utterance (or speaker) ids; values keep inner spaces.

The data-dir contract: ``key value`` files sorted by key in C-locale byte order, without
duplicate keys: wav.scp, utt2spk, spk2utt (required), text (required unless --no-text),
feats.scp (required unless --no-feats), utt2num_frames, utt2speed, char_timestamps, utt2dur
(optional). Every per-utterance file covers the utterances of wav.scp (the optional ones: a
subset of them); utt2spk and spk2utt describe the same mapping; transcripts are not empty.
Checked by :mod:`funasr_lite.data.validate`, repaired by :mod:`funasr_lite.data.fix`; new data
dirs are made from existing ones by :mod:`funasr_lite.data.datadir_ops`. The file reader and
writer (``iter_kv``, ``read_kv``, ``write_kv``, ``DataDirError``) are
:mod:`funasr_lite.utils.kaldi_kv`'s, re-exported here.
"""

from __future__ import annotations

from typing import Dict, List, Sequence

# The key-value file reader/writer lives one layer down (the frontend reads wav.scp with it);
# re-exported here as part of the data-dir API.
from funasr_lite.utils.kaldi_kv import DataDirError, c_locale_key, iter_kv, read_kv, write_kv  # noqa: F401

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


def shorten_list(items: Sequence[str]) -> str:
    """``a, b, c`` or ``a, b, c, d, e, ...`` (the first MAX_SHOWN), for messages."""
    text = ", ".join(items[:MAX_SHOWN])
    return text + (", ..." if len(items) > MAX_SHOWN else "")


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
