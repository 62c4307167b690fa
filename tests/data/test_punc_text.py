"""People's Daily paragraphs -> punctuated lines: the mark mapping, held-out transcripts, splits."""

import json

import pytest

from funasr_lite.data.punc_text import (prepare_punc_text, read_punctuated_lines, split_punctuated_line,
                                        tagged_line_to_example, to_punctuated_line)


def test_marks_are_mapped_and_the_strongest_kept():
    line = ("１９９８年/t  ，/w  我们/r  说/v  ：/w  “/w  好/a  ！/w  ”/w  你/r  好/a  吗/y  ？/w  "
            "甲/n  、/w  乙/n  ——/w  丙/n  （/w  ＡＢＣ/nx  ）/w  丁/n  ；/w  戊/n  《/w  书/n  》/w  。/w")
    chars, labels = tagged_line_to_example(line)
    assert chars == "一九九八年我们说好你好吗甲乙丙丁戊书"  # numbers spelt out, Latin letters dropped
    assert to_punctuated_line(chars, labels) == "一九九八年，我们说，好。你好吗？甲、乙，丙丁，戊书。"


def test_a_mark_before_any_character_is_dropped_and_two_marks_keep_the_stronger():
    chars, labels = tagged_line_to_example("“/w  好/a  。/w  ”/w  ，/w")
    assert (chars, labels) == ("好", ["。"])
    assert split_punctuated_line("好，。坏 、") == (["好", "坏"], ["。", "、"])
    with pytest.raises(ValueError, match="f.txt:3: punctuation"):
        split_punctuated_line("，好", "f.txt:3")


def test_prepare_holds_out_excluded_transcripts_and_splits(tmp_path):
    paragraphs = [f"第/m  {i}/m  段/q  ，/w  今天/t  天气/n  很/d  好/a  。/w" for i in range(120)]
    paragraphs[7] = "我们/r  去/v  北京/ns  开会/v  ，/w  大家/r  都/d  来/v  。/w"
    paragraphs[9] = "Ａ/nx"  # no Chinese character: too short
    source = tmp_path / "pd.txt"
    source.write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
    (tmp_path / "test_text").write_text("UTT1 去 北京 开会\n", encoding="utf-8")
    stats = prepare_punc_text(str(source), str(tmp_path / "out"), [str(tmp_path / "test_text")])
    assert stats["paragraphs"] == 119 and stats["paragraphs_left_out_for_excluded_sentences"] == 1
    assert stats["lines"] == {"train": 112, "valid": 3, "test": 3}
    everything = "".join((tmp_path / "out" / f"{s}.txt").read_text(encoding="utf-8") for s in ("train", "valid", "test"))
    assert "北京" not in everything
    assert (tmp_path / "out" / "test.txt").read_text(encoding="utf-8").splitlines()[0] == "第零段，今天天气很好。"
    assert json.loads((tmp_path / "out" / "stats.json").read_text(encoding="utf-8"))["lines"]["train"] == 112
    tokens, labels = read_punctuated_lines(tmp_path / "out" / "test.txt")[0]
    assert "".join(tokens) == "第零段今天天气很好" and labels[2] == "，" and labels[-1] == "。"
