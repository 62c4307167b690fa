"""egs/aishell1/local/make_longform_set.py and egs/aishell1/local/score_longform.py: the set keeps its ground truth; the metrics
equal hand-computed values."""

import os
import sys

import numpy as np
import pytest
import soundfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "egs", "aishell1", "local"))

import make_longform_set  # noqa: E402
from make_longform_set import lookup_end_marks, make_recording  # noqa: E402
from score_longform import (  # noqa: E402
    cer_counts,
    predicted_marks,
    read_spans,
    score,
    sentence_scores,
    timestamp_scores,
    vad_scores,
)

from funasr_lite.data.char_timestamps import read_char_timestamps, write_char_timestamps  # noqa: E402
from funasr_lite.data.datadir import read_kv  # noqa: E402
from funasr_lite.data.synthetic import text as source_text  # noqa: E402
from funasr_lite.inference.longform import sentences_from_marks  # noqa: E402
from funasr_lite.inference.writers import write_1best_recog  # noqa: E402

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

    rec_dir = make_recording(str(data), 20.0, str(tmp_path / "out"), "rec", seed=1,
                             end_marks={"u0": "。", "u1": "，"})
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
    marks = [line.split() for line in open(os.path.join(rec_dir, "utt_end_marks"), encoding="utf-8")]
    assert marks == [["rec", utt, {"u0": "。", "u1": "，"}.get(utt, "-")] for utt, _, _ in spans]
    assert all(b[1] - a[2] >= 300 + 500 for a, b in zip(spans, spans[1:]))  # >= 0.3 s pause + 2 x 250 ms edges


# People's Daily style source: 词/pos tokens, one paragraph a line.
TAGGED = """但/c 最/d 关键/a 的/u 是/v ，/w 要/v 有/v “/w 信心/n ”/w 。/w
１９９８年/t 到来/v ！/w 大家/r 好/a
但/c 最/d 关键/a 的/u 是/v ：/w ABC/nx 好/a ；/w 要/v 有/v 信心/n 、/w
"""


def test_clause_end_marks_from_a_tagged_source(tmp_path):
    path = tmp_path / "source.txt"
    path.write_text(TAGGED, encoding="utf-8")
    marks = source_text.clause_end_marks(str(path))
    # quotes ignored, numbers spelt out, end of line = 。, the non-Chinese run "ABC好" left out
    assert marks == {"但最关键的是": {"，": 1, "：": 1}, "要有信心": {"。": 1, "、": 1},
                     "一九九八年到来": {"！": 1}, "大家好": {"。": 1}}
    # the same runs as the corpus cuts (the existing function is unchanged)
    runs = ["".join(w) for line in TAGGED.splitlines() for w in source_text.segments_from_tagged_line(line)]
    assert sorted(set(runs)) == sorted(marks)
    assert source_text.clause_end_marks(str(path), wanted={"大家好"}) == {"大家好": {"。": 1}}
    texts = {"a": "但 最 关键 的 是", "b": "大家 好", "c": "不 在 里面", "d": "一九九八年 到来"}
    assert lookup_end_marks(texts, str(path)) == {"a": "，", "b": "。", "d": "！"}  # tie: first seen
    assert lookup_end_marks(texts, str(tmp_path / "absent.txt")) == {}


def test_marks_only_adds_utt_end_marks_without_audio(tmp_path):
    source = tmp_path / "source.txt"
    source.write_text(TAGGED, encoding="utf-8")
    data = tmp_path / "test"
    data.mkdir()
    (data / "text").write_text("a 但 最 关键 的 是\nb 大家 好\nc 不 在 里面\n", encoding="utf-8")
    rec_dir = tmp_path / "out" / "long20s"
    rec_dir.mkdir(parents=True)
    (rec_dir / "speech_spans").write_text("long20s b 0 900\nlong20s c 1500 2000\nlong20s a 2500 3000\n")
    assert make_longform_set.main(["--data_dir", str(data), "--durations", "20", "--out_dir", str(tmp_path / "out"),
                                   "--marks_only", "--source_text", str(source)]) == 0
    assert (rec_dir / "utt_end_marks").read_text(encoding="utf-8") == "long20s b 。\nlong20s c -\nlong20s a ，\n"
    assert sorted(os.listdir(rec_dir)) == ["speech_spans", "utt_end_marks"]


def test_predicted_marks_take_the_end_of_the_token_before():
    assert predicted_marks("今天好。天气，", ["今", "天", "好", "天", "气"],
                           [[0, 10], [10, 20], [20, 30], [30, 40], [40, 50]]) == [("。", 30.0), ("，", 50.0)]


