"""Command-word scoring (funasr_lite/scoring/commands.py), counted by hand on small cases."""

import json

import pytest

from funasr_lite.bin import compute_cer
from funasr_lite.scoring.commands import score_commands

COMMANDS = ["打开空调", "关闭空调", "播放"]


def test_accuracy_substitutions_rejections_and_false_accepts():
    refs = {"c1": "打开 空调", "c2": "打开空调", "c3": "关闭 空调", "c4": "播放", "n1": "打开 冰箱", "n2": "今天 天气 好",
            "n3": "打开 电脑"}
    hyps = {"c1": "打开空调", "c2": "关闭空调", "c3": "关闭空", "n1": "打开空调", "n2": "今天天气好", "n3": "播放"}
    kinds = {"n1": "near_miss", "n2": "other", "n3": "near_miss"}
    score = score_commands(refs, hyps, COMMANDS, kinds)
    assert (score.commands, score.correct, score.substituted, score.rejected, score.missing) == (4, 1, 1, 2, 1)
    assert score.accuracy == 25.0
    assert score.negatives == {"near_miss": 2, "other": 1} and score.false_accepts == {"near_miss": 2, "other": 0}
    assert score.false_accept_rate("near_miss") == 100.0 and score.false_accept_rate() == pytest.approx(200 / 3)
    assert score.lines()[0] == "%CMD_ACC 25.00 % [ 1 / 4, 1 as another command, 2 rejected ]"
    assert "missing hypotheses: 1 (counted as rejections)" in score.lines()


def test_an_empty_command_list_is_refused():
    with pytest.raises(ValueError, match="empty"):
        score_commands({"a": "x"}, {"a": "x"}, [" ", ""])


def test_compute_cer_writes_command_txt_and_json(tmp_path, capsys):
    (tmp_path / "ref").write_text("u1 打开 空调\nu2 打开 冰箱\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("u1 打开空调\nu2 打开空调\n", encoding="utf-8")
    (tmp_path / "kind").write_text("u1 command\nu2 near_miss\n", encoding="utf-8")
    (tmp_path / "commands.txt").write_text("打开空调\n关闭空调\n", encoding="utf-8")
    rc = compute_cer.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--out_dir", str(tmp_path),
                           "--command_list", str(tmp_path / "commands.txt"), "--utt2kind", str(tmp_path / "kind")])
    assert rc == 0
    text = (tmp_path / "command.txt").read_text(encoding="utf-8")
    assert "%CMD_ACC 100.00 % [ 1 / 1" in text and "%FA_near_miss 100.00 % [ 1 / 1 ]" in text
    assert json.loads((tmp_path / "command.json").read_text())["false_accept_rate"] == 100.0
    assert compute_cer.main(["--ref", str(tmp_path / "ref"), "--hyp", str(tmp_path / "hyp"), "--out_dir",
                             str(tmp_path), "--command_list", str(tmp_path / "missing.txt")]) == 1
