"""Smoke test of bench/learning_curve.py on a tiny corpus: our trainer (two seeds, 2 epochs) and
FunASR's train_ds (1 epoch, then resumed for a 2nd, via the tool) on the same tiny data, every epoch checkpoint of both
decoded greedily by our infer and scored; the JSON, the markdown table and the PNG are checked,
and a rerun only collects (no training, no decoding). No timing is
asserted."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from funasr_lite.frontend.cmvn import write_am_mvn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_benchmark_trainer_full_smoke as trainer_full_smoke  # noqa: E402  (the tiny training config)
from tone_data import write_tone_data_dir  # noqa: E402

REPO = trainer_full_smoke.REPO
TOKENS = trainer_full_smoke.TOKENS
LFR_M, LFR_N = 7, 6
EPOCHS = 2


def write_data_dir(data_dir, wav_dir, durations, rng, prefix):
    """Tone utterances with 4-character transcripts (tone_data.write_tone_data_dir)."""
    return write_tone_data_dir(data_dir, wav_dir, durations, rng, prefix,
                               lambda r: "".join(r.choice(TOKENS[3:-1], 4)), base_hz=180.0, step_hz=35.0)


def edit_distance(a, b):
    """Plain Levenshtein distance (independent of funasr_lite.scoring.cer)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def run(args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc.stdout


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("learning_curve")
    rng = np.random.default_rng(0)
    data = root / "data"
    train_feats, _ = write_data_dir(data / "train", root / "wav", [1.0, 1.3, 1.6, 2.0, 1.1, 1.8], rng, "tr")
    dev_feats, dev_texts = write_data_dir(data / "dev", root / "wav", [1.2, 1.5, 0.9], rng, "dv")
    stacked = np.concatenate(list(train_feats.values()))
    mean, std = stacked.mean(0), stacked.std(0) + 1e-5
    write_am_mvn(str(data / "train" / "am.mvn"), np.tile(-mean, LFR_M), np.tile(1.0 / std, LFR_M))
    (data / "lang_char").mkdir()
    (data / "lang_char" / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    config = trainer_full_smoke.tiny_config()
    # The whole dev set (3 short utterances) is one validation batch on both sides; 2 best epochs averaged.
    config["dataset_conf"]["batch_bins"] = 200
    config["train_conf"].update(max_epoch=EPOCHS, keep_nbest_models=0, avg_nbest_model=2, best_metric="cer")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")

    exps, procs = [], []
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    for seed in (1, 2):  # ours, two seeds (at once), as egs/aishell1/run.sh stage 4 runs it
        exp = root / "exp" / f"tiny_seed{seed}"
        exp.mkdir(parents=True)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "funasr_lite.bin.train", "--config", str(config_path), "--train_data",
             str(data / "train"), "--valid_data", str(data / "dev"), "--token_list",
             str(data / "lang_char" / "tokens.txt"), "--cmvn_file", str(data / "train" / "am.mvn"), "--output_dir",
             str(exp), f"++seed={seed}", "++train_conf.oom_check=false"],
            cwd=root, env=env, stdout=open(exp / "stdout.txt", "w"), stderr=subprocess.STDOUT))
        exps.append(exp)
    for exp, proc in zip(exps, procs):
        assert proc.wait(timeout=1200) == 0, (exp / "stdout.txt").read_text()[-4000:]
    # One exp without epochs.jsonl: its records come from train.log (as an older exp dir's would).
    os.unlink(exps[1] / "epochs.jsonl")
    args = [os.path.join(REPO, "bench", "learning_curve.py"), "--config", str(config_path), "--data_root", "data",
            "--ours", *(str(e.relative_to(root)) for e in exps), "--work_dir", "lc", "--epochs", str(EPOCHS),
            "--threads", "1", "--test_set", "dev", "--out", "lc.json", "--png", "lc.png"]
    # First one epoch, then all: FunASR's second run resumes from its epoch-1 checkpoint.
    epochs_at = args.index("--epochs") + 1
    run([*args[:epochs_at], "1", *args[epochs_at + 1:]], cwd=root)
    stdout = run(args, cwd=root)
    report = json.loads((root / "lc.json").read_text())
    return {"root": root, "args": args, "stdout": stdout, "report": report, "exps": exps, "dev_texts": dev_texts,
            "dev_feats": dev_feats}


def test_every_run_has_every_epoch_decoded_and_scored(setup):
    report, root = setup["report"], setup["root"]
    runs = {r["name"]: r for r in report["runs"]}
    assert list(runs) == ["tiny_seed1", "tiny_seed2", "funasr_train_ds"]
    assert report["environment"]["funasr"] and report["epochs"] == EPOCHS
    assert report["data"]["train_utterances"] == 6 and report["data"]["dev_utterances"] == 3
    assert not any("sortagrad" in note for note in report["differences"])  # the tiny config has none
    for name, run_ in runs.items():
        assert [r["epoch"] for r in run_["epochs"]] == [1, 2], name
        for row in run_["epochs"]:
            assert row["cer_source"] == "infer" and os.path.isfile(row["checkpoint"])
            decode_dir = row["decode"]["output_dir"]
            hyps = {}
            for line in open(os.path.join(decode_dir, "1best_recog", "text"), encoding="utf-8"):
                key, _, text = line.rstrip("\n").partition(" ")
                hyps[key] = text.replace(" ", "")
            # The CER recomputed here from the decode's own output with an independent edit distance.
            assert set(hyps) == set(setup["dev_texts"])
            errors = sum(edit_distance(setup["dev_texts"][k], hyps[k]) for k in hyps)
            chars = sum(len(t) for t in setup["dev_texts"].values())
            assert row["dev_cer"] == pytest.approx(100.0 * errors / chars), (name, row["epoch"])
            assert np.isfinite(row["dev_loss"]) and 0 <= row["dev_acc"] <= 1
            if name != "tiny_seed2":  # train.log has no training averages
                assert np.isfinite(row["train_loss"])
            assert row["epoch_s"] > 0 and row["frames_per_s"] > 0
        assert run_["test"]["cer"] >= 0 and run_["test"]["utterances"] == 3
    assert runs["tiny_seed1"]["seed"] == 1 and runs["tiny_seed2"]["seed"] == 2
    assert runs["tiny_seed2"]["records_from"].endswith("train.log")
    # Our in-training greedy CER is the infer CER of the same checkpoint (same features, decoder, scoring).
    for name in ("tiny_seed1", "tiny_seed2"):
        for row in runs[name]["epochs"]:
            # (train.log rounds to 4 significant digits)
            assert row["dev_cer_in_training"] == pytest.approx(row["dev_cer"], rel=1e-3), (name, row["epoch"])
    # Our two seeds trained differently (otherwise the "noise" column would measure nothing).
    assert runs["tiny_seed1"]["epochs"][0]["train_loss"] != runs["tiny_seed2"]["epochs"][0]["train_loss"]


