"""Decoding outputs: ``<decode_dir>/1best_recog/`` writers, readers and the per-job merge.

One ``utt_id value`` line per utterance, sorted by utt id (UTF-8 byte order, as write_kv):

* ``text``: detokenised transcript; an empty hypothesis is ``utt_id `` (id, one space, nothing),
  as FunASR writes it; read it with ``read_kv(..., allow_empty_value=True)`` / :func:`read_text`;
* ``token``: space-separated tokens (empty hypothesis: ``utt_id ``);
* ``score``: the hypothesis log-probability as a plain float (``repr``, round-trips exactly);
* ``time_stamp``: ``[[start_ms, end_ms], ...]`` (JSON), one pair per token; written when the
  results carry timestamps;
* ``rtf``: written when the results carry ``audio_s`` and ``compute_s``; per utterance
  ``utt_id audio_s compute_s rtf``, then one summary line with the same columns and the key
  ``%TOTAL``: ``%TOTAL <total audio s> <total compute s> <total compute / total audio>``;
* ``failed``: the utterances that were given but could not be decoded (skipped, see
  :class:`funasr_lite.utils.failures.FailureLog`), one per line, tab-separated, in input order:
  ``utt_id<TAB>source<TAB>reason``; ``source`` is the wav.scp value (path or ``cmd |``), the
  feats.scp ``ark:offset`` spec, or what the API was given; ``reason`` is ``category: detail``
  with a short category that is counted (``corrupt``, ``missing``, ``empty``, ``multichannel``,
  ``wrong_sample_rate``, ``pipe_failed``, ``unreadable_features``, ``wrong_feature_dim``,
  ``too_long``, ...). Tabs and line breaks inside a field become spaces. Written only when
  something failed (a stale one is removed); these utterances are in no other file. The merge
  of parallel jobs merges the jobs' ``failed`` files too.

Long-form results (:mod:`funasr_lite.inference.longform`, one recording per key) also carry
``sentence_info``; then two more outputs are written (all results carry it, or none):

* ``sentences``: one line per sentence, recordings in utt-id order, sentences in time order::

      <utt_id> <start_ms> <end_ms> <sentence text>

  (integer ms from the start of the recording; the text runs to the end of the line and may hold
  spaces; a recording with no sentences has no line);
* ``srt/<utt_id>.srt``: a SubRip subtitle file per recording, one cue per sentence::

      1
      00:00:01,230 --> 00:00:04,560
      <sentence text>
      (blank line)

  (cues numbered from 1, ``HH:MM:SS,mmm`` times, UTF-8; a recording with no sentences gets an
  empty file).

Every file is written atomically; ``text`` is written last. Writing results without
``sentence_info`` removes a stale ``sentences`` and ``srt/``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from typing import Collection, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from funasr_lite.data.datadir import DataDirError, read_kv
from funasr_lite.utils.failures import ItemFailure, one_line
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

RECOG_DIR_NAME = "1best_recog"
REQUIRED_FILES = ("text", "token", "score")
OPTIONAL_FILES = ("time_stamp", "rtf")
FAILED_FILE = "failed"
RTF_TOTAL_KEY = "%TOTAL"
# The order files are written in: text last, so a job killed mid-write never leaves a
# complete-looking text beside missing files.
_WRITE_ORDER = ("token", "score", "time_stamp", "rtf", FAILED_FILE, "text")
_MAX_LISTED_UTTS = 20


class IncompleteDecodeError(RuntimeError):
    """Per-job decoding outputs that are missing or do not cover the expected utterances."""


def _utt_sort_key(key: str) -> bytes:
    return key.encode("utf-8")


def _format_timestamps(pairs: Iterable[Sequence[float]]) -> str:
    normalised = []
    for pair in pairs:
        if len(pair) != 2:
            raise ValueError(f"a timestamp must be [start_ms, end_ms], got {pair!r}")
        normalised.append([int(v) if float(v).is_integer() else float(v) for v in pair])
    return json.dumps(normalised)


def _rtf_line(key: str, audio_s: float, compute_s: float) -> str:
    rtf = compute_s / audio_s if audio_s > 0 else math.inf
    return f"{key} {audio_s:.3f} {compute_s:.4f} {rtf:.5f}"


def _write_lines(path: str, values: Mapping[str, str], trailer: Optional[str] = None) -> None:
    with atomic_open(path) as f:
        for key in sorted(values, key=_utt_sort_key):
            f.write(f"{key} {values[key]}\n")
        if trailer is not None:
            f.write(trailer + "\n")


def _write_failed(path: str, failures: Sequence[ItemFailure]) -> None:
    with atomic_open(path) as f:
        for failure in failures:
            f.write(f"{failure.key}\t{one_line(failure.source)}\t{failure.reason}\n")


def _write_recog_files(recog_dir: str, files: Mapping[str, Mapping[str, str]],
                       failures: Sequence[ItemFailure] = ()) -> None:
    """Write each file's ``utt -> value`` lines; rtf gets its %TOTAL line, ``failed`` the
    failures; stale optional files go."""
    os.makedirs(recog_dir, exist_ok=True)
    stale = [name for name in OPTIONAL_FILES if name not in files] + ([] if failures else [FAILED_FILE])
    for name in stale:
        if os.path.exists(os.path.join(recog_dir, name)):
            os.unlink(os.path.join(recog_dir, name))
    for name in _WRITE_ORDER:
        if name == FAILED_FILE and failures:
            _write_failed(os.path.join(recog_dir, name), failures)
        if name not in files:
            continue
        trailer = None
        if name == "rtf":
            total_audio = total_compute = 0.0
            for value in files[name].values():
                audio_s, compute_s, _ = value.split()
                total_audio += float(audio_s)
                total_compute += float(compute_s)
            trailer = _rtf_line(RTF_TOTAL_KEY, total_audio, total_compute)
        _write_lines(os.path.join(recog_dir, name), files[name], trailer)


def write_1best_recog(out_dir, results: Sequence[Mapping], failures: Sequence[ItemFailure] = ()) -> str:
    """Write ``<out_dir>/1best_recog/{text,token,score[,time_stamp][,rtf][,failed]}``.

    Args:
        results: one dict per utterance: ``key``, ``text`` (str), ``token`` (list[str]),
            ``score`` (float), ``timestamp`` (list of [start_ms, end_ms], one per token; optional,
            but all or none), ``audio_s`` and ``compute_s`` (optional, all or none).
        failures: the utterances skipped (the ``failed`` file; none: no ``failed`` file).
    Returns:
        the 1best_recog directory.
    """
    files: Dict[str, Dict[str, str]] = {name: {} for name in REQUIRED_FILES}
    has_timestamp = [r.get("timestamp") is not None for r in results]
    has_rtf = ["audio_s" in r and "compute_s" in r for r in results]
    for flags, what in ((has_timestamp, "timestamp"), (has_rtf, "audio_s/compute_s")):
        if any(flags) and not all(flags):
            missing = [r["key"] for r, flag in zip(results, flags) if not flag]
            raise ValueError(f"{what} given for some utterances but not for {missing[:_MAX_LISTED_UTTS]}")
    if results and all(has_timestamp):
        files["time_stamp"] = {}
    if results and all(has_rtf):
        files["rtf"] = {}

    for result in results:
        key = result["key"]
        if not key or any(ch.isspace() for ch in key):
            raise ValueError(f"bad utterance id {key!r}")
        if key in files["text"]:
            raise ValueError(f"utterance {key} appears twice in the results")
        text = str(result["text"])
        if "\n" in text or "\r" in text:
            raise ValueError(f"utterance {key}: text contains a line break")
        tokens = list(result["token"])
        files["text"][key] = text
        files["token"][key] = " ".join(tokens)
        files["score"][key] = repr(float(result["score"]))
        if "time_stamp" in files:
            if len(result["timestamp"]) != len(tokens):
                raise ValueError(f"utterance {key}: {len(tokens)} tokens but {len(result['timestamp'])} timestamps")
            files["time_stamp"][key] = _format_timestamps(result["timestamp"])
        if "rtf" in files:
            files["rtf"][key] = _rtf_line(key, float(result["audio_s"]), float(result["compute_s"])).split(" ", 1)[1]
    failed_keys = [failure.key for failure in failures]
    both = sorted(set(failed_keys) & files["text"].keys(), key=_utt_sort_key)
    if both or len(set(failed_keys)) != len(failed_keys):
        raise ValueError(f"utterances both decoded and failed, or failed twice: {both or failed_keys}")

    recog_dir = os.path.join(os.fspath(out_dir), RECOG_DIR_NAME)
    has_sentences = [r.get("sentence_info") is not None for r in results]
    if any(has_sentences) and not all(has_sentences):
        missing = [r["key"] for r, flag in zip(results, has_sentences) if not flag]
        raise ValueError(f"sentence_info given for some utterances but not for {missing[:_MAX_LISTED_UTTS]}")
    os.makedirs(recog_dir, exist_ok=True)
    if results and all(has_sentences):
        _write_sentences(recog_dir, results)
    else:
        _remove_sentences(recog_dir)
    _write_recog_files(recog_dir, files, failures)
    return recog_dir


SENTENCES_FILE = "sentences"
SRT_DIR = "srt"


def _remove_sentences(recog_dir: str) -> None:
    if os.path.exists(os.path.join(recog_dir, SENTENCES_FILE)):
        os.unlink(os.path.join(recog_dir, SENTENCES_FILE))
    if os.path.isdir(os.path.join(recog_dir, SRT_DIR)):
        shutil.rmtree(os.path.join(recog_dir, SRT_DIR))


def srt_time(ms: float) -> str:
    """Milliseconds -> SubRip ``HH:MM:SS,mmm``."""
    ms = max(0, int(round(ms)))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"


def format_srt(sentences: Sequence[Mapping]) -> str:
    """SubRip text of ``[{"text", "start", "end"}, ...]`` (ms), one cue per sentence."""
    return "".join(f"{i}\n{srt_time(s['start'])} --> {srt_time(s['end'])}\n{s['text']}\n\n"
                   for i, s in enumerate(sentences, 1))


def _write_sentences(recog_dir: str, results: Sequence[Mapping]) -> None:
    """``sentences`` and ``srt/<utt_id>.srt`` (module docstring); stale .srt files are removed."""
    srt_dir = os.path.join(recog_dir, SRT_DIR)
    if os.path.isdir(srt_dir):
        shutil.rmtree(srt_dir)
    os.makedirs(srt_dir)
    ordered = sorted(results, key=lambda r: _utt_sort_key(r["key"]))
    for result in ordered:
        for sentence in result["sentence_info"]:
            if "\n" in sentence["text"] or "\r" in sentence["text"] or not sentence["text"].strip():
                raise ValueError(f"utterance {result['key']}: a sentence text is empty or holds a line break: "
                                 f"{sentence['text']!r}")
        with atomic_open(os.path.join(srt_dir, result["key"] + ".srt")) as f:
            f.write(format_srt(result["sentence_info"]))
    with atomic_open(os.path.join(recog_dir, SENTENCES_FILE)) as f:
        for result in ordered:
            for sentence in result["sentence_info"]:
                f.write(f"{result['key']} {int(round(sentence['start']))} {int(round(sentence['end']))} "
                        f"{sentence['text']}\n")


def read_sentences(path) -> Dict[str, List[Dict]]:
    """``sentences`` -> utt -> ``[{"text", "start", "end"}, ...]`` in file order (path:line on errors)."""
    out: Dict[str, List[Dict]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.rstrip("\n").split(" ", 3)
            if len(fields) != 4 or not fields[1].isdigit() or not fields[2].isdigit():
                raise DataDirError(f"{path}:{line_no}: expected '<utt_id> <start_ms> <end_ms> <text>', got {line!r}")
            out.setdefault(fields[0], []).append({"text": fields[3], "start": int(fields[1]), "end": int(fields[2])})
    return out


def read_failed(path) -> List[ItemFailure]:
    """The ``failed`` file: one :class:`ItemFailure` per line (``category`` and ``detail`` split
    at the reason's first ``": "``); a malformed line is a DataDirError naming path:line."""
    failures = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 3 or not fields[0]:
                raise DataDirError(f"{path}:{line_no}: expected 'utt_id<TAB>source<TAB>reason', got {line.rstrip()!r}")
            category, _, detail = fields[2].partition(": ")
            failures.append(ItemFailure(fields[0], fields[1], category, detail))
    return failures


def read_text(path) -> Dict[str, str]:
    """utt -> transcript; empty hypotheses are ``""``."""
    return read_kv(path, allow_empty_value=True)


def read_tokens(path) -> Dict[str, List[str]]:
    return {key: value.split() for key, value in read_kv(path, allow_empty_value=True).items()}


def _number(path, key: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DataDirError(f"{path}: utterance {key}: {text!r} is not a number") from None


def read_scores(path) -> Dict[str, float]:
    return {key: _number(path, key, value) for key, value in read_kv(path).items()}


def read_time_stamps(path) -> Dict[str, List[List[float]]]:
    """utt -> [[start_ms, end_ms], ...]."""
    out = {}
    for key, value in read_kv(path).items():
        try:
            pairs = json.loads(value)
        except (json.JSONDecodeError, RecursionError) as e:
            raise DataDirError(f"{path}: utterance {key}: not a [[start_ms, end_ms], ...] list ({e})") from None
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(t, (int, float)) and not isinstance(t, bool)
                                                         for t in p) for p in pairs
        ):
            raise DataDirError(f"{path}: utterance {key}: not a [[start_ms, end_ms], ...] list")
        out[key] = pairs
    return out


