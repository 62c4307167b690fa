"""Checking a user's fine-tuning data (``<data>/{train,validation}/{text,wav.scp}``) against a model.

Every problem is named with its file and line (or utterance and audio file), counted, and the
utterance concerned is left out; the rest of the data is used. Per split:

* ``text`` and ``wav.scp`` read tolerantly (:func:`funasr_lite.data.validate.scan_kv_file`):
  a non-UTF-8 line, a line without value, an empty transcript, and a key given twice (the
  utterance is dropped: which of its lines is right cannot be known) are named with their line;
* keys in ``text`` but not in ``wav.scp`` and the reverse;
* audio: a missing file, unreadable/corrupt audio, multichannel audio, audio shorter than one
  fbank window; a sample rate other than the model's is **resampled with a warning** (the
  toolkit's one resampler, as FunASR resamples whatever it is given), or refused with
  ``resample=False``;
* characters (tokens) outside the model's vocabulary: counted, mapped to ``<unk>`` (the
  utterance is kept), the most frequent listed;
* length: utterances outside ``min_frames..max_frames`` model-input frames, outside
  ``min_tokens..max_tokens`` tokens, or with more tokens than model-input frames (CIF fires at
  most once a frame) are dropped and counted.

:func:`write_checked_dir` writes the kept utterances as a Kaldi data dir (``wav.scp``, ``text``,
``utt2spk``/``spk2utt`` with one speaker per utterance, ``utt2dur`` in seconds) and the report
(``data_check.txt``); the feature and shard steps read only that dir.
"""

from __future__ import annotations

import collections
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from funasr_lite.data.datadir import shorten_list, utt2spk_to_spk2utt, write_kv, write_spk2utt
from funasr_lite.data.validate import ScannedFile, bad_values, scan_kv_file
from funasr_lite.frontend.audio import AudioError, read_audio
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

REPORT_NAME = "data_check.txt"
# How many out-of-vocabulary characters the report lists (most frequent first).
TOP_UNKNOWN = 10


class DataCheckError(ValueError):
    """Data that cannot be used at all (no usable training utterance); the message says why."""


@dataclass
class SplitReport:
    """What checking one split found. ``dropped``: reason -> [(utt, detail)]; ``kept``: utt ids."""

    name: str
    data_dir: str
    kept: List[str] = field(default_factory=list)
    problems: List[str] = field(default_factory=list)  # file:line messages of malformed lines
    dropped: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)
    resampled: List[Tuple[str, str]] = field(default_factory=list)
    unknown_chars: collections.Counter = field(default_factory=collections.Counter)
    unknown_utts: List[str] = field(default_factory=list)
    wavs: Dict[str, str] = field(default_factory=dict)
    texts: Dict[str, str] = field(default_factory=dict)
    durations: Dict[str, float] = field(default_factory=dict)  # seconds, kept utterances
    total: int = 0  # distinct keys seen in text or wav.scp

    def drop(self, reason: str, utt_id: str, detail: str = "") -> None:
        self.dropped.setdefault(reason, []).append((utt_id, detail))

    @property
    def num_dropped(self) -> int:
        return sum(len(v) for v in self.dropped.values())

    def lines(self) -> List[str]:
        """The human-readable report: counts first, then every problem with its utterances."""
        out = [f"{self.name} ({self.data_dir}): {self.total} utterances, {len(self.kept)} kept, "
               f"{self.num_dropped} dropped"
               + (f", {len(self.resampled)} resampled" if self.resampled else "")
               + (f", {sum(self.unknown_chars.values())} out-of-vocabulary characters in "
                  f"{len(self.unknown_utts)} utterances mapped to <unk>" if self.unknown_chars else "")]
        out += [f"  {problem}" for problem in self.problems]
        for reason, items in sorted(self.dropped.items(), key=lambda kv: (-len(kv[1]), kv[0])):
            shown = shorten_list([f"{utt} ({detail})" if detail else utt for utt, detail in items])
            out.append(f"  dropped, {reason}: {len(items)}: {shown}")
        if self.resampled:
            shown = shorten_list([f"{utt} ({detail})" for utt, detail in self.resampled])
            out.append(f"  resampled to the model's rate (warning): {len(self.resampled)}: {shown}")
        if self.unknown_chars:
            top = ", ".join(f"{char!r} x{n}" for char, n in self.unknown_chars.most_common(TOP_UNKNOWN))
            out.append(f"  not in the model's vocabulary (mapped to <unk>), most frequent: {top}; "
                       f"e.g. utterance {self.unknown_utts[0]}")
        return out


def _scan(path: str, report: SplitReport, allow_empty_value: bool) -> Optional[ScannedFile]:
    if not os.path.isfile(path):
        report.problems.append(f"{path}: missing")
        return None
    scanned = scan_kv_file(path, allow_empty_value=allow_empty_value)
    scanned.unsorted = []  # user data need not be sorted; the checked dir is written sorted
    report.problems += scanned.format_problems()
    return scanned


