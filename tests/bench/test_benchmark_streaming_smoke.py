"""Smoke test of bench/benchmark_streaming.py on a random-weight streaming dir (funasr's class):
it runs end to end in its smallest setting and writes every figure. No timing is asserted."""

import json
import os
import subprocess
import sys

import numpy as np

from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from funasr_dirs import build_funasr_model, save_funasr_dir  # noqa: E402
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus  # noqa: E402
from test_streaming_parity import streaming_config  # noqa: E402


def test_streaming_benchmark_writes_every_figure(tmp_path):
    data_dir, waves = write_corpus(str(tmp_path / "corpus"), {"u1": 2.6, "u2": 1.2, "u3": 3.4}, with_feats=False)
    with open(os.path.join(data_dir, "text"), "w") as f, open(os.path.join(data_dir, "char_timestamps"), "w") as g:
        for key in sorted(waves):
            f.write(f"{key} 我们大地\n")
            g.write(f"{key} 我 100 300 们 300 500 大 500 700 地 700 900\n")
    config = streaming_config(5)
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    model_dir = save_funasr_dir(str(tmp_path / "model"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(mvn, waves.values()))
    out = tmp_path / "streaming.json"
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", "benchmark_streaming.py"), "--model_dir",
                           model_dir, "--offline_dir", model_dir, "--data_dir", data_dir, "--chunks", "0,10,5",
                           "0,8,4", "--streams", "1", "2", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    quality = report["quality"]
    assert quality["utterances"] == 3 and set(quality["chunks"]) == {"0,10,5", "0,8,4"}
    for entry in quality["chunks"].values():
        assert entry["rtf"] > 0 and np.isfinite(entry["cer"]) and entry["final_after_audio_ms"]["median"] > 0
    assert [c["streams"] for c in report["concurrency"]] == [1, 2]
    assert all(0.0 <= c["late_share"] <= 1.0 for c in report["concurrency"])
    assert "first partial ms" in done.stdout