def read_rtf(path) -> Tuple[Dict[str, Tuple[float, float, float]], Tuple[float, float, float]]:
    """Per-utt ``(audio_s, compute_s, rtf)`` and the ``%TOTAL`` line's ``(audio_s, compute_s, rtf)``."""
    per_utt = {}
    for key, value in read_kv(path).items():
        fields = value.split()
        if len(fields) != 3:
            raise DataDirError(f"{path}: {key}: expected 'audio_s compute_s rtf', got {value!r}")
        per_utt[key] = tuple(_number(path, key, v) for v in fields)
    if RTF_TOTAL_KEY not in per_utt:
        raise DataDirError(f"{path}: no {RTF_TOTAL_KEY} summary line")
    total = per_utt.pop(RTF_TOTAL_KEY)
    return per_utt, total


def read_1best_recog(recog_dir) -> List[Dict]:
    """The results written by :func:`write_1best_recog`, sorted by utt id (rtf info included)."""
    recog_dir = os.fspath(recog_dir)
    texts = read_text(os.path.join(recog_dir, "text"))
    tokens = read_tokens(os.path.join(recog_dir, "token"))
    scores = read_scores(os.path.join(recog_dir, "score"))
    time_stamp_path = os.path.join(recog_dir, "time_stamp")
    time_stamps = read_time_stamps(time_stamp_path) if os.path.exists(time_stamp_path) else None
    rtf_path = os.path.join(recog_dir, "rtf")
    rtf = read_rtf(rtf_path)[0] if os.path.exists(rtf_path) else None
    for name, values in (("token", tokens), ("score", scores), ("time_stamp", time_stamps), ("rtf", rtf)):
        missing = [key for key in texts if values is not None and key not in values]
        if missing:
            raise DataDirError(f"{os.path.join(recog_dir, name)}: no line for {len(missing)} utterance(s) of text: "
                               f"{_list_utts(missing)}")
    results = []
    for key in sorted(texts, key=_utt_sort_key):
        result = {"key": key, "text": texts[key], "token": tokens[key], "score": scores[key]}
        if time_stamps is not None:
            result["timestamp"] = time_stamps[key]
        if rtf is not None:
            result["audio_s"], result["compute_s"], _ = rtf[key]
        results.append(result)
    return results


