"""validate_data_dir.sh: a valid dir passes; each defect class is caught, all problems listed."""
import re

import pytest

from utils_testkit import SMALL_CORPUS, make_data_dir, read_lines, write_lines


def edit(path, transform):
    write_lines(path, transform(read_lines(path)))


DEFECTS = {
    "unsorted wav.scp": (lambda d: edit(d / "wav.scp", lambda ls: [ls[1], ls[0]] + ls[2:]),
                         r"wav.scp:2: not sorted \(C-locale byte order\).*S1-U1 \(line 2\)"),
    "duplicate id": (lambda d: edit(d / "text", lambda ls: ls[:2] + ["S1-U2 又 一 个"] + ls[2:]),
                     r"text:3: duplicate key \(1\): S1-U2 \(line 3\)"),
    "text utt not in wav.scp": (lambda d: edit(d / "text", lambda ls: ls + ["S9-U9 多 余"]),
                                r"text:6: utterance not in wav.scp \(1\): S9-U9"),
    "wav utt without text": (lambda d: edit(d / "text", lambda ls: ls[:-1]),
                             r"wav.scp:5: utterance not in text \(1\): S3-U5"),
    "utt without speaker": (lambda d: edit(d / "utt2spk", lambda ls: ls[1:]),
                            r"wav.scp:1: utterance not in utt2spk \(1\): S1-U1"),
    "spk2utt disagrees": (lambda d: edit(d / "spk2utt", lambda ls: ["S1 S1-U1 S2-U3"] + ls[1:]),
                          r"spk2utt:1: speaker:utterance pair not in utt2spk \(1\): S1:S2-U3"),
    "feats utt not in wav.scp": (lambda d: edit(d / "feats.scp", lambda ls: ls + ["S9-U9 /f.ark:5"]),
                                 r"feats.scp:6: utterance not in wav.scp \(1\): S9-U9"),
    "empty transcript": (lambda d: edit(d / "text", lambda ls: [ls[0], "S1-U2"] + ls[2:]),
                         r"text:2: empty transcript \(1\): S1-U2 \(line 2\)"),
    "not UTF-8": (lambda d: (d / "text").write_bytes((d / "text").read_bytes() + b"S9-U9 \xff\xfe\n"),
                  r"text:6: line not valid UTF-8 \(1\): S9-U9"),
    "bad frame count": (lambda d: edit(d / "utt2num_frames", lambda ls: ["S1-U1 -3"] + ls[1:]),
                        r"utt2num_frames:1: frame count not a positive integer \(1\): S1-U1"),
    "missing spk2utt": (lambda d: (d / "spk2utt").unlink(), r"spk2utt: missing"),
}

KNOCK_ON_PROBLEMS = {"utt without speaker": 1, "feats utt not in wav.scp": 1, "spk2utt disagrees": 2}


def test_valid_data_dir_passes(run_tool, tmp_path):
    make_data_dir(tmp_path / "data", SMALL_CORPUS, feats=True)
    result = run_tool("validate_data_dir.sh data")
    assert result.returncode == 0, result.stderr
    assert "data: valid" in result.stderr


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_each_defect_class_is_caught(run_tool, tmp_path, defect):
    data = tmp_path / "data"
    make_data_dir(data, SMALL_CORPUS, feats=True)
    break_it, expected = DEFECTS[defect]
    break_it(data)
    result = run_tool("validate_data_dir.sh data")
    assert result.returncode == 1
    # The defect itself, plus its knock-on effects on other files (e.g. spk2utt) where it has any.
    assert result.stderr.count("\n  ") == KNOCK_ON_PROBLEMS.get(defect, 0) + 1, result.stderr
    assert re.search(expected, result.stderr), result.stderr


def test_all_problems_are_listed_with_counts_and_first_ids(run_tool, tmp_path):
    utts = {f"S1-U{i:02d}": ("S1", "字") for i in range(12)}
    data = tmp_path / "data"
    make_data_dir(data, utts)
    edit(data / "text", lambda ls: ls[:4])  # 8 utterances lose their transcript
    edit(data / "utt2spk", lambda ls: list(reversed(ls)))
    result = run_tool("validate_data_dir.sh --no-feats data")
    assert result.returncode == 1
    assert "wav.scp:5: utterance not in text (8): S1-U04 (line 5), S1-U05 (line 6), S1-U06 (line 7), " \
           "S1-U07 (line 8), S1-U08 (line 9), ..." in result.stderr
    assert "utt2spk:2: not sorted" in result.stderr
    assert "2 problem(s)" in result.stderr


def test_feats_and_text_requirements(run_tool, tmp_path):
    make_data_dir(tmp_path / "data", SMALL_CORPUS)
    without_feats = run_tool("validate_data_dir.sh data")
    assert without_feats.returncode == 1 and "feats.scp: missing" in without_feats.stderr
    assert run_tool("validate_data_dir.sh --no-feats data").returncode == 0
    (tmp_path / "data" / "text").unlink()
    assert run_tool("validate_data_dir.sh --no-feats data").returncode == 1
    no_text = run_tool("validate_data_dir.sh --no-feats --no-text data")
    assert no_text.returncode == 0, no_text.stderr


def test_bad_usage(run_tool, tmp_path):
    assert run_tool("validate_data_dir.sh").returncode == 1
    unknown = run_tool("validate_data_dir.sh --no-wav data")
    assert unknown.returncode == 1 and "unknown option --no-wav" in unknown.stderr
    missing = run_tool("validate_data_dir.sh nowhere")
    assert missing.returncode == 1 and "nowhere: not a directory" in missing.stderr

