"""tools/make_longform_set.py and tools/score_longform.py: the set keeps its ground truth; the metrics
equal hand-computed values."""

import os
import sys

import numpy as np
import pytest
import soundfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tools"))

from make_longform_set import make_recording  # noqa: E402
from score_longform import cer_counts, read_spans, sentence_scores, timestamp_scores, vad_scores  # noqa: E402

from funasr_lite.data.char_timestamps import read_char_timestamps, write_char_timestamps  # noqa: E402
from funasr_lite.data.datadir import read_kv  # noqa: E402

SR = 16000


def test_metrics_by_hand():
    assert cer_counts("今天 好", "今天，坏。") == (1, 3)  # punctuation removed, one substitution
    # truth 1.00-2.00 s and 3.00-4.00 s; VAD 1.10-2.50 s: 10 of 200 speech frames missed... plus all of 3-4 s
    v = vad_scores([[1100, 2500]], [[1000, 2000], [3000, 4000]], 5000)
    assert v["missed_speech_percent"] == pytest.approx(100 * (10 + 100) / 200)
    assert v["false_alarm_percent"] == pytest.approx(100 * 50 / 300)
    assert v["start_error_ms"] == 100 and v["end_error_ms"] == 500
    s = sentence_scores([1000, 2100, 5000], [2000, 4000], tolerance_ms=200)
    assert (s["hits"], s["precision"], s["recall"]) == (1, pytest.approx(1 / 3), 0.5)
    t = timestamp_scores([("今", 0, 100), ("天", 100, 200), ("好", 200, 300)], ["今", "天", "，", "坏"],
                         [[10, 90], [130, 210], [210, 220], [220, 330]])
    assert t["num_correct"] == 2
    assert t["mean_abs_start_ms"] == pytest.approx(20) and t["start_bias_ms"] == pytest.approx(20)
    assert t["mean_abs_end_ms"] == pytest.approx(10) and t["end_bias_ms"] == pytest.approx(0)


def test_long_recording_keeps_spans_texts_and_char_times(tmp_path):
    data = tmp_path / "test"
    data.mkdir()
    rng = np.random.default_rng(0)
    texts, times = {}, {}
    with open(data / "wav.scp", "w") as scp:
        for i in range(3):
            utt = f"u{i}"
            audio = np.zeros(SR, dtype=np.float32)
            audio[4000:12000] = 0.3 * np.sin(np.arange(8000) * 0.2 * (i + 1))  # "speech" 250-750 ms
            soundfile.write(data / f"{utt}.wav", audio, SR, subtype="PCM_16")
            scp.write(f"{utt} {data / f'{utt}.wav'}\n")
            texts[utt] = "一二"[: 1 + i % 2]
            times[utt] = [("一", 250, 500), ("二", 500, 750)][: 1 + i % 2]
    with open(data / "text", "w", encoding="utf-8") as f:
        f.writelines(f"{k} {v}\n" for k, v in texts.items())
    write_char_timestamps(str(data / "char_timestamps"), times)

    rec_dir = make_recording(str(data), 20.0, str(tmp_path / "out"), "rec", seed=1)
    wav = read_kv(os.path.join(rec_dir, "wav.scp"))["rec"]
    audio, rate = soundfile.read(wav, dtype="float32")
    assert rate == SR and audio.size == 20 * SR
    spans = read_spans(os.path.join(rec_dir, "speech_spans"))["rec"]
    chars = read_char_timestamps(os.path.join(rec_dir, "char_timestamps"))["rec"]
    assert len(spans) >= 5 and read_kv(os.path.join(rec_dir, "text"))["rec"].split() == [texts[u] for u, _, _ in spans]
    position = 0
    for utt, start, end in spans:
        assert end - start == (500 if texts[utt] == "一二" else 250)
        n = len(texts[utt])
        assert [c[0] for c in chars[position : position + n]] == list(texts[utt])
        assert chars[position][1] == start and chars[position + n - 1][2] == end
        position += n
        # the tone is where the span says, the 50 ms before it is background noise only
        inside = audio[start * SR // 1000 + 160 : end * SR // 1000 - 160]
        before = audio[(start - 60) * SR // 1000 : (start - 10) * SR // 1000]
        assert np.sqrt(np.mean(inside ** 2)) > 10 * np.sqrt(np.mean(before ** 2))
    assert position == len(chars)
    assert all(b[1] - a[2] >= 300 + 500 for a, b in zip(spans, spans[1:]))  # >= 0.3 s pause + 2 x 250 ms edges
