#!/usr/bin/env python3
"""Score long-form decoding of a egs/aishell1/local/make_longform_set.py dir.

Metrics (one recording or several; sums over them):
  CER          character errors of the whole hypothesis text (punctuation removed) against the
               joined reference, one Levenshtein alignment over the recording (rapidfuzz, C++,
               declared in requirements.txt: its distance is the error count of
               funasr_lite.scoring.cer.align_sequences, which is pure Python and quadratic in
               time and memory, too slow for an hour of text);
  VAD          10 ms frames: missed speech % (true speech outside every VAD segment) and false
               alarm % (VAD speech outside every true span, of the non-speech frames); boundary
               error: mean |VAD segment start - nearest true span start| and the same for ends (ms);
  sentences    predicted sentence ends (``1best_recog/sentences``) against the true ones: a
               prediction within ``--tolerance_ms`` of a true end, one to one in time order, is a
               hit; precision, recall, F1. The true ends are the ``speech_spans`` ends (an
               utterance's last character end) of the utterances whose ``utt_end_marks`` mark ends a
               sentence: 。？！ (and ASCII .?!). ； and ： do not: they are clause marks, as for the
               pipeline (``sentence_marks`` 。？！) and the punctuation model (no ； class). An
               utterance with mark ``-`` (unknown) counts as no sentence end (the number is
               reported). Without ``utt_end_marks`` (a dir made before it existed; add it with
               ``make_longform_set.py --marks_only``) every utterance end is a true sentence end,
               which is wrong for the synthetic corpus (its utterances are clauses) and is said so
               in the output (``reference``: ``every_utterance_ends_a_sentence``);
  clauses      (with ``utt_end_marks``) every predicted punctuation mark (its time: the end of the
               token before it, from ``1best_recog/{text,token,time_stamp}``) against every
               utterance end (each one ends a clause), matched the same way: precision, recall,
               F1; ``reference_marks``: the count of each reference mark; ``confusion``: reference
               mark -> predicted mark at the matched boundary (``none``: no mark within the
               tolerance) -> count;
  timestamps   characters aligned as equal (same alignment as CER, when char_timestamps exist):
               mean |hyp - ref| start/end (ms) and the mean signed start/end bias.

    python egs/aishell1/local/score_longform.py --data_dir data/longform/long600s --decode_dir exp/x/decode_long600s \\
        [--vad_model_dir DIR]    # VAD metrics: segments of the wav by this VAD (default: the released one)
Prints the numbers and writes ``<decode_dir>/longform_score.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Sequence, Tuple

import numpy as np
from rapidfuzz.distance import Levenshtein

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from funasr_lite.data.datadir import read_kv  # noqa: E402
from funasr_lite.data.tokenizer import text_to_chars, tokens_to_text  # noqa: E402

PUNCTUATION = set("，。？、！；：,.?!;:")
SENTENCE_END_MARKS = set("。？！.?!")
UNKNOWN_MARK = "-"


def hyp_chars(text: str) -> List[str]:
    return [ch for ch in text_to_chars(text) if ch not in PUNCTUATION]


def cer_counts(ref_text: str, hyp_text: str) -> Tuple[int, int]:
    """(errors, reference characters), punctuation removed from the hypothesis."""
    ref = text_to_chars(ref_text)
    return Levenshtein.distance(ref, hyp_chars(hyp_text)), len(ref)


def vad_scores(segments: Sequence[Sequence[int]], spans: Sequence[Sequence[int]], duration_ms: int) -> Dict:
    frames = max(1, duration_ms // 10)
    truth = np.zeros(frames, dtype=bool)
    vad = np.zeros(frames, dtype=bool)
    for start, end in spans:
        truth[start // 10 : end // 10] = True
    for start, end in segments:
        vad[start // 10 : end // 10] = True
    true_starts = np.array([s for s, _ in spans]) if spans else np.zeros(0)
    true_ends = np.array([e for _, e in spans]) if spans else np.zeros(0)

    def nearest(values, targets):
        return [float(np.min(np.abs(targets - v))) for v in values] if len(targets) else []

    start_err = nearest([s for s, _ in segments], true_starts)
    end_err = nearest([e for _, e in segments], true_ends)
    return {
        "missed_speech_percent": 100.0 * float(np.sum(truth & ~vad)) / max(1, int(truth.sum())),
        "false_alarm_percent": 100.0 * float(np.sum(vad & ~truth)) / max(1, int((~truth).sum())),
        "start_error_ms": float(np.mean(start_err)) if start_err else float("nan"),
        "end_error_ms": float(np.mean(end_err)) if end_err else float("nan"),
        "num_segments": len(segments), "num_true_spans": len(spans),
    }


def match_ends(predicted: Sequence[float], truth: Sequence[float], tolerance_ms: float) -> List[Tuple[int, int]]:
    """(predicted index, true index) pairs: one-to-one in time order (two pointers) within the
    tolerance; both sequences sorted."""
    i = j = 0
    pairs = []
    while i < len(predicted) and j < len(truth):
        if abs(predicted[i] - truth[j]) <= tolerance_ms:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif predicted[i] < truth[j]:
            i += 1
        else:
            j += 1
    return pairs


def sentence_scores(predicted_ends: Sequence[float], true_ends: Sequence[float], tolerance_ms: float) -> Dict:
    """One-to-one matching in time order (two pointers) within the tolerance."""
    predicted, truth = sorted(predicted_ends), sorted(true_ends)
    hits = len(match_ends(predicted, truth, tolerance_ms))
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "hits": hits,
            "predicted": len(predicted), "true": len(truth), "tolerance_ms": tolerance_ms}


def predicted_marks(text: str, tokens: Sequence[str], stamps: Sequence[Sequence[float]]) -> List[Tuple[str, float]]:
    """``(mark, time_ms)`` for each punctuation mark of the punctuated ``text``, in order; the time
    is the end of the last token before the mark (how ``sentences`` times a sentence end). Tokens
    are matched to the text by their characters (``tokens_to_text`` of each, spaces removed)."""
    ends, total = [], 0  # ends[k]: characters of tokens[:k + 1]
    for token in tokens:
        total += len(text_to_chars(tokens_to_text([token])))
        ends.append(total)
    marks, seen, k = [], 0, 0
    for ch in text_to_chars(text):
        if ch not in PUNCTUATION:
            seen += 1
            continue
        while k < len(ends) and ends[k] < seen:
            k += 1
        if seen and k < len(stamps):
            marks.append((ch, float(stamps[k][1])))
    return marks


def clause_scores(predicted: Sequence[Tuple[str, float]], utt_ends: Sequence[Tuple[str, float]],
                  tolerance_ms: float) -> Dict:
    """Every predicted mark against every utterance (clause) end (``(mark, time)`` pairs), matched
    as :func:`sentence_scores`; plus the reference mark counts and the confusion at the boundaries."""
    predicted, truth = sorted(predicted, key=lambda m: m[1]), sorted(utt_ends, key=lambda m: m[1])
    pairs = match_ends([t for _, t in predicted], [t for _, t in truth], tolerance_ms)
    scores = sentence_scores([t for _, t in predicted], [t for _, t in truth], tolerance_ms)
    got = {j: predicted[i][0] for i, j in pairs}
    confusion: Dict[str, Dict[str, int]] = {}
    for j, (mark, _) in enumerate(truth):
        row = confusion.setdefault(mark, {})
        row[got.get(j, "none")] = row.get(got.get(j, "none"), 0) + 1
    scores["reference_marks"] = {mark: sum(row.values()) for mark, row in sorted(confusion.items())}
    scores["confusion"] = {mark: dict(sorted(row.items())) for mark, row in sorted(confusion.items())}
    return scores


def read_end_marks(path, spans: Dict[str, List[Tuple[str, int, int]]]) -> Dict[str, List[str]]:
    """``utt_end_marks`` -> rec -> marks in ``speech_spans`` order (the utterances must agree)."""
    marks: Dict[str, List[Tuple[str, str]]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 3:
                raise SystemExit(f"{path}:{line_no}: expected '<rec> <utt> <mark>'")
            marks.setdefault(fields[0], []).append((fields[1], fields[2]))
    for rec, rec_spans in spans.items():
        if [u for u, _ in marks.get(rec, [])] != [u for u, _, _ in rec_spans]:
            raise SystemExit(f"{path}: the utterances of {rec} differ from speech_spans "
                             f"(rewrite it: make_longform_set.py --marks_only)")
    return {rec: [m for _, m in pairs] for rec, pairs in marks.items()}


def timestamp_scores(ref_units: Sequence[Tuple[str, float, float]], tokens: Sequence[str],
                     stamps: Sequence[Sequence[float]]) -> Dict:
    """Start/end errors over the characters aligned as equal (hyp tokens are single characters)."""
    hyp = [(t, s, e) for t, (s, e) in zip(tokens, stamps) if t not in PUNCTUATION]
    ref_chars, hyp_tokens = [u[0] for u in ref_units], [u[0] for u in hyp]
    starts, ends = [], []
    for op in Levenshtein.opcodes(ref_chars, hyp_tokens):
        if op.tag != "equal":
            continue
        for k in range(op.src_end - op.src_start):
            r, h = ref_units[op.src_start + k], hyp[op.dest_start + k]
            starts.append(float(h[1]) - float(r[1]))
            ends.append(float(h[2]) - float(r[2]))
    if not starts:
        return {"num_correct": 0}
    return {"num_correct": len(starts), "mean_abs_start_ms": float(np.mean(np.abs(starts))),
            "mean_abs_end_ms": float(np.mean(np.abs(ends))), "start_bias_ms": float(np.mean(starts)),
            "end_bias_ms": float(np.mean(ends))}


def read_spans(path) -> Dict[str, List[Tuple[str, int, int]]]:
    spans: Dict[str, List[Tuple[str, int, int]]] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if len(fields) != 4:
                raise SystemExit(f"{path}:{line_no}: expected '<rec> <utt> <start_ms> <end_ms>'")
            spans.setdefault(fields[0], []).append((fields[1], int(fields[2]), int(fields[3])))
    return spans


def score(data_dir: str, decode_dir: str, vad_model_dir=None, tolerance_ms: float = 500.0) -> Dict:
    import soundfile

    from funasr_lite.data.char_timestamps import read_char_timestamps
    from funasr_lite.inference.writers import read_1best_recog, read_sentences

    recog_dir = os.path.join(decode_dir, "1best_recog")
    hyps = {r["key"]: r for r in read_1best_recog(recog_dir)}
    sentences = read_sentences(os.path.join(recog_dir, "sentences"))
    refs = read_kv(os.path.join(data_dir, "text"))
    wavs = read_kv(os.path.join(data_dir, "wav.scp"))
    spans = read_spans(os.path.join(data_dir, "speech_spans"))
    times_path = os.path.join(data_dir, "char_timestamps")
    char_times = read_char_timestamps(times_path) if os.path.isfile(times_path) else {}
    marks_path = os.path.join(data_dir, "utt_end_marks")
    end_marks = read_end_marks(marks_path, spans) if os.path.isfile(marks_path) else None
    vad = None
    if vad_model_dir != "none":
        from funasr_lite import VAD

        vad = VAD.from_model_dir(vad_model_dir)
    report = {"recordings": {}, "tolerance_ms": tolerance_ms,
              "reference": "utt_end_marks" if end_marks is not None else "every_utterance_ends_a_sentence"}
    totals = {"errors": 0, "ref_chars": 0}
    for rec in sorted(refs):
        hyp = hyps.get(rec, {"text": "", "token": [], "timestamp": []})
        errors, ref_chars = cer_counts(refs[rec], hyp["text"])
        totals["errors"] += errors
        totals["ref_chars"] += ref_chars
        entry = {"cer_percent": 100.0 * errors / max(1, ref_chars), "errors": errors, "ref_chars": ref_chars}
        true_spans = [(s, e) for _, s, e in spans.get(rec, [])]
        if end_marks is None:
            true_ends = [e for _, e in true_spans]
        else:
            utt_ends = list(zip(end_marks.get(rec, []), (e for _, e in true_spans)))
            true_ends = [e for mark, e in utt_ends if mark in SENTENCE_END_MARKS]
        entry["sentences"] = sentence_scores([s["end"] for s in sentences.get(rec, [])], true_ends, tolerance_ms)
        if end_marks is not None:
            entry["sentences"]["unknown_marks"] = sum(mark == UNKNOWN_MARK for mark, _ in utt_ends)
            entry["clauses"] = clause_scores(predicted_marks(hyp["text"], hyp["token"], hyp.get("timestamp") or []),
                                             utt_ends, tolerance_ms)
        if vad is not None:
            duration_ms = int(soundfile.info(wavs[rec]).duration * 1000)
            entry["vad"] = vad_scores(vad(wavs[rec]), true_spans, duration_ms)
        if rec in char_times and hyp.get("timestamp") is not None:
            entry["timestamps"] = timestamp_scores(char_times[rec], hyp["token"], hyp["timestamp"])
        report["recordings"][rec] = entry
    report["cer_percent"] = 100.0 * totals["errors"] / max(1, totals["ref_chars"])
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="a egs/aishell1/local/make_longform_set.py dir")
    parser.add_argument("--decode_dir", required=True, help="holds 1best_recog/ with sentences")
    parser.add_argument("--vad_model_dir", default=None, help="VAD for the VAD metrics (default: released; none: skip)")
    parser.add_argument("--tolerance_ms", type=float, default=500.0, help="sentence-end match tolerance")
    args = parser.parse_args(argv)
    report = score(args.data_dir, args.decode_dir, args.vad_model_dir, args.tolerance_ms)
    for rec, entry in report["recordings"].items():
        line = f"{rec}: CER {entry['cer_percent']:.2f}% [ {entry['errors']} / {entry['ref_chars']} ]"
        s = entry["sentences"]
        line += f"; sentence ends P {s['precision']:.3f} R {s['recall']:.3f} F1 {s['f1']:.3f}"
        if "clauses" in entry:
            c = entry["clauses"]
            line += (f" ({s['true']} of {c['true']} utterance ends; {s['unknown_marks']} unknown)"
                     f"; clause boundaries P {c['precision']:.3f} R {c['recall']:.3f} F1 {c['f1']:.3f}")
        else:
            line += " (every utterance end taken as a sentence end: no utt_end_marks)"
        if "vad" in entry:
            v = entry["vad"]
            line += (f"; VAD miss {v['missed_speech_percent']:.2f}% FA {v['false_alarm_percent']:.2f}% "
                     f"start err {v['start_error_ms']:.0f} ms end err {v['end_error_ms']:.0f} ms")
        if entry.get("timestamps", {}).get("num_correct"):
            t = entry["timestamps"]
            line += (f"; char times |start| {t['mean_abs_start_ms']:.1f} ms |end| {t['mean_abs_end_ms']:.1f} ms "
                     f"bias {t['start_bias_ms']:+.1f}/{t['end_bias_ms']:+.1f} ms over {t['num_correct']} chars")
        print(line)
        if "clauses" in entry:
            print(f"{rec}: reference mark -> predicted mark at the boundary (tolerance {args.tolerance_ms:.0f} ms): "
                  + "; ".join(f"{m} {n}: " + " ".join(f"{p}={k}" for p, k in entry["clauses"]["confusion"][m].items())
                              for m, n in entry["clauses"]["reference_marks"].items()))
    if report["reference"] != "utt_end_marks":
        print("note: no utt_end_marks in --data_dir: sentence ends scored under the 'every utterance ends a "
              "sentence' assumption (add it: egs/aishell1/local/make_longform_set.py --marks_only)")
    print(f"%CER {report['cer_percent']:.2f}")
    with open(os.path.join(args.decode_dir, "longform_score.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
