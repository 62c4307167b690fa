"""Planning and writing the synthetic corpus (AISHELL-1 layout), in parallel and resumably.

Output tree (see docs/synthetic_corpus.md)::

    <out>/data_aishell/wav/{train,dev,test}/<SPK>/<UTT>.wav      16 kHz, int16, mono
    <out>/data_aishell/transcript/aishell_transcript_v0.8.txt      UTT 词 词 词
    <out>/data_aishell/transcript/aishell_char_timestamps.txt      UTT 字 start_ms end_ms ...
    <out>/data_aishell/transcript/lm_extra_text.txt                词 词 词 (text never said in dev/test)
    <out>/data_aishell/.done                                        JSON: parameters and counts

Sentences are assigned test first, then dev, then train, so the three splits never share a
sentence; speakers never share a voice. Every random choice is drawn from a generator seeded by
(seed, speaker, utterance), so the bytes depend only on the seed, never on the number of jobs.
A killed run resumes: complete wavs are kept, the rest are written again.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import json
import logging
import multiprocessing
import os
import time
from typing import Dict, Iterable, List, Optional, Sequence, Set, Tuple

import numpy as np

from funasr_lite.data.char_timestamps import write_char_timestamps
from funasr_lite.data.synthetic.espeak import VOICE, Espeak, EspeakError
from funasr_lite.data.synthetic.render import SAMPLE_RATE, UtterancePlan, render_utterance, to_int16, utterance_rng
from funasr_lite.data.synthetic.text import (MAX_CHARS, MIN_CHARS, default_text_path, extract_sentences,
                                             sentence_pinyin)
from funasr_lite.data.synthetic.voices import SPLITS, SpeakerError, SpeakerVoice, make_speakers
from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 1: syllables said in isolation and spliced; 2: whole sentences; 3: + read syllable by syllable on 30 %
TRANSCRIPT_NAME = "aishell_transcript_v0.8.txt"
TIMESTAMPS_NAME = "aishell_char_timestamps.txt"
LM_TEXT_NAME = "lm_extra_text.txt"
# LM text: every run of this many characters that no dev/test (or train) utterance says.
LM_MIN_CHARS = 2
LM_MAX_CHARS = 60


@dataclasses.dataclass(frozen=True)
class CorpusSize:
    """Speakers per split and utterances per speaker of one corpus size."""

    speakers: Dict[str, int]
    utts_per_speaker: Dict[str, int]

    def num_utts(self, split: str) -> int:
        return self.speakers[split] * self.utts_per_speaker[split]


SIZES: Dict[str, CorpusSize] = {
    # ~100 utterances: tests and CI.
    "tiny": CorpusSize({"train": 8, "dev": 3, "test": 3}, {"train": 9, "dev": 5, "test": 5}),
    # The demo default (~9 h of train audio): a small Paraformer trains on it on 2 CPU cores.
    "small": CorpusSize({"train": 24, "dev": 4, "test": 4}, {"train": 320, "dev": 60, "test": 60}),
    # >= 50 hours of train audio.
    "full": CorpusSize({"train": 60, "dev": 8, "test": 8}, {"train": 760, "dev": 150, "test": 150}),
}


class CorpusError(RuntimeError):
    """The corpus cannot be generated as asked (missing tool or text, conflicting output)."""


def check_espeak() -> None:
    """Raise CorpusError when espeak-ng's library or its pinyin voice is missing."""
    try:
        Espeak.get().set_voice(None)
    except EspeakError as e:
        raise CorpusError(str(e)) from None


def utterance_id(speaker_id: str, index: int) -> str:
    """AISHELL-style id: BAC009 + speaker + W + 4-digit index (BAC009S0002W0001)."""
    return f"BAC009{speaker_id}W{index:04d}"