def test_funasr_epochs(setup):
    report = setup["report"]
    funasr = report["runs"][-1]
    lfr_frames = sum((len(v) + LFR_N - 1) // LFR_N for v in setup["dev_feats"].values())
    assert lfr_frames > 0
    for row in funasr["epochs"]:
        # FunASR trained every train utterance once per epoch, and validated the whole dev set.
        assert row["utterances"] == 6 and row["dev_utterances"] == 3
        assert row["frames"] == report["data"]["train_lfr_frames"]
        # One dev batch: FunASR's own logged mean equals the probe's utterance-weighted mean.
        assert row["dev_loss"] == pytest.approx(row["dev_loss_funasr_log"], rel=1e-5)
        assert row["dev_acc"] == pytest.approx(row["dev_acc_funasr_log"], rel=1e-5)
        # The decoded model dir holds exactly the checkpoint's weights.
        model_dir = os.path.join(setup["root"], "lc", "funasr", "model_dirs", f"epoch{row['epoch']}")
        saved = torch.load(row["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
        extracted = torch.load(os.path.join(model_dir, "model.pt"), map_location="cpu", weights_only=True)
        assert saved.keys() == extracted.keys()
        assert all(torch.equal(saved[k], extracted[k]) for k in saved)
    assert funasr["epochs"][0]["checkpoint"].endswith("model.pt.ep1")
    # Resumed: run1 trained epoch 1 only, run2 loaded its checkpoint and trained epoch 2 only.
    work = setup["root"] / "lc" / "funasr"
    assert sorted(p.name for p in work.glob("run*")) == ["run1", "run2"]
    assert "Checkpoint loaded successfully" in (work / "run2" / "log.txt").read_text()
    log_epochs = [json.loads(line)["epoch"] for line in (work / "epochs.jsonl").read_text().splitlines()]
    assert log_epochs == [1, 2]
    config = report["funasr_config"]["train_conf"]
    assert config["max_epoch"] == EPOCHS and config["keep_nbest_models"] >= EPOCHS
    assert config["validate_interval"] > 10 ** 6 and config["save_checkpoint_interval"] > 10 ** 6


def test_table_picture_and_rerun(setup):
    root, stdout = setup["root"], setup["stdout"]
    lines = [line for line in stdout.splitlines() if line.startswith("| ")]
    assert lines[0] == "| epoch | tiny_seed1 | tiny_seed2 | funasr_train_ds |"
    cer = setup["report"]["runs"][2]["epochs"][1]["dev_cer"]
    assert lines[2].startswith("| 2 | ") and f"{cer:.1f} / " in lines[2].split("|")[4]
    assert any(line.startswith("| test CER, averaged model |") for line in lines)
    assert (root / "lc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    decodes = sorted((root / "lc" / "decode").glob("*/*/result.json"))
    assert len(decodes) == 3 * (EPOCHS + 1)
    stamps = {path: path.stat().st_mtime_ns for path in decodes}
    runs_before = sorted((root / "lc" / "funasr").glob("run*"))
    (root / "lc.json").unlink()
    # A rerun: the finished FunASR run is not started again and nothing is decoded again.
    stdout2 = run(setup["args"], cwd=root)
    assert sorted((root / "lc" / "funasr").glob("run*")) == runs_before
    assert {path: path.stat().st_mtime_ns for path in decodes} == stamps
    report2 = json.loads((root / "lc.json").read_text())
    assert report2["table"] == setup["report"]["table"] and stdout2.count("| ") == stdout.count("| ")


def test_funasr_training_that_fails_is_reported(setup):
    """A FunASR run that times out: the tool still collects and reports, names the failure, exits 1."""
    root = setup["root"]
    args = [os.path.join(REPO, "bench", "learning_curve.py"), "--config", setup["args"][2], "--data_root", "data",
            "--work_dir", "lc_timeout", "--epochs", str(EPOCHS), "--threads", "1", "--test_set", "",
            "--timeout", "1", "--out", "lc_timeout.json"]
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "FunASR training did not finish" in proc.stderr and "timed out" in proc.stderr
    report = json.loads((root / "lc_timeout.json").read_text())
    assert "timed out" in report["funasr_training_error"]
    assert [row["checkpoint"] for row in report["runs"][0]["epochs"]] == [None] * EPOCHS
    assert "| 1 | - / - / - |" in proc.stdout
