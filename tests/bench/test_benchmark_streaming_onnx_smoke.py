"""Smoke test of bench/benchmark_streaming_onnx.py on a random-weight streaming dir (funasr's class)
exported by us: every decoder runs on every utterance, the agreement counts are consistent (each of
our streams agrees with itself everywhere). No timing is asserted."""

import json
import os
import subprocess
import sys

from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from funasr_dirs import build_funasr_model, save_funasr_dir  # noqa: E402
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus  # noqa: E402
from test_streaming_parity import streaming_config  # noqa: E402

from funasr_lite.export.onnx_export import export_onnx  # noqa: E402


def test_streaming_onnx_benchmark_writes_every_figure(tmp_path):
    data_dir, waves = write_corpus(str(tmp_path / "corpus"), {"u1": 2.6, "u2": 1.2, "u3": 3.4}, with_feats=False)
    with open(os.path.join(data_dir, "text"), "w") as f:
        f.writelines(f"{key} 我们大地\n" for key in sorted(waves))
    config = streaming_config(5)
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    model_dir = save_funasr_dir(str(tmp_path / "model"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(mvn, waves.values()))
    export_onnx(model_dir, model_dir)
    out = tmp_path / "onnx.json"
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", "benchmark_streaming_onnx.py"), "--model_dir",
                           model_dir, "--data_dir", data_dir, "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["utterances"] == 3
    rows = {row["decoder"]: row for row in report["rows"]}
    assert list(rows) == ["ours (4,1)", "ours (0,0)", "funasr-onnx", "sherpa-onnx", "sherpa-onnx, is_final"]
    assert rows["ours (4,1)"]["same_as_ours_4_1"] == 3 and rows["ours (0,0)"]["same_as_ours_0_0"] == 3
    assert rows["ours (0,0)"]["ends_as_ours_0_0"] == 3
    assert all(row["cer"] >= 0 for row in rows.values())
    assert "sherpa-onnx" in done.stdout