def check_split(
    data_dir,
    tokenizer,
    frontend,
    *,
    name: Optional[str] = None,
    resample: bool = True,
    min_frames: int = 1,
    max_frames: int = 3000,
    min_tokens: int = 1,
    max_tokens: int = 200,
) -> SplitReport:
    """Check ``<data_dir>/{text,wav.scp}`` against a model's tokenizer and frontend.

    Args:
        tokenizer: the model's (``text2tokens``, ``token2id``).
        frontend: the model's :class:`~funasr_lite.frontend.wav_frontend.WavFrontend` (sample rate,
            frames per sample count).
        min_frames, max_frames: model-input frames (after LFR) an utterance may have.
        min_tokens, max_tokens: tokens a transcript may have.
    Returns:
        SplitReport; nothing is raised for bad data (an empty or missing dir gives 0 kept).
    """
    data_dir = os.fspath(data_dir)
    report = SplitReport(name or os.path.basename(os.path.normpath(data_dir)), data_dir)
    if not os.path.isdir(data_dir):
        report.problems.append(f"{data_dir}: no such directory")
        return report
    text = _scan(os.path.join(data_dir, "text"), report, allow_empty_value=True)
    wav = _scan(os.path.join(data_dir, "wav.scp"), report, allow_empty_value=False)
    if text is None or wav is None:
        return report
    keys = list(dict.fromkeys(list(wav.values) + list(text.values)))
    bad_lines = {"text": text, "wav.scp": wav}
    for file_name, scanned in bad_lines.items():
        for line, key in scanned.duplicates:
            report.drop(f"key given twice in {file_name}", key, f"{scanned.path}:{line} and line {scanned.lines[key]}")
        for line, key in scanned.not_utf8:
            report.drop(f"non-UTF-8 line in {file_name}", key, f"{scanned.path}:{line}")
        for line, key in scanned.no_value:
            report.drop(f"no value in {file_name}", key, f"{scanned.path}:{line}")
    _, empty = bad_values(text, "text")
    for line, key in empty:
        report.drop("empty transcript", key, f"{text.path}:{line}")
    already = {utt for items in report.dropped.values() for utt, _ in items}
    seen = set(keys)
    keys += sorted(key for key in already if key not in seen)
    report.total = len(keys)
    for key in keys:
        if key in already:
            continue
        if key not in wav.values:
            report.drop("in text but not in wav.scp", key, f"{text.path}:{text.lines[key]}")
            continue
        if key not in text.values:
            report.drop("in wav.scp but not in text", key, f"{wav.path}:{wav.lines[key]}")
            continue
        transcript = text.values[key]
        tokens = tokenizer.text2tokens(transcript)
        try:
            waveform, info = frontend.read_audio(wav.values[key], resample=resample)
        except AudioError as e:
            report.drop(f"audio {e.reason.replace('_', ' ')}", key, f"{wav.path}:{wav.lines[key]}: {e}")
            continue
        if info.resampled:
            report.resampled.append((key, f"{info.file_sample_rate} Hz"))
        frames = frontend.num_frames(int(waveform.shape[0]))
        num_tokens = len(tokens)
        if frames < max(1, min_frames):
            report.drop(f"shorter than min_frames={min_frames} model-input frames", key, f"{frames} frames")
        elif frames > max_frames:
            report.drop(f"longer than max_frames={max_frames} model-input frames", key, f"{frames} frames")
        elif num_tokens < max(1, min_tokens):
            report.drop(f"fewer than min_tokens={max(1, min_tokens)} tokens", key, f"{num_tokens} tokens")
        elif num_tokens > max_tokens:
            report.drop(f"more than max_tokens={max_tokens} tokens", key, f"{num_tokens} tokens")
        elif num_tokens + 1 > frames:
            report.drop("more tokens than model-input frames", key, f"{num_tokens} tokens, {frames} frames")
        else:
            unknown = [token for token in tokens if token not in tokenizer.token2id]
            if unknown:
                report.unknown_chars.update(unknown)
                report.unknown_utts.append(key)
            report.kept.append(key)
            report.wavs[key] = wav.values[key]
            report.texts[key] = transcript
            report.durations[key] = int(waveform.shape[0]) / float(frontend.sample_rate)
    return report


def is_length_reason(reason: str) -> bool:
    """True for the drop reasons of the length filter (counted apart in summaries)."""
    return reason.startswith(("shorter than", "longer than", "fewer than", "more than", "more tokens"))


def summary_counts(report: SplitReport) -> Dict[str, int]:
    """The counts a caller prints and logs (and tests check)."""
    return {
        "utterances": report.total,
        "kept": len(report.kept),
        "dropped": report.num_dropped,
        "dropped_for_length": sum(len(v) for k, v in report.dropped.items() if is_length_reason(k)),
        "resampled": len(report.resampled),
        "unknown_chars": sum(report.unknown_chars.values()),
        "utterances_with_unknown_chars": len(report.unknown_utts),
    }


def log_report(report: SplitReport) -> None:
    """Every report line to the log: the summary as INFO, problems as WARNING."""
    lines = report.lines()
    logger.info("data check: %s", lines[0])
    for line in lines[1:]:
        logger.warning("data check: %s:%s", report.name, line)


def write_checked_dir(report: SplitReport, out_dir) -> str:
    """The kept utterances as a Kaldi data dir + ``data_check.txt``; returns ``out_dir``."""
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    write_kv(os.path.join(out_dir, "wav.scp"), {utt: report.wavs[utt] for utt in report.kept})
    write_kv(os.path.join(out_dir, "text"), {utt: report.texts[utt] for utt in report.kept})
    utt2spk = {utt: utt for utt in report.kept}
    write_kv(os.path.join(out_dir, "utt2spk"), utt2spk)
    write_spk2utt(os.path.join(out_dir, "spk2utt"), utt2spk_to_spk2utt(utt2spk))
    write_kv(os.path.join(out_dir, "utt2dur"), {utt: f"{report.durations[utt]:.4f}" for utt in report.kept})
    with atomic_open(os.path.join(out_dir, REPORT_NAME)) as f:
        f.write("\n".join(report.lines()) + "\n")
    return out_dir


__all__ = [
    "DataCheckError", "REPORT_NAME", "SplitReport", "check_split", "is_length_reason", "log_report",
    "summary_counts", "write_checked_dir",
]
