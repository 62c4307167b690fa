"""funasr_lite.bin.train_punc end to end on a small tagged text: held-out transcripts, a FunASR
punctuation model dir that ours and funasr's AutoModel read alike, learning, resuming; and
egs/aishell1/local/score_punc.py on its held-out test text."""

import json
import os
import random
import subprocess
import sys

import pytest

from funasr_lite.bin import train_punc
from funasr_lite.models.punc import Punctuator

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "egs", "aishell1", "conf", "punc.yaml")
SMALL = ["++encoder_conf.input_size=32", "++encoder_conf.output_size=32", "++model_conf.embed_unit=32",
         "++model_conf.att_unit=32", "++encoder_conf.linear_units=64", "++encoder_conf.num_blocks=2",
         "++optim_conf.lr=0.01", "++scheduler_conf.warmup_steps=10", "++train_conf.batch_tokens=600",
         "++token_min_count=1"]
WORDS = ["我们", "今天", "工作", "人民", "发展", "经济", "建设", "国家", "社会", "文化"]


def tagged_paragraph(rng):
    """Clauses of 2-4 words; a clause ends with 吗？, 了。 or ，; lists use 、. A learnable rule."""
    tokens = []
    for _ in range(rng.randint(2, 5)):
        tokens += [f"{rng.choice(WORDS)}/n" for _ in range(rng.randint(2, 4))]
        end = rng.random()
        if end < 0.3:
            tokens += ["吗/y", "？/w"]
        elif end < 0.6:
            tokens += ["了/y", "。/w"]
        elif end < 0.8:
            tokens += ["和/c", f"{rng.choice(WORDS)}/n", "，/w"]
        else:
            tokens += ["甲/n", "、/w", "乙/n", "，/w"]
    return "  ".join(tokens)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("punc")
    rng = random.Random(0)
    paragraphs = [tagged_paragraph(rng) for _ in range(400)]
    paragraphs[5] = "北京/ns  上海/ns  广州/ns  。/w"
    (work / "pd.txt").write_text("\n".join(paragraphs) + "\n", encoding="utf-8")
    (work / "test_text").write_text("UTT1 北京 上海\n", encoding="utf-8")
    out = work / "exp"
    argv = ["--text", str(work / "pd.txt"), "--exclude_text", str(work / "test_text"), "--output_dir", str(out),
            "--config", CONFIG, "--device", "cpu", *SMALL]
    assert train_punc.main(argv + ["++train_conf.max_epoch=2"]) == 0
    return work, out, argv


def test_outputs_and_held_out_text(trained):
    _, out, _ = trained
    for name in ("config.yaml", "tokens.json", "model.pt", "epochs.jsonl", "train.log", "epoch_2.pt",
                 "data/train.txt", "data/valid.txt", "data/test.txt", "data/stats.json"):
        assert (out / name).is_file(), name
    stats = json.loads((out / "data" / "stats.json").read_text(encoding="utf-8"))
    assert stats["paragraphs_left_out_for_excluded_sentences"] == 1
    assert stats["lines"] == {"train": 383, "valid": 8, "test": 8}
    tokens = json.loads((out / "tokens.json").read_text(encoding="utf-8"))
    assert tokens[:3] == ["<blank>", "<s>", "</s>"] and tokens[-1] == "<unk>"
    assert "北" not in tokens  # the excluded paragraph was never trained on


def test_model_learns_the_rule(trained):
    _, out, _ = trained
    records = [json.loads(line) for line in (out / "epochs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert records[-1]["valid"]["f1_？"] > 0.9 and records[-1]["valid"]["f1_。"] > 0.9
    punctuator = Punctuator.from_model_dir(out)
    assert punctuator("我们今天工作吗人民发展了国家社会") == "我们今天工作吗？人民发展了。国家社会。"
    assert punctuator.punctuate_tokens(list("人民发展吗经济建设了")) == ["", "", "", "", "？", "", "", "", "", "。"]


def test_funasr_automodel_reads_the_dir_the_same(trained):
    from funasr import AutoModel

    _, out, _ = trained
    text = "".join(random.Random(3).choice(["我们", "今天", "吗", "了", "和", "甲", "乙", "人民"]) for _ in range(150))
    auto = AutoModel(model=str(out), device="cpu", disable_update=True, disable_pbar=True, log_level="ERROR")
    assert Punctuator.from_model_dir(out)(text) == auto.generate(input=text)[0]["text"]


def test_rerun_resumes_and_score_tool(trained, capsys):
    _, out, argv = trained
    assert train_punc.main(argv + ["++train_conf.max_epoch=3"]) == 0
    records = [json.loads(line) for line in (out / "epochs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert "resumed from" in (out / "train.log").read_text(encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:  # another model config cannot resume it: named, no traceback
        train_punc.main(argv + ["++train_conf.max_epoch=4", "++encoder_conf.linear_units=48"])
    assert exit_info.value.code == 1
    assert "checkpoint_latest.pt was trained with a different encoder_conf" in capsys.readouterr().err
    result = subprocess.run([sys.executable, os.path.join(REPO, "egs", "aishell1", "local", "score_punc.py"), "--model_dir", str(out),
                             "--text", str(out / "data" / "test.txt"), "--out", str(out / "score.json")],
                            capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, result.stderr
    scores = json.loads((out / "score.json").read_text(encoding="utf-8"))["scores"]
    assert set(scores) == {"，", "。", "？", "、", "overall", "any_mark"}
    assert scores["？"]["f1"] > 0.9 and "overall" in result.stdout


def test_a_broken_training_text_is_named(tmp_path, capsys):
    data = tmp_path / "exp" / "data"
    data.mkdir(parents=True)
    (data / "stats.json").write_text("{}", encoding="utf-8")  # text step done; its train.txt is broken
    (data / "train.txt").write_text("好的。\n，坏\n", encoding="utf-8")
    (data / "valid.txt").write_text("好的。\n", encoding="utf-8")
    (tmp_path / "pd.txt").write_text("好/a\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        train_punc.main(["--text", str(tmp_path / "pd.txt"), "--output_dir", str(tmp_path / "exp"), "--config", CONFIG])
    assert exit_info.value.code == 1
    assert f"{data / 'train.txt'}:2: punctuation '，' before any character" in capsys.readouterr().err
