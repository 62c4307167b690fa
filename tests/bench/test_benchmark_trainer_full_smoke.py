"""Smoke test of bench/benchmark_trainer_full.py: both whole trainers (ours and FunASR's train_ds)
train one epoch of a tiny Paraformer on six generated utterances (wavs for FunASR's on-the-fly
frontend, precomputed fbank for ours) and the JSON report has both, with positive throughput.
No timing is asserted."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

from funasr_lite.frontend.cmvn import write_am_mvn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_benchmarks_smoke as benchmarks_smoke  # noqa: E402  (the shared tiny model config)
from tone_data import write_tone_data_dir  # noqa: E402

REPO = benchmarks_smoke.REPO
TOKENS = benchmarks_smoke.TOKENS
LFR_M, LFR_N = 7, 6
BATCH_BINS = 70  # LFR frames: two or three of the 17..34-frame utterances per batch


def tiny_config():
    """test_benchmarks_smoke's tiny SAN-M Paraformer (LFR 7/6), made a whole training config."""
    config = benchmarks_smoke.tiny_config()
    config["decoder_conf"].update(num_blocks=1, att_layer_num=1)
    config.update({
        "frontend": "wav_frontend",
        "scheduler": "warmuplr", "scheduler_conf": {"warmup_steps": 10},
        "dataset_conf": {"batch_bins": BATCH_BINS, "bucket_size": 512, "shuffle": True, "max_frames": 500,
                         "num_workers": 1},
        "train_conf": {"max_epoch": 5, "grad_clip": 5.0, "log_interval": 1, "keep_nbest_models": 1,
                       "avg_nbest_model": 1, "best_metric": "loss"},
        "seed": 1,
    })
    return config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """data/train (wav.scp, feats.scp, text, utt2num_frames, am.mvn), data/lang_char/tokens.txt, tiny.yaml."""
    root = tmp_path_factory.mktemp("trainer_full")
    rng = np.random.default_rng(0)
    data_dir = root / "data" / "train"
    wav_dir = root / "wav"

    def text_with_space(r):  # a space inside the transcript: both sides must see the same characters without it
        chars = r.choice(TOKENS[3:-1], 5)
        return "".join(chars[:2]) + " " + "".join(chars[2:])

    feats, _ = write_tone_data_dir(data_dir, wav_dir, [1.0, 1.3, 1.6, 2.0, 1.1, 1.8], rng, "utt", text_with_space,
                                   base_hz=200.0, step_hz=40.0)
    stacked = np.concatenate(list(feats.values()))
    mean, std = stacked.mean(0), stacked.std(0) + 1e-5
    write_am_mvn(str(data_dir / "am.mvn"), np.tile(-mean, LFR_M), np.tile(1.0 / std, LFR_M))
    lang_dir = root / "data" / "lang_char"
    lang_dir.mkdir()
    (lang_dir / "tokens.txt").write_text("\n".join(TOKENS) + "\n", encoding="utf-8")
    config_path = root / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(tiny_config(), allow_unicode=True), encoding="utf-8")
    lfr_frames = sum((len(v) + LFR_N - 1) // LFR_N for v in feats.values())
    return {"root": root, "data_dir": str(data_dir), "config": str(config_path), "lfr_frames": lfr_frames}


def test_benchmark_trainer_full_smoke(corpus):
    out = corpus["root"] / "trainer_full.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "benchmark_trainer_full.py"), "--config", corpus["config"],
         "--data_dir", corpus["data_dir"], "--num_utts", "6", "--repeats", "1", "--threads", "1",
         "--out", "trainer_full.json", "--work_dir", "work"],  # relative paths, as a user types them
        cwd=corpus["root"], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "ours / funasr epoch throughput" in proc.stdout
    report = json.loads(out.read_text())
    assert report["environment"]["threads"] == 1 and report["environment"]["funasr"]
    assert report["data"]["utterances"] == 6 and report["data"]["lfr_frames"] == corpus["lfr_frames"]
    # The batching knobs carry our meaning over to FunASR's sampler (LFR frames per padded batch).
    dataset_conf = report["funasr_config"]["dataset_conf"]
    assert dataset_conf["batch_size"] == BATCH_BINS and dataset_conf["max_token_length"] == 500
    assert dataset_conf["num_workers"] == 1 and report["funasr_config"]["frontend"] == "WavFrontend"
    assert "funasr_lite.bin.train" in report["commands"]["ours"]
    assert "funasr.bin.train_ds" in report["commands"]["funasr"]
    assert "run1_ours" in report["commands"]["ours"] and "run1_funasr" in report["commands"]["funasr"]
    for impl in ("ours", "funasr"):
        row = report["results"][impl]
        assert len(row["runs"]) == 1 and row["runs"][0]["torch_threads"] == 1
        # Every utterance trained once, with the same unpadded LFR frame count on both sides
        # (FunASR computes its features from the wavs, ours were precomputed).
        assert row["utterances"] == 6 and row["frames"] == corpus["lfr_frames"]
        assert row["batches"] >= 2 and row["padded_frames"] >= row["frames"]
        assert row["frames_per_s"] > 0 and row["x_real_time"] == pytest.approx(row["frames_per_s"] * 0.06)
        assert 0 < row["epoch_s"] < row["total_s"] and row["startup_s"] > 0
        assert row["peak_rss_mb"] > 0 and np.isfinite(row["runs"][0]["mean_loss"])
    assert report["throughput_ratio_ours_over_funasr"]["median_per_repeat"] > 0
