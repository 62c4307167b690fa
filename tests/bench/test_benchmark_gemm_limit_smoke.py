"""Smoke test of bench/benchmark_gemm_limit.py in its smallest form: every figure is written, the
limit is the best measured shape, and the FLOP counts are the model's (checked for the encoder's
feed-forward part by hand). No timing is asserted."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gemm_limit_benchmark_writes_every_figure(tmp_path):
    out = tmp_path / "gemm.json"
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", "benchmark_gemm_limit.py"), "--sizes", "64",
                           "--layer_shapes", "30x32x64", "--repeats", "2", "--threads", "1", "--configs", "demo",
                           "--audio_s", "3", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(r["kind"], r["shape"]) for r in report["gemm"]] == [
        ("fp32 torch", "64x64x64"), ("int8 onnxruntime", "64x64x64"), ("fp32 torch", "30x32x64"),
        ("int8 onnxruntime", "30x32x64")]
    assert report["limit"]["fp32 torch, 1 thread(s)"] == max(r["gflops"] for r in report["gemm"] if r["kind"] == "fp32 torch")
    (model,) = report["models"]
    assert model["lfr_frames"] == 50 and model["tokens"] == 12  # 3 s of 60 ms LFR frames, 4 tokens a second
    # demo encoder: 6 blocks x 50 frames x (FFN 2*192*768*2 + attention projections q,k,v,out 4*2*192*192) at least
    lower_bound = 6 * 50 * (2 * 2 * 192 * 768 + 4 * 2 * 192 * 192) / 3 / 1e9
    assert model["gflop_per_audio_s"]["encoder"] >= lower_bound
    assert model["gflop_per_audio_s"]["encoder"] < 3 * lower_bound
    total = sum(model["gflop_per_audio_s"][k] for k in ("encoder", "predictor", "decoder"))
    assert abs(model["gflop_per_audio_s"]["total"] - total) < 1e-9
    assert model["rtf_at_fp32_limit_1t"] == model["gflop_per_audio_s"]["total"] / report["limit"]["fp32 torch, 1 thread(s)"]