def _list_utts(utts: Sequence[str]) -> str:
    shown = ", ".join(utts[:_MAX_LISTED_UTTS])
    more = len(utts) - _MAX_LISTED_UTTS
    return shown + (f" ... ({more} more)" if more > 0 else "")


def merge_1best_recog(part_dirs: Sequence, out_dir, expected_utts: Sequence[Collection[str]]) -> str:
    """Merge per-job ``<part_dir>/1best_recog`` into ``<out_dir>/1best_recog``, in utt-id order.

    Args:
        part_dirs: one decode dir per job (each holding ``1best_recog/``).
        expected_utts: for each job, the utterances it was given (e.g. its split's wav.scp keys);
            those a finished job lists in its ``failed`` file count as done (and are merged into
            ``failed``).
    Raises:
        IncompleteDecodeError listing, per job dir, the missing files and utterances; nothing is
        written then, so a partial 1best_recog never appears.
    """
    part_dirs = [os.fspath(d) for d in part_dirs]
    if len(part_dirs) != len(expected_utts):
        raise ValueError(f"{len(part_dirs)} job dirs but {len(expected_utts)} expected-utterance lists")
    problems: List[str] = []
    owner: Dict[str, str] = {}
    for part_dir, utts in zip(part_dirs, expected_utts):
        for utt in utts:
            if utt in owner:
                problems.append(f"utterance {utt} expected from both {owner[utt]} and {part_dir}")
            owner[utt] = part_dir

    merged: Dict[str, Dict[str, str]] = {}
    merged_failures: List[ItemFailure] = []
    file_sets = {}
    for part_dir, utts in zip(part_dirs, expected_utts):
        expected = set(utts)
        recog_dir = os.path.join(part_dir, RECOG_DIR_NAME)
        failed_path = os.path.join(recog_dir, FAILED_FILE)
        if os.path.isfile(failed_path) and os.path.isfile(os.path.join(recog_dir, "text")):
            try:
                job_failures = read_failed(failed_path)
            except DataDirError as e:
                problems.append(f"{part_dir}: unreadable {RECOG_DIR_NAME}/{FAILED_FILE}: {e}")
                job_failures = []
            failed_keys = {failure.key for failure in job_failures}
            not_given = sorted(failed_keys - expected, key=_utt_sort_key)
            if not_given:
                problems.append(f"{part_dir}: {RECOG_DIR_NAME}/{FAILED_FILE} has {len(not_given)} utterances "
                                f"this job was not given: {_list_utts(not_given)}")
            merged_failures.extend(job_failures)
            expected -= failed_keys  # the job finished and skipped these: accounted for, not decoded
        present = [n for n in REQUIRED_FILES + OPTIONAL_FILES if os.path.isfile(os.path.join(recog_dir, n))]
        file_sets[part_dir] = tuple(present)
        absent = [n for n in REQUIRED_FILES if n not in present]
        if absent:
            problems.append(f"{part_dir}: missing {', '.join(RECOG_DIR_NAME + '/' + n for n in absent)}; "
                            f"its {len(expected)} utterances are not decoded: {_list_utts(sorted(expected))}")
            continue
        for name in present:
            path = os.path.join(recog_dir, name)
            try:
                values = read_kv(path, allow_empty_value=name in ("text", "token"))
            except DataDirError as e:
                problems.append(f"{part_dir}: unreadable {RECOG_DIR_NAME}/{name}: {e}")
                continue
            if name == "rtf":
                values.pop(RTF_TOTAL_KEY, None)
            missing = sorted(expected - values.keys(), key=_utt_sort_key)
            unexpected = sorted(values.keys() - expected, key=_utt_sort_key)
            if missing:
                problems.append(f"{part_dir}: {RECOG_DIR_NAME}/{name} lacks {len(missing)} utterances: "
                                f"{_list_utts(missing)}")
            if unexpected:
                problems.append(f"{part_dir}: {RECOG_DIR_NAME}/{name} has {len(unexpected)} utterances "
                                f"this job was not given: {_list_utts(unexpected)}")
            merged.setdefault(name, {}).update(values)

    optional_sets = {tuple(n for n in files if n in OPTIONAL_FILES) for files in file_sets.values()
                     if all(r in files for r in REQUIRED_FILES)}
    if len(optional_sets) > 1:
        described = "; ".join(f"{d}: {', '.join(f) or 'none'}" for d, f in file_sets.items())
        problems.append(f"jobs disagree on the optional files ({', '.join(OPTIONAL_FILES)}): {described}")
    if problems:
        raise IncompleteDecodeError(
            f"refusing to merge {len(part_dirs)} jobs into {os.fspath(out_dir)}/{RECOG_DIR_NAME}:\n  "
            + "\n  ".join(problems))

    recog_dir = os.path.join(os.fspath(out_dir), RECOG_DIR_NAME)
    _write_recog_files(recog_dir, merged, merged_failures)
    logger.info("merged %d jobs, %d utterances into %s: decoded %d, failed %d", len(part_dirs), len(owner),
                recog_dir, len(merged.get("text", {})), len(merged_failures))
    return recog_dir
