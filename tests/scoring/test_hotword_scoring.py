"""Hotword recall, precision, U-CER and B-CER (funasr_lite/scoring/hotword.py), by hand."""

import pytest

from funasr_lite.bin import compute_cer
from funasr_lite.scoring.hotword import find_occurrences, score_hotwords

HOTWORDS = ["江泽民", "北京", "北京大学", "人民日报"]


def test_occurrences_are_longest_first_and_do_not_overlap():
    chars = list("他在北京大学读人民日报北京")
    words = [list(w) for w in HOTWORDS]
    assert find_occurrences(chars, words) == [(2, 6), (7, 11), (11, 13)]
    assert find_occurrences(list("没有"), words) == []


def test_recall_precision_and_the_two_cers():
    refs = {"a": "江泽民到北京大学", "b": "人民日报今天出版", "c": "天气很好"}
    hyps = {"a": "江泽民到北经大学",   # 北京大学 missed (one substitution inside it)
            "b": "人民日报今天出版",    # recalled
            "c": "天气北京很好"}        # a false alarm: 北京 inserted where none was said
    score = score_hotwords(refs, hyps, HOTWORDS)
    assert (score.ref_occurrences, score.recalled) == (3, 2)   # 江泽民, 北京大学, 人民日报
    assert (score.hyp_occurrences, score.hyp_correct) == (3, 2)  # 江泽民, 人民日报, 北京 (false)
    assert score.recall == pytest.approx(200 / 3) and score.precision == pytest.approx(200 / 3)
    assert (score.biased_chars, score.biased_errors) == (11, 1)  # 3 + 4 + 4 hotword chars; 京 -> 经
    assert (score.unbiased_chars, score.unbiased_errors) == (9, 2)  # 到, 今天出版, 天气很好; 2 insertions
    assert score.u_cer == pytest.approx(200 / 9)


def test_a_hotword_with_an_insertion_inside_is_not_recalled():
    score = score_hotwords({"a": "去北京"}, {"a": "去北的京"}, ["北京"])
    assert (score.recalled, score.biased_errors, score.hyp_occurrences) == (0, 1, 0)


def test_compute_cer_writes_hotword_txt(tmp_path):
    (tmp_path / "ref").write_text("a 江泽民到北京大学\nb 天气很好\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("a 江泽民到北京大学\nb 天气很好\n", encoding="utf-8")
    (tmp_path / "hw.txt").write_text("\n".join(HOTWORDS) + "\n", encoding="utf-8")
    assert compute_cer.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--out_dir",
                             str(tmp_path / "out"), "--hotword_list", str(tmp_path / "hw.txt")]) == 0
    lines = (tmp_path / "out" / "hotword.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# 4 hotwords")
    assert lines[1].startswith("%HOTWORD_RECALL 100.00 [ 2 / 2")
    assert lines[3].startswith("%U-CER 0.00 [ 0 / 5")
