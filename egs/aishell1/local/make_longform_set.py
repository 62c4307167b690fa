#!/usr/bin/env python3
"""Long recordings from a test split, with their ground truth (for egs/aishell1/local/score_longform.py).

Utterances of ``--data_dir`` (wav.scp, text, optional char_timestamps) in a seeded random order
(repeated when the split is shorter than the recording) are joined with pauses drawn from
``--min_pause``..``--max_pause`` s, over background noise (white + brown, ``--snr_db`` below the
mean speech power), into one 16 kHz 16-bit WAV per duration. The WAV is written block by block
(memory does not grow with the duration). Output, one Kaldi-style dir per duration
(``<out_dir>/<name>/``, name ``long<N>s``)::

    wav.scp          <rec> <path of the WAV>
    text             <rec> <the utterances' texts joined, in order, one space between them>
    speech_spans     <rec> <utt_id> <start_ms> <end_ms>   one line per utterance, in time order: its
                     first character's start to its last character's end (char_timestamps), else
                     the whole utterance audio
    char_timestamps  <rec> 字 start_ms end_ms ...   absolute times (only when the split has them)
    utt_end_marks    <rec> <utt_id> <mark>   one line per utterance, in speech_spans order: the
                     punctuation mark that followed the utterance's text in the People's Daily
                     source (``--source_text``), ``-`` when unknown (see below)

An utterance of the synthetic corpus is a *clause*, not a sentence: the corpus cuts the source at
every punctuation mark (，、。？：； ...) and drops the mark (funasr_lite/data/synthetic/text.py).
``utt_end_marks`` gives the mark back: for each utterance text (spaces removed), the mark that most
often followed that clause in the source (first seen on a tie; the end of a paragraph counts as
``。``), or ``-`` when the clause is not in the source or the source text is absent.
egs/aishell1/local/score_longform.py takes the true sentence ends from it (the utterances whose mark ends a
sentence) and scores every mark against the utterance (clause) ends.

    python egs/aishell1/local/make_longform_set.py --data_dir egs/aishell1/data/test --durations 600,3600 \\
        --out_dir egs/aishell1/data/longform

``--marks_only`` (same ``--data_dir``, ``--durations`` and ``--out_dir``) only (re)writes
``utt_end_marks`` of recordings already made, from their ``speech_spans``; no audio is rendered.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Dict, Optional

import numpy as np
import soundfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.data.char_timestamps import read_char_timestamps, write_char_timestamps  # noqa: E402
from funasr_lite.data.datadir import read_kv  # noqa: E402
from funasr_lite.data.synthetic.text import clause_end_marks, default_text_path  # noqa: E402
from funasr_lite.frontend.audio import read_audio  # noqa: E402
from funasr_lite.utils.fileio import atomic_open  # noqa: E402

SAMPLE_RATE = 16000


def _noise(rng: np.random.Generator, n: int, level: float) -> np.ndarray:
    white = rng.standard_normal(n)
    brown = np.cumsum(rng.standard_normal(n)) * 0.02
    brown -= np.linspace(brown[0], brown[-1], n) if n > 1 else brown
    noise = white + brown
    return (noise * level / max(1e-9, float(np.sqrt(np.mean(noise ** 2))))).astype(np.float32)


UNKNOWN_MARK = "-"


def lookup_end_marks(texts: Dict[str, str], source_text: Optional[str]) -> Dict[str, str]:
    """utt -> the mark that most often followed its text (spaces removed) in ``source_text``;
    utterances not found are left out (``-`` in the file). A missing source gives ``{}`` (warned)."""
    if not source_text or not os.path.isfile(source_text):
        print(f"warning: source text {source_text!r} not found; every utterance end mark is "
              f"'{UNKNOWN_MARK}'", file=sys.stderr)
        return {}
    keys = {utt: "".join(text.split()) for utt, text in texts.items()}
    found = clause_end_marks(source_text, wanted=set(keys.values()))
    return {utt: found[key].most_common(1)[0][0] for utt, key in keys.items() if key in found}


def write_utt_end_marks(rec_dir: str, end_marks: Dict[str, str]) -> str:
    """``<rec_dir>/utt_end_marks`` for the utterances of ``<rec_dir>/speech_spans``, in its order."""
    spans_path = os.path.join(rec_dir, "speech_spans")
    if not os.path.isfile(spans_path):
        raise SystemExit(f"{spans_path}: missing (not a egs/aishell1/local/make_longform_set.py recording dir)")
    lines = []
    with open(spans_path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 4:
                raise SystemExit(f"{spans_path}:{line_no}: expected '<rec> <utt> <start_ms> <end_ms>'")
            lines.append(f"{fields[0]} {fields[1]} {end_marks.get(fields[1], UNKNOWN_MARK)}\n")
    path = os.path.join(rec_dir, "utt_end_marks")
    with atomic_open(path) as f:
        f.writelines(lines)
    unknown = sum(line.endswith(f" {UNKNOWN_MARK}\n") for line in lines)
    print(f"{path}: {len(lines)} utterances, {unknown} with no known end mark")
    return path


def make_recording(data_dir: str, seconds: float, out_dir: str, name: str, seed: int = 0,
                   min_pause: float = 0.3, max_pause: float = 3.0, snr_db: float = 25.0,
                   end_marks: Optional[Dict[str, str]] = None) -> str:
    """Write ``<out_dir>/<name>/`` (module docstring) for one recording of about ``seconds``;
    ``end_marks`` (utt -> mark, :func:`lookup_end_marks`) fills ``utt_end_marks`` (none: all ``-``)."""
    wavs = read_kv(os.path.join(data_dir, "wav.scp"))
    texts = read_kv(os.path.join(data_dir, "text"))
    times_path = os.path.join(data_dir, "char_timestamps")
    char_times = read_char_timestamps(times_path) if os.path.isfile(times_path) else None
    utts = sorted(set(wavs) & set(texts))
    if not utts:
        raise SystemExit(f"{data_dir}: no utterance has both wav.scp and text")
    rng = np.random.default_rng(seed)
    rec_dir = os.path.join(out_dir, name)
    os.makedirs(rec_dir, exist_ok=True)
    wav_path = os.path.abspath(os.path.join(rec_dir, f"{name}.wav"))
    total = int(seconds * SAMPLE_RATE)
    order: list = []
    level = None
    written = 0
    spans, joined, absolute = [], [], []
    tmp_wav = wav_path + ".tmp.wav"
    with soundfile.SoundFile(tmp_wav, "w", SAMPLE_RATE, 1, subtype="PCM_16") as out:
        def write(samples: np.ndarray) -> None:
            nonlocal written
            out.write(np.clip(samples, -1.0, 1.0))
            written += samples.size

        while True:
            if not order:
                order = list(rng.permutation(utts))
            utt = order.pop()
            audio, _, _ = read_audio(wavs[utt], SAMPLE_RATE)
            if level is None:  # the noise level: snr_db below the first utterance's mean power
                level = float(np.sqrt(np.mean(audio ** 2))) / (10 ** (snr_db / 20))
            pause = int(rng.uniform(min_pause, max_pause) * SAMPLE_RATE)
            if written + pause + audio.size > total:
                break
            write(_noise(rng, pause, level))
            offset_ms = written * 1000 // SAMPLE_RATE
            write(audio + _noise(rng, audio.size, level))
            if char_times is not None and char_times.get(utt):
                chars = char_times[utt]
                spans.append((utt, offset_ms + chars[0][1], offset_ms + chars[-1][2]))
                absolute.extend((ch, offset_ms + start, offset_ms + end) for ch, start, end in chars)
            else:
                spans.append((utt, offset_ms, offset_ms + audio.size * 1000 // SAMPLE_RATE))
            joined.append(texts[utt])
        write(_noise(rng, max(0, total - written), level or 1e-3))
    os.replace(tmp_wav, wav_path)
    with atomic_open(os.path.join(rec_dir, "wav.scp")) as f:
        f.write(f"{name} {wav_path}\n")
    with atomic_open(os.path.join(rec_dir, "text")) as f:
        f.write(f"{name} {' '.join(joined)}\n")
    with atomic_open(os.path.join(rec_dir, "speech_spans")) as f:
        for utt, start, end in spans:
            f.write(f"{name} {utt} {start} {end}\n")
    if char_times is not None:
        write_char_timestamps(os.path.join(rec_dir, "char_timestamps"), {name: absolute})
    write_utt_end_marks(rec_dir, end_marks or {})
    print(f"{rec_dir}: {seconds:.0f} s, {len(spans)} utterances, speech {sum(e - s for _, s, e in spans) / 1000:.0f} s")
    return rec_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="test split: wav.scp, text [, char_timestamps]")
    parser.add_argument("--durations", default="600,3600", help="comma-separated recording lengths in seconds")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min_pause", type=float, default=0.3)
    parser.add_argument("--max_pause", type=float, default=3.0)
    parser.add_argument("--snr_db", type=float, default=25.0, help="background noise below the speech power")
    parser.add_argument("--source_text", default=default_text_path(),
                        help="the People's Daily text the corpus was cut from (for utt_end_marks)")
    parser.add_argument("--marks_only", action="store_true",
                        help="only (re)write utt_end_marks of the recordings already in --out_dir")
    args = parser.parse_args(argv)
    end_marks = lookup_end_marks(read_kv(os.path.join(args.data_dir, "text")), args.source_text)
    for i, seconds in enumerate(float(d) for d in args.durations.split(",")):
        name = f"long{int(seconds)}s"
        if args.marks_only:
            write_utt_end_marks(os.path.join(args.out_dir, name), end_marks)
        else:
            make_recording(args.data_dir, seconds, args.out_dir, name, args.seed + i,
                           args.min_pause, args.max_pause, args.snr_db, end_marks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
