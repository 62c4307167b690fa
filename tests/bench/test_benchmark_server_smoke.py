"""Smoke test of bench/benchmark_server.py in its smallest form: our server and FunASR's own
OpenAI-compatible app on one random-weight FunASR dir (funasr's Paraformer class), a streaming dir
(funasr's class) for the WebSocket streams, a short RSS run. Every figure is written; the two
servers give the same text (same weights); no timing is asserted."""

import json
import os
import subprocess
import sys

from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
sys.path.insert(0, os.path.join(REPO, "tests"))

from test_funasr_model_dir import funasr_style_config  # noqa: E402
from funasr_dirs import build_funasr_model, save_funasr_dir  # noqa: E402
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus  # noqa: E402
from test_streaming_parity import streaming_config  # noqa: E402


def test_server_benchmark_writes_every_figure(tmp_path):
    from funasr.models.paraformer.model import Paraformer as FunasrParaformer

    data_dir, waves = write_corpus(str(tmp_path / "corpus"), {"u1": 3.0, "u2": 2.5, "u3": 3.5, "u4": 2.0},
                                   with_feats=False)
    write_cmvn = lambda mvn: write_cmvn_from_waves(mvn, waves.values())  # noqa: E731
    config = funasr_style_config()
    model_dir = save_funasr_dir(str(tmp_path / "model"), config, build_funasr_model(FunasrParaformer, config, len(TOKENS)),
                                TOKENS, write_cmvn)
    online = streaming_config(5)
    online_dir = save_funasr_dir(str(tmp_path / "online"), online,
                                 build_funasr_model(FunasrParaformerStreaming, online, len(TOKENS)), TOKENS, write_cmvn)
    out = tmp_path / "server.json"
    done = subprocess.run([sys.executable, os.path.join(REPO, "bench", "benchmark_server.py"), "--model_dir", model_dir,
                           "--online_model_dir", online_dir, "--data_dir", data_dir, "--clip_s", "2", "--clips", "4",
                           "--concurrency", "1", "2", "--requests", "4", "--streams", "1", "2", "--rss_requests", "6",
                           "--funasr", "--out", str(out)], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert [(row["server"], row["concurrency"], row["requests"], row["errors"]) for row in report["http"]] == [
        ("ours", 1, 4, 0), ("ours", 2, 4, 0), ("funasr", 1, 4, 0), ("funasr", 2, 4, 0)]
    assert all(row["requests_per_s"] > 0 and row["server_rss_mb"] > 0 for row in report["http"])
    assert [(row["streams"], row["errors"]) for row in report["streams"]] == [(1, 0), (2, 0)]
    assert report["rss"]["rows"][-1]["requests"] == 6
    assert report["same_text_as_funasr"] == "4/4"
    assert "req/s" in done.stdout and "same text as FunASR's app: 4/4" in done.stdout
