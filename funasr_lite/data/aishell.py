"""AISHELL-1 data preparation: corpus tree + transcript file -> Kaldi data dirs per split.

Layout read (as unpacked by ``egs/aishell1/local/download_and_untar.sh``)::

    <audio_dir>/{train,dev,test}/<SPK>/<UTT>.wav          e.g. train/S0002/BAC009S0002W0122.wav
    <transcript_dir>/aishell_transcript_v0.8.txt          ``UTT w1 w2 ...`` for ALL splits
    <transcript_dir>/aishell_char_timestamps.txt          optional (synthetic corpus): ``UTT ...``

Written per split: ``<out_dir>/<split>/{wav.scp,text,utt2spk,spk2utt}`` (+ ``char_timestamps``),
sorted by id, absolute wav paths. ``text`` keeps the word-segmented transcript (words joined by
single spaces); scoring and the char tokenizer remove the spaces.

The transcript file covers every split, so each split keeps only the transcripts of its own
wavs (otherwise dev/test text leaks into the token list and the LM). Bad input never stops
the run: each problem is logged (the first few one per line, then a count), the item is
dropped, and a summary per split says how many were kept and why the others were not.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Dict, List, Optional, Sequence, Tuple

from funasr_lite.data.datadir import utt2spk_to_spk2utt, write_kv, write_spk2utt

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
TRANSCRIPT_NAME = "aishell_transcript_v0.8.txt"
CHAR_TIMESTAMPS_NAME = "aishell_char_timestamps.txt"
# How many individual problems of one kind are logged before only the count is given.
MAX_LOGGED_PER_KIND = 5


class ProblemLog:
    """Collects problems of one kind; logs the first few in full, the rest only as a count."""

    def __init__(self, kind: str, max_logged: int = MAX_LOGGED_PER_KIND):
        self.kind = kind
        self.max_logged = max_logged
        self.items: List[str] = []  # the ids (or file:line) concerned, in order of discovery

    def add(self, item: str, message: str) -> None:
        self.items.append(item)
        if len(self.items) <= self.max_logged:
            logger.warning("%s", message)

    def log_count(self) -> None:
        hidden = len(self.items) - self.max_logged
        if hidden > 0:
            logger.warning("... and %d more: %s (%d in all)", hidden, self.kind, len(self.items))

    def __len__(self) -> int:
        return len(self.items)


@dataclasses.dataclass
class Transcripts:
    """What was read from the transcript file.

    ``texts``: utt -> normalised text (words joined by one space), may be "" for an empty line.
    ``line_of``: utt -> line number (first occurrence). Problems are file:line strings / ids.
    """

    path: str
    texts: Dict[str, str]
    line_of: Dict[str, int]
    num_lines: int
    bad_encoding: List[str]
    duplicates: List[str]


@dataclasses.dataclass
class SplitPrepReport:
    """Counts (and the ids concerned) for one split; ``summary()`` is the line that is printed."""

    split: str
    num_wavs: int = 0
    kept: List[str] = dataclasses.field(default_factory=list)
    without_transcript: List[str] = dataclasses.field(default_factory=list)
    empty_transcript: List[str] = dataclasses.field(default_factory=list)
    transcript_without_wav: List[str] = dataclasses.field(default_factory=list)
    duplicate_wavs: List[str] = dataclasses.field(default_factory=list)
    stray_wavs: List[str] = dataclasses.field(default_factory=list)
    num_char_timestamps: Optional[int] = None

    def summary(self) -> str:
        def part(count_ids: List[str], what: str) -> str:
            shown = ", ".join(count_ids[:3]) + (", ..." if len(count_ids) > 3 else "")
            return f"{len(count_ids)} {what} ({shown})"

        parts = [f"{self.split}: {self.num_wavs} wavs", f"{len(self.kept)} kept"]
        for ids, what in (
            (self.without_transcript, "without transcript"),
            (self.empty_transcript, "empty transcript"),
            (self.duplicate_wavs, "duplicate wav id"),
            (self.transcript_without_wav, "transcript without wav"),
            (self.stray_wavs, "wav outside a speaker directory"),
        ):
            if ids:
                parts.append(part(ids, what))
        if self.num_char_timestamps is not None:
            parts.append(f"{self.num_char_timestamps} char_timestamps lines")
        return ", ".join(parts)


@dataclasses.dataclass
class PrepReport:
    """Everything ``prepare_aishell`` found: one report per split plus transcript-level counts."""

    splits: Dict[str, SplitPrepReport]
    transcript: Transcripts
    not_in_any_split: List[str]
    written_splits: List[str]

    def summary_lines(self) -> List[str]:
        t = self.transcript
        lines = [self.splits[s].summary() for s in self.splits]
        lines.append(
            f"transcript {t.path}: {t.num_lines} lines, {len(t.texts)} utterances, "
            f"{len(t.bad_encoding)} not valid UTF-8, {len(t.duplicates)} duplicate ids, "
            f"{len(self.not_in_any_split)} not in any split"
        )
        return lines


def _decode_line(raw: bytes, path: str, line_no: int, bad: ProblemLog) -> Optional[str]:
    """UTF-8 text of one line without its end-of-line, or None (logged) if it is not UTF-8."""
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        where = f"{path}:{line_no}"
        key = raw.split(maxsplit=1)[0].decode("utf-8", "replace") if raw.strip() else ""
        bad.add(where, f"{where}: not valid UTF-8 ({e.reason} at byte {e.start}) "
                       f"in the line of {key!r}: line skipped")
        return None
    if line_no == 1:
        line = line.lstrip("\ufeff")
    return line.rstrip("\r\n")


def read_transcripts(path: str) -> Transcripts:
    """Read ``UTT w1 w2 ...`` lines, tolerating bad lines (logged, skipped).

    An id with no words is kept with text "" so that the split it belongs to can report it as
    an empty transcript. A repeated id keeps its first line; the repeats are dropped.
    """
    texts: Dict[str, str] = {}
    line_of: Dict[str, int] = {}
    bad = ProblemLog("transcript lines that are not valid UTF-8")
    duplicates = ProblemLog("duplicate ids in the transcript")
    num_lines = 0
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            num_lines = line_no
            line = _decode_line(raw, path, line_no, bad)
            if line is None or not line.strip():
                continue
            fields = line.split()
            utt, words = fields[0], fields[1:]
            if utt in texts:
                duplicates.add(utt, f"{path}:{line_no}: duplicate id {utt} (first at line "
                                    f"{line_of[utt]}): this line is ignored")
                continue
            texts[utt] = " ".join(words)
            line_of[utt] = line_no
    bad.log_count()
    duplicates.log_count()
    return Transcripts(path, texts, line_of, num_lines, bad.items, duplicates.items)


def find_split_wavs(split_dir: str, report: SplitPrepReport) -> Dict[str, Tuple[str, str]]:
    """``utt -> (speaker, absolute wav path)`` for ``<split_dir>/<SPK>/*.wav``.

    The speaker is the directory name. A wav id seen twice in the split keeps the first (in
    sorted path order); repeats go to ``report.duplicate_wavs``.
    """
    wavs: Dict[str, Tuple[str, str]] = {}
    duplicates = ProblemLog(f"{report.split}: duplicate wav ids")
    for speaker_entry in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not speaker_entry.is_dir():
            if speaker_entry.name.endswith(".wav"):
                report.stray_wavs.append(speaker_entry.path)
                logger.warning("%s: not in a speaker directory: ignored", speaker_entry.path)
            continue
        speaker = speaker_entry.name
        for wav_entry in sorted(os.scandir(speaker_entry.path), key=lambda e: e.name):
            if not (wav_entry.name.endswith(".wav") and wav_entry.is_file()):
                continue
            utt = wav_entry.name[: -len(".wav")]
            path = os.path.abspath(wav_entry.path)
            report.num_wavs += 1
            if utt in wavs:
                duplicates.add(utt, f"{report.split}: duplicate wav id {utt}: {path} ignored "
                                    f"(keeping {wavs[utt][1]})")
                report.duplicate_wavs.append(utt)
                continue
            wavs[utt] = (speaker, path)
    duplicates.log_count()
    return wavs


def _speaker_in_id(utt: str, speakers: Dict[str, str], lengths: Sequence[int]) -> Optional[str]:
    """The known speaker whose id occurs inside ``utt`` (AISHELL: BAC009S0002W0122 -> S0002)."""
    for length in lengths:
        for start in range(len(utt) - length + 1):
            candidate = utt[start:start + length]
            if candidate in speakers:
                return candidate
    return None


def read_char_timestamp_lines(path: str) -> Dict[str, str]:
    """``utt -> rest of line`` (opaque) from the synthetic corpus's char timestamps file."""
    out: Dict[str, str] = {}
    bad = ProblemLog("char timestamp lines that are not valid UTF-8")
    duplicates = ProblemLog("duplicate ids in the char timestamps")
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            line = _decode_line(raw, path, line_no, bad)
            if line is None or not line.strip():
                continue
            fields = line.strip().split(maxsplit=1)
            utt = fields[0]
            if utt in out:
                duplicates.add(utt, f"{path}:{line_no}: duplicate id {utt}: this line is ignored")
                continue
            out[utt] = fields[1] if len(fields) > 1 else ""
    bad.log_count()
    duplicates.log_count()
    return out


def prepare_aishell(audio_dir: str, transcript_dir: str, out_dir: str,
                    splits: Sequence[str] = SPLITS) -> PrepReport:
    """Write one Kaldi data dir per split under ``out_dir``; return what was found.

    A split whose directory is missing, or that keeps no utterance, is reported and not written.
    Raises FileNotFoundError when the transcript file is missing.
    """
    transcript_path = os.path.join(transcript_dir, TRANSCRIPT_NAME)
    if not os.path.isfile(transcript_path):
        raise FileNotFoundError(f"transcript file not found: {transcript_path}")
    transcripts = read_transcripts(transcript_path)

    reports: Dict[str, SplitPrepReport] = {}
    split_wavs: Dict[str, Dict[str, Tuple[str, str]]] = {}
    for split in splits:
        report = reports[split] = SplitPrepReport(split)
        split_dir = os.path.join(audio_dir, split)
        if not os.path.isdir(split_dir):
            logger.warning("%s: no such directory: split %s skipped", split_dir, split)
            continue
        wavs = find_split_wavs(split_dir, report)
        # An utterance in two splits would leak between them: the first split keeps it.
        for utt in [u for u in wavs if any(u in earlier for earlier in split_wavs.values())]:
            logger.warning("%s: %s is also in an earlier split: dropped from %s", split, utt, split)
            report.duplicate_wavs.append(utt)
            del wavs[utt]
        split_wavs[split] = wavs

    # Transcripts without a wav belong to a split when their speaker is one of its speakers.
    speaker_split: Dict[str, str] = {}
    for split, wavs in split_wavs.items():
        for speaker, _ in wavs.values():
            speaker_split.setdefault(speaker, split)
    all_wav_ids = {utt for wavs in split_wavs.values() for utt in wavs}
    speaker_lengths = sorted({len(s) for s in speaker_split}, reverse=True)
    not_in_any_split: List[str] = []
    for utt in transcripts.texts:
        if utt in all_wav_ids:
            continue
        speaker = _speaker_in_id(utt, speaker_split, speaker_lengths)
        if speaker is None:
            not_in_any_split.append(utt)
        else:
            reports[speaker_split[speaker]].transcript_without_wav.append(utt)
    if not_in_any_split:
        logger.info("%d transcript lines match no wav and no speaker of any split (e.g. %s)",
                    len(not_in_any_split), ", ".join(not_in_any_split[:3]))

    char_timestamps: Optional[Dict[str, str]] = None
    char_timestamps_path = os.path.join(transcript_dir, CHAR_TIMESTAMPS_NAME)
    if os.path.isfile(char_timestamps_path):
        char_timestamps = read_char_timestamp_lines(char_timestamps_path)

    written: List[str] = []
    for split, wavs in split_wavs.items():
        report = reports[split]
        no_text = ProblemLog(f"{split}: wavs without transcript")
        empty = ProblemLog(f"{split}: empty transcripts")
        for utt in wavs:
            text = transcripts.texts.get(utt)
            if text is None:
                no_text.add(utt, f"{split}: {utt} ({wavs[utt][1]}) has no transcript in "
                                 f"{transcript_path}: dropped")
                report.without_transcript.append(utt)
            elif not text:
                empty.add(utt, f"{transcript_path}:{transcripts.line_of[utt]}: {split}: {utt} has an "
                               f"empty transcript: dropped")
                report.empty_transcript.append(utt)
            else:
                report.kept.append(utt)
        no_text.log_count()
        empty.log_count()
        missing = ProblemLog(f"{split}: transcripts without wav")
        for utt in report.transcript_without_wav:
            missing.add(utt, f"{transcript_path}:{transcripts.line_of[utt]}: {split}: {utt} has a "
                             f"transcript but no wav: ignored")
        missing.log_count()

        if not report.kept:
            logger.warning("%s: no utterance kept: %s/%s not written", split, out_dir, split)
            continue
        split_out = os.path.join(out_dir, split)
        _write_split(split_out, report.kept, wavs, transcripts.texts)
        if char_timestamps is not None:
            lines = {utt: char_timestamps[utt] for utt in report.kept if utt in char_timestamps}
            report.num_char_timestamps = len(lines)
            if len(lines) < len(report.kept):
                absent = [utt for utt in report.kept if utt not in char_timestamps]
                logger.warning("%s: %d kept utterances have no line in %s (e.g. %s)", split,
                               len(absent), char_timestamps_path, ", ".join(absent[:3]))
            if lines:
                write_kv(os.path.join(split_out, "char_timestamps"), lines)
        written.append(split)

    result = PrepReport(reports, transcripts, not_in_any_split, written)
    for line in result.summary_lines():
        logger.info("%s", line)
    return result


def _write_split(split_out: str, kept: Sequence[str], wavs: Dict[str, Tuple[str, str]],
                 texts: Dict[str, str]) -> None:
    """wav.scp, text, utt2spk, spk2utt for the kept utterances (all sorted by id)."""
    os.makedirs(split_out, exist_ok=True)
    write_kv(os.path.join(split_out, "wav.scp"), {utt: wavs[utt][1] for utt in kept})
    write_kv(os.path.join(split_out, "text"), {utt: texts[utt] for utt in kept})
    utt2spk = {utt: wavs[utt][0] for utt in kept}
    write_kv(os.path.join(split_out, "utt2spk"), utt2spk)
    write_spk2utt(os.path.join(split_out, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