def plan_corpus(sentences: Sequence[Tuple[str, ...]], size: CorpusSize, speakers: Dict[str, List[SpeakerVoice]],
                seed: int, dropped: Optional[collections.Counter] = None) -> List[UtterancePlan]:
    """Assign sentences to speakers: test and dev sentences are distinct and never used in train.

    Sentences are taken in a seeded random order; one whose pinyin is unspeakable is skipped
    (counted in ``dropped``). Train reuses its sentences (different speakers) only when there
    are more train utterances than sentences left.
    """
    dropped = collections.Counter() if dropped is None else dropped
    order = np.random.default_rng([seed, 0]).permutation(len(sentences))
    cursor = 0

    def take(count: int) -> List[Tuple[Tuple[str, ...], Tuple[str, ...]]]:
        nonlocal cursor
        taken = []
        while len(taken) < count and cursor < len(order):
            words = sentences[int(order[cursor])]
            cursor += 1
            syllables = sentence_pinyin(words)
            if syllables is None:
                dropped["unspeakable pinyin"] += 1
            else:
                taken.append((words, tuple(syllables)))
        return taken

    plans: List[UtterancePlan] = []
    for split in ("test", "dev", "train"):
        wanted = size.num_utts(split)
        chosen = take(wanted)
        if split != "train" and len(chosen) < wanted:
            raise CorpusError(f"only {len(chosen)} sentences left for {split}, need {wanted}")
        if split == "train" and not chosen:
            raise CorpusError("no sentences left for train")
        if len(chosen) < wanted:
            logger.info("train: %d sentences for %d utterances; reusing sentences across speakers",
                        len(chosen), wanted)
        per_speaker = size.utts_per_speaker[split]
        for s, voice in enumerate(speakers[split]):
            for i in range(per_speaker):
                words, syllables = chosen[(s * per_speaker + i) % len(chosen)]
                index = i + 1
                plans.append(UtterancePlan(utterance_id(voice.speaker_id, index), voice.speaker_id, split,
                                           index, words, syllables))
    return plans


def lm_extra_sentences(sentences: Sequence[Tuple[str, ...]], exclude: Set[str]) -> List[Tuple[str, ...]]:
    """The ``sentences`` that contain no sentence of ``exclude`` (LM text beside the corpus).

    ``exclude`` holds the character strings of the sentences said in the corpus; a sentence that
    equals one or contains one is left out, so the LM never sees a dev/test sentence.
    """
    joined = "\n".join("".join(words) for words in sentences)
    line_starts = np.cumsum([0] + [len("".join(words)) + 1 for words in sentences])
    banned = set()
    for said in exclude:
        at = joined.find(said)
        while at >= 0:
            banned.add(int(np.searchsorted(line_starts, at, side="right")) - 1)
            at = joined.find(said, at + 1)
    return [words for i, words in enumerate(sentences) if i not in banned]


@dataclasses.dataclass
class UtteranceResult:
    utt_id: str
    split: str
    words: Tuple[str, ...]
    char_times: List[Tuple[str, int, int]]
    num_samples: int
    written: bool


def _generate_speaker(task) -> Tuple[List[UtteranceResult], List[Tuple[str, str]]]:
    """Worker: render and write one speaker's utterances; ``(utt_id, reason)`` for each dropped."""
    root, voice, plans, seed = task
    espeak = Espeak.get()
    results = []
    dropped = []
    for plan in plans:
        path = wav_path(root, plan)
        try:
            rendered = render_utterance(plan, voice, utterance_rng(seed, plan), espeak)
        except EspeakError as e:
            dropped.append((plan.utt_id, f"voice {voice.espeak_voice}: {e}"))
            if os.path.exists(path):
                os.unlink(path)
            continue
        written = False
        if not _wav_is_complete(path, rendered.audio.size):
            write_wav_atomic(path, rendered.audio)
            written = True
        results.append(UtteranceResult(plan.utt_id, plan.split, plan.words, rendered.char_times,
                                       rendered.audio.size, written))
    return results, dropped


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def wav_path(root: str, plan: UtterancePlan) -> str:
    return os.path.join(root, "wav", plan.split, plan.speaker_id, plan.utt_id + ".wav")