def _scored_dir(tmp_path, marks):
    data = tmp_path / "data"
    data.mkdir(parents=True)
    (data / "text").write_text("rec 今天 好 天气 晴 我们 走\n", encoding="utf-8")
    (data / "wav.scp").write_text("rec /nonexistent.wav\n")
    (data / "speech_spans").write_text("rec u0 0 1000\nrec u1 2000 3000\nrec u2 4000 5000\n")
    if marks is not None:
        (data / "utt_end_marks").write_text("".join(f"rec u{i} {m}\n" for i, m in enumerate(marks)), encoding="utf-8")
    tokens = list("今天好天气晴我们走")
    stamps = [[0, 500], [500, 800], [800, 1000], [2000, 2500], [2500, 2800], [2800, 3000],
              [4000, 4300], [4300, 4500], [4500, 5000]]
    hyp_marks = ["", "", "。", "", "", "，", "", "、", "。"]  # 。 at 1000, ， at 3000, 、 at 4500, 。 at 5000
    text = "今天好。天气晴，我们、走。"
    write_1best_recog(str(tmp_path / "decode"), [{
        "key": "rec", "text": text, "token": tokens, "score": 0.0, "timestamp": stamps,
        "sentence_info": sentences_from_marks(tokens, stamps, hyp_marks)}])
    return score(str(data), str(tmp_path / "decode"), vad_model_dir="none", tolerance_ms=200)


def test_scorer_uses_utt_end_marks(tmp_path):
    report = _scored_dir(tmp_path, ["，", "。", "？"])
    assert report["reference"] == "utt_end_marks"
    entry = report["recordings"]["rec"]
    assert entry["cer_percent"] == 0
    s = entry["sentences"]  # true sentence ends: u1 (。) 3000 and u2 (？) 5000; predicted: 1000, 5000
    assert (s["true"], s["predicted"], s["hits"], s["unknown_marks"]) == (2, 2, 1, 0)
    assert (s["precision"], s["recall"]) == (0.5, 0.5)
    c = entry["clauses"]  # 4 predicted marks, 3 utterance ends, the 、 at 4500 ms is 500 ms off
    assert (c["predicted"], c["true"], c["hits"]) == (4, 3, 3)
    assert c["precision"] == pytest.approx(0.75) and c["recall"] == 1.0
    assert c["reference_marks"] == {"，": 1, "。": 1, "？": 1}
    assert c["confusion"] == {"，": {"。": 1}, "。": {"，": 1}, "？": {"。": 1}}


def test_scorer_unknown_marks_and_old_dirs(tmp_path):
    entry = _scored_dir(tmp_path / "a", ["-", "；", "。"])["recordings"]["rec"]
    s = entry["sentences"]  # ； is a clause mark; "-" no sentence end
    assert (s["true"], s["hits"], s["unknown_marks"]) == (1, 1, 1)
    assert entry["clauses"]["confusion"] == {"-": {"。": 1}, "；": {"，": 1}, "。": {"。": 1}}
    old = _scored_dir(tmp_path / "b", None)  # no utt_end_marks: every utterance end is a sentence end
    assert old["reference"] == "every_utterance_ends_a_sentence"
    s = old["recordings"]["rec"]["sentences"]
    assert (s["true"], s["hits"]) == (3, 2) and "clauses" not in old["recordings"]["rec"]


def _third_party_imports(path):
    """Top-level names of the modules a file imports that are neither stdlib nor this repo's."""
    import ast

    tree = ast.parse(open(path, encoding="utf-8").read())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    local = {os.path.splitext(name)[0] for name in os.listdir(os.path.dirname(path))}
    return sorted(n for n in names if n not in sys.stdlib_module_names and n != "funasr_lite" and n not in local)


def _declared_distributions():
    import re

    declared = set()
    with open(os.path.join(REPO, "requirements.txt"), encoding="utf-8") as f:
        for line in f:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line.split("#")[0])
            if match:
                declared.add(match.group(1).lower().replace("_", "-"))
    return declared


@pytest.mark.parametrize("script", ["score_longform.py", "make_longform_set.py"])
def test_the_recipe_helpers_import_only_declared_packages(script):
    # a recipe helper runs in the environment tools/setup.sh builds from requirements.txt: a package
    # that arrives only as another one's dependency (rapidfuzz came with jiwer) can vanish with it
    from importlib.metadata import packages_distributions

    owners = packages_distributions()
    declared = _declared_distributions()
    for name in _third_party_imports(os.path.join(REPO, "egs", "aishell1", "local", script)):
        distributions = {d.lower().replace("_", "-") for d in owners.get(name, [name])}
        assert distributions & declared, f"{script} imports {name} ({', '.join(sorted(distributions))}): not in requirements.txt"


def test_long_form_cer_counts_are_the_scoring_alignment_error_counts():
    # rapidfuzz's edit distance (C++, for hour-long texts) is the error count of the project's one
    # alignment (funasr_lite.scoring.cer.align_sequences), so long-form and per-utterance CER agree
    import random

    from funasr_lite.scoring.cer import char_errors

    rng = random.Random(3)
    for _ in range(300):
        ref = "".join(rng.choice("今天好的是") for _ in range(rng.randint(1, 15)))
        hyp = "".join(rng.choice("今天好的是，。") for _ in range(rng.randint(0, 15)))
        assert cer_counts(ref, hyp) == char_errors(ref, hyp.replace("，", "").replace("。", ""))
