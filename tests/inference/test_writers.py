"""1best_recog writers, readers and the per-job merge."""

import os

import pytest

from funasr_lite.data.datadir import read_kv
from funasr_lite.inference.writers import (
    IncompleteDecodeError,
    merge_1best_recog,
    read_1best_recog,
    read_rtf,
    read_time_stamps,
    read_tokens,
    write_1best_recog,
)

RESULTS = [
    {"key": "utt_b", "text": "今天好", "token": ["今", "天", "好"], "score": -1.25,
     "timestamp": [[90, 329], [329, 600], [600, 1200]], "audio_s": 2.0, "compute_s": 0.25},
    {"key": "utt_a", "text": "hello world", "token": ["hel@@", "lo", "world"], "score": -0.5,
     "timestamp": [[0, 100], [100, 200], [200, 400]], "audio_s": 1.5, "compute_s": 0.125},
    {"key": "utt_c", "text": "", "token": [], "score": 0.0, "timestamp": [], "audio_s": 0.5, "compute_s": 0.125},
]


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_file_formats_sorted_with_empty_hypothesis(tmp_path):
    recog = write_1best_recog(tmp_path, RESULTS)
    assert recog == os.path.join(str(tmp_path), "1best_recog")
    assert sorted(os.listdir(recog)) == ["rtf", "score", "text", "time_stamp", "token"]
    assert read(os.path.join(recog, "text")) == "utt_a hello world\nutt_b 今天好\nutt_c \n"
    assert read(os.path.join(recog, "token")) == "utt_a hel@@ lo world\nutt_b 今 天 好\nutt_c \n"
    assert read(os.path.join(recog, "score")) == "utt_a -0.5\nutt_b -1.25\nutt_c 0.0\n"
    assert read(os.path.join(recog, "time_stamp")) == (
        "utt_a [[0, 100], [100, 200], [200, 400]]\nutt_b [[90, 329], [329, 600], [600, 1200]]\nutt_c []\n")
    # totals: 4.0 s audio, 0.5 s compute -> RTF 0.125
    assert read(os.path.join(recog, "rtf")) == (
        "utt_a 1.500 0.1250 0.08333\nutt_b 2.000 0.2500 0.12500\nutt_c 0.500 0.1250 0.25000\n"
        "%TOTAL 4.000 0.5000 0.12500\n")
    # the empty hypothesis stays readable by the data-dir reader
    assert read_kv(os.path.join(recog, "text"), allow_empty_value=True)["utt_c"] == ""
    assert read_tokens(os.path.join(recog, "token"))["utt_c"] == []
    assert read_time_stamps(os.path.join(recog, "time_stamp"))["utt_b"] == [[90, 329], [329, 600], [600, 1200]]
    per_utt, total = read_rtf(os.path.join(recog, "rtf"))
    assert per_utt["utt_b"] == (2.0, 0.25, 0.125)
    assert total == (4.0, 0.5, 0.125)


def test_round_trip(tmp_path):
    recog = write_1best_recog(tmp_path, RESULTS)
    assert read_1best_recog(recog) == sorted(RESULTS, key=lambda r: r["key"])


def test_without_timestamps_or_rtf_only_the_required_files(tmp_path):
    results = [{k: v for k, v in r.items() if k not in ("timestamp", "audio_s", "compute_s")} for r in RESULTS]
    recog = write_1best_recog(tmp_path, results)
    assert sorted(os.listdir(recog)) == ["score", "text", "token"]


def test_inconsistent_results_are_refused(tmp_path):
    partial = [dict(RESULTS[0]), {k: v for k, v in RESULTS[1].items() if k != "timestamp"}]
    with pytest.raises(ValueError, match="utt_a"):
        write_1best_recog(tmp_path, partial)
    with pytest.raises(ValueError, match="3 tokens but 2 timestamps"):
        write_1best_recog(tmp_path, [dict(RESULTS[0], timestamp=[[0, 1], [1, 2]])])
    with pytest.raises(ValueError, match="twice"):
        write_1best_recog(tmp_path, [RESULTS[0], RESULTS[0]])
    assert not os.path.exists(os.path.join(tmp_path, "1best_recog"))


def write_parts(tmp_path):
    part1 = write_1best_recog(tmp_path / "split" / "1", [RESULTS[0]])
    part2 = write_1best_recog(tmp_path / "split" / "2", RESULTS[1:])
    return [os.path.dirname(part1), os.path.dirname(part2)], [["utt_b"], ["utt_a", "utt_c"]]


def test_merge_equals_writing_everything_at_once(tmp_path):
    part_dirs, expected = write_parts(tmp_path)
    merged = merge_1best_recog(part_dirs, tmp_path / "merged", expected)
    whole = write_1best_recog(tmp_path / "whole", RESULTS)
    for name in ("text", "token", "score", "time_stamp", "rtf"):
        assert read(os.path.join(merged, name)) == read(os.path.join(whole, name)), name


def test_merge_refuses_missing_job_output(tmp_path):
    part_dirs, expected = write_parts(tmp_path)
    os.unlink(os.path.join(part_dirs[1], "1best_recog", "score"))
    with pytest.raises(IncompleteDecodeError) as error:
        merge_1best_recog(part_dirs, tmp_path / "merged", expected)
    message = str(error.value)
    assert part_dirs[1] in message and "1best_recog/score" in message
    assert "utt_a, utt_c" in message
    assert part_dirs[0] + ":" not in message
    assert not os.path.exists(tmp_path / "merged" / "1best_recog")


def test_merge_refuses_incomplete_job_output(tmp_path):
    part_dirs, expected = write_parts(tmp_path)
    # job 2 was killed after writing only utt_a's timestamps
    with open(os.path.join(part_dirs[1], "1best_recog", "time_stamp"), "w", encoding="utf-8") as f:
        f.write("utt_a [[0, 100], [100, 200], [200, 400]]\n")
    with pytest.raises(IncompleteDecodeError, match=r"time_stamp lacks 1 utterances: utt_c"):
        merge_1best_recog(part_dirs, tmp_path / "merged", expected)
    assert not os.path.exists(tmp_path / "merged" / "1best_recog")


def test_merge_refuses_absent_job_dir_and_missing_optional_file(tmp_path):
    part_dirs, expected = write_parts(tmp_path)
    with pytest.raises(IncompleteDecodeError, match=r"split/3: missing .*utt_d"):
        merge_1best_recog(part_dirs + [str(tmp_path / "split" / "3")], tmp_path / "merged", expected + [["utt_d"]])
    os.unlink(os.path.join(part_dirs[0], "1best_recog", "time_stamp"))
    with pytest.raises(IncompleteDecodeError, match="disagree"):
        merge_1best_recog(part_dirs, tmp_path / "merged", expected)


def test_merge_refuses_utterances_a_job_was_not_given(tmp_path):
    part_dirs, expected = write_parts(tmp_path)
    with pytest.raises(IncompleteDecodeError, match=r"not given: utt_c"):
        merge_1best_recog(part_dirs, tmp_path / "merged", [["utt_b"], ["utt_a"]])
