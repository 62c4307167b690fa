"""Smoke test of bench/benchmark_finetune.py in its smallest form: a model dir built by the funasr
package (random weights), a seed-style example_data of 8 + 3 utterances, one epoch of ours and
one of FunASR's own train_ds (jsonl lists from its scp2jsonl), each in its own process. No timing
is asserted: both runs must finish, report their measurements, produce a decodable model dir, and
the FunASR run must have trained (its averaged weights differ from the base weights)."""

import json
import os
import subprocess
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "finetune"))

from finetune_data import make_example_data, write_funasr_model_dir  # noqa: E402


def test_benchmark_finetune_runs_both_trainers(tmp_path):
    data_dir, waves, _ = make_example_data(str(tmp_path), num_train=8, num_valid=3)
    model_dir = write_funasr_model_dir(str(tmp_path / "released"), waves.values())
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "benchmark_finetune.py"), "--model_dir", model_dir,
         "--data_dir", data_dir, "--eval_sets", f"validation={os.path.join(data_dir, 'validation')}",
         "--max_epoch", "1", "--num_avg", "1", "--lr", "1e-3", "--batch_bins", "1200", "--threads", "1",
         "--work_dir", str(tmp_path / "work"), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    report = json.loads(out.read_text())
    assert report["train_utts"] == 8 and report["train_fbank_frames"] > 0
    assert set(report["runs"]) == {"ours", "funasr"}
    assert report["before"]["validation"]["num_utts"] == 3
    for impl, run in report["runs"].items():
        assert run["wall_s"] > 0 and run["peak_rss_mb"] > 50 and run["train_frames_per_s"] > 0, impl
        assert 0 <= run["after"]["validation"]["cer"] and run["after"]["validation"]["num_utts"] == 3, impl
        assert os.path.isfile(os.path.join(run["model_dir"], "model.pt")), impl
    assert "--train_ds" in report["runs"]["funasr"]["command"]
    assert len(report["runs"]["funasr"]["scp2jsonl"]) == 2
    base = torch.load(os.path.join(model_dir, "model.pt"), map_location="cpu", weights_only=True)
    tuned = torch.load(os.path.join(report["runs"]["funasr"]["model_dir"], "model.pt"), map_location="cpu",
                       weights_only=True)
    base = base.get("state_dict", base)
    assert set(base) == set(tuned)
    assert any(not torch.equal(base[k], tuned[k]) for k in base if base[k].is_floating_point())
    assert "| ours |" in done.stdout and "| funasr |" in done.stdout