def write_wav_atomic(path: str, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``(T,)`` float audio as 16-bit PCM mono WAV through a temp file and rename."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, to_int16(audio), sample_rate, subtype="PCM_16", format="WAV")
    with atomic_open(path, "wb") as f:
        f.write(buffer.getvalue())


def _wav_is_complete(path: str, expected_frames: int) -> bool:
    import soundfile as sf

    try:
        info = sf.info(path)
    except (OSError, RuntimeError):
        return False
    return info.frames == expected_frames and info.samplerate == SAMPLE_RATE and info.channels == 1


def _file_sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def generate_corpus(out_dir: str, size: str = "tiny", seed: int = 1, nj: int = 1,
                    text_path: Optional[str] = None, corpus_size: Optional[CorpusSize] = None) -> dict:
    """Write ``<out_dir>/data_aishell`` (see the module docstring); returns the ``.done`` record.

    A finished corpus with the same parameters is left alone; an unfinished one resumes (wavs
    already complete are kept); a corpus made with other parameters is an error.
    ``corpus_size`` overrides the speaker/utterance counts of ``size`` (tests use it).
    """
    if size not in SIZES and corpus_size is None:
        raise CorpusError(f"unknown size {size!r}; choose from {sorted(SIZES)}")
    layout = corpus_size or SIZES[size]
    text_path = text_path or default_text_path()
    if not os.path.isfile(text_path):
        raise CorpusError(f"text source {text_path} not found: run tools/setup.sh or pass --text")
    root = os.path.join(out_dir, "data_aishell")
    params = {
        "format_version": FORMAT_VERSION, "size": size, "seed": seed, "text_sha256": _file_sha256(text_path),
        "speakers": layout.speakers, "utts_per_speaker": layout.utts_per_speaker,
    }
    previous = _previous_run(root, params)
    if previous is not None:
        return previous
    check_espeak()
    start_time = time.time()
    os.makedirs(root, exist_ok=True)
    with atomic_open(os.path.join(root, ".params")) as f:
        json.dump(params, f, ensure_ascii=False, indent=1)

    dropped: Dict[str, collections.Counter] = {"text_runs": collections.Counter(),
                                               "sentences": collections.Counter()}
    all_sentences = extract_sentences(text_path, LM_MIN_CHARS, LM_MAX_CHARS, dropped=dropped["text_runs"])
    sentences = [words for words in all_sentences if MIN_CHARS <= sum(map(len, words)) <= MAX_CHARS]
    logger.info("%d distinct sentences in %s, %d of %d-%d characters; runs left out: %s", len(all_sentences),
                text_path, len(sentences), MIN_CHARS, MAX_CHARS, dict(dropped["text_runs"]) or "none")
    try:
        speakers = make_speakers(layout.speakers, seed)
    except SpeakerError as e:
        raise CorpusError(str(e)) from None
    plans = plan_corpus(sentences, layout, speakers, seed, dropped=dropped["sentences"])
    if dropped["sentences"]:
        logger.info("sentences skipped while choosing: %s", dict(dropped["sentences"]))
    results, dropped_utts = _render_all(root, plans, speakers, seed, nj)
    if not results:
        raise CorpusError(f"every utterance was dropped; is espeak-ng's {VOICE} voice working?")

    transcript_dir = os.path.join(root, "transcript")
    with atomic_open(os.path.join(transcript_dir, TRANSCRIPT_NAME)) as f:
        for r in results:
            f.write(f"{r.utt_id} {' '.join(r.words)}\n")
    write_char_timestamps(os.path.join(transcript_dir, TIMESTAMPS_NAME), {r.utt_id: r.char_times for r in results})
    said = {"".join(p.words) for p in plans}
    lm_sentences = lm_extra_sentences(all_sentences, said)
    with atomic_open(os.path.join(transcript_dir, LM_TEXT_NAME)) as f:
        for words in lm_sentences:
            f.write(" ".join(words) + "\n")

    record = _summary(params, speakers, results, dropped, dropped_utts, len(lm_sentences))
    written = sum(r.written for r in results)
    logger.info("wrote %d wavs (%d already complete) in %.1f s; %d sentences of LM text",
                written, len(results) - written, time.time() - start_time, len(lm_sentences))
    with atomic_open(os.path.join(root, ".done")) as f:
        json.dump(record, f, ensure_ascii=False, indent=1)
    return record


def _previous_run(root: str, params: dict) -> Optional[dict]:
    """The ``.done`` record of a finished run with ``params``; None to (re)start; error on other params."""
    for name in (".done", ".params"):
        path = os.path.join(root, name)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            try:
                previous = json.load(f)
            except json.JSONDecodeError:
                raise CorpusError(f"{path} is not valid JSON; remove {root} and rerun") from None
        previous_params = previous.get("params", previous)
        if previous_params != params:
            raise CorpusError(f"{root} was generated with other parameters ({previous_params}); "
                              f"remove it or choose another --out")
        if name == ".done":
            logger.info("%s is complete (%s); nothing to do", root, path)
            return previous
    return None


def _render_all(root: str, plans: Sequence[UtterancePlan], speakers: Dict[str, List[SpeakerVoice]], seed: int,
                nj: int) -> Tuple[List[UtteranceResult], List[Tuple[str, str]]]:
    """Render every plan in ``nj`` processes (one task per speaker); results sorted by utterance id."""
    by_speaker: Dict[str, List[UtterancePlan]] = {}
    for plan in plans:
        by_speaker.setdefault(plan.speaker_id, []).append(plan)
    voices = {v.speaker_id: v for split in SPLITS for v in speakers[split]}
    tasks = [(root, voices[spk], spk_plans, seed) for spk, spk_plans in by_speaker.items()]
    tasks.sort(key=lambda t: -len(t[2]))  # longest first keeps the workers busy until the end
    results: List[UtteranceResult] = []
    dropped_utts: List[Tuple[str, str]] = []
    bar = progress(total=len(plans), unit="utt", desc="synthesising")
    # One fresh process per speaker, whatever nj: espeak-ng keeps state from one synthesis to
    # the next (its pitch-cycle phase moves phoneme boundaries by a few samples), so a speaker's
    # bytes are reproducible only if its utterances are the first a process says, in order.
    # spawn, not fork: a forked child inherits the parent's torch/OpenMP thread state.
    pool = multiprocessing.get_context("spawn").Pool(max(1, min(nj, len(tasks))), initializer=_init_worker,
                                                     maxtasksperchild=1)
    outputs = pool.imap_unordered(_generate_speaker, tasks)
    try:
        for speaker_results, speaker_dropped in outputs:
            results.extend(speaker_results)
            dropped_utts.extend(speaker_dropped)
            bar.update(len(speaker_results) + len(speaker_dropped))
    finally:
        pool.terminate()
        pool.join()
        bar.close()
    results.sort(key=lambda r: r.utt_id)
    dropped_utts.sort()
    for utt, reason in dropped_utts:
        logger.warning("dropped %s: %s", utt, reason)
    if dropped_utts:
        logger.warning("dropped %d of %d utterances (see above)", len(dropped_utts), len(plans))
    return results, dropped_utts


def write_rendered_data_dir(out_dir: str, root: str, results: Sequence[UtteranceResult],
                            plan_of: Dict[str, UtterancePlan]) -> None:
    """A Kaldi data dir of rendered utterances (a set made beside the corpus: hotwords, commands):
    wav.scp, text, utt2spk, spk2utt and char_timestamps, sorted by utterance id."""
    os.makedirs(out_dir, exist_ok=True)
    results = sorted(results, key=lambda r: r.utt_id)
    with atomic_open(os.path.join(out_dir, "wav.scp")) as f:
        f.writelines(f"{r.utt_id} {wav_path(root, plan_of[r.utt_id])}\n" for r in results)
    with atomic_open(os.path.join(out_dir, "text")) as f:
        f.writelines(f"{r.utt_id} {' '.join(r.words)}\n" for r in results)
    with atomic_open(os.path.join(out_dir, "utt2spk")) as f:
        f.writelines(f"{r.utt_id} {plan_of[r.utt_id].speaker_id}\n" for r in results)
    by_speaker: Dict[str, List[str]] = {}
    for r in results:
        by_speaker.setdefault(plan_of[r.utt_id].speaker_id, []).append(r.utt_id)
    with atomic_open(os.path.join(out_dir, "spk2utt")) as f:
        f.writelines(f"{spk} {' '.join(utts)}\n" for spk, utts in sorted(by_speaker.items()))
    write_char_timestamps(os.path.join(out_dir, "char_timestamps"), {r.utt_id: r.char_times for r in results})


def _summary(params: dict, speakers: Dict[str, List[SpeakerVoice]], results: Sequence[UtteranceResult],
             dropped: Dict[str, collections.Counter], dropped_utts: Sequence[Tuple[str, str]],
             lm_sentences: int) -> dict:
    """The ``.done`` record: parameters, per-split counts, speakers, what was dropped and why."""
    counts = {}
    for split in SPLITS:
        split_results = [r for r in results if r.split == split]
        counts[split] = {
            "speakers": len(speakers[split]),
            "utterances": len(split_results),
            "distinct_sentences": len({"".join(r.words) for r in split_results}),
            "hours": round(sum(r.num_samples for r in split_results) / SAMPLE_RATE / 3600, 4),
        }
        logger.info("%s: %d speakers, %d utterances, %.2f h", split, counts[split]["speakers"],
                    counts[split]["utterances"], counts[split]["hours"])
    return {
        "params": params,
        "counts": counts,
        "lm_extra_sentences": lm_sentences,
        "speakers": {v.speaker_id: dataclasses.asdict(v) for split in SPLITS for v in speakers[split]},
        "sample_rate": SAMPLE_RATE,
        "espeak_voice": VOICE,
        "dropped": {"text_runs": dict(dropped["text_runs"]), "sentences": dict(dropped["sentences"]),
                    "utterances": dict(dropped_utts)},
    }
