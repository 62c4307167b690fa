"""Smoke test of bench/benchmark_longform.py in its quickest form: a 30 s recording from four
spoken utterances, a tiny random-weight model dir, ours and funasr's AutoModel each in its own
process. No timing is asserted; both must decode the same weights to rows with the documented fields,
and, on the same segments and weights, to the same CER."""

import json
import os
import subprocess
import sys

import soundfile

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "inference"))
sys.path.insert(0, os.path.join(REPO, "tests", "models"))

from test_infer import synth_wave, write_model_dir  # noqa: E402
from vad_recordings import UTTERANCES, espeak  # noqa: E402


def test_benchmark_longform_writes_rows_for_both(tmp_path):
    data = tmp_path / "test"
    data.mkdir()
    with open(data / "wav.scp", "w") as scp, open(data / "text", "w", encoding="utf-8") as text:
        for i, utterance in enumerate(UTTERANCES[:4]):
            path = data / f"u{i}.wav"
            soundfile.write(path, espeak(*utterance), 16000, subtype="PCM_16")
            scp.write(f"u{i} {path}\n")
            text.write(f"u{i} 的一是了我不人在\n")
    model_dir = write_model_dir(str(tmp_path / "model"), [synth_wave(2.0, seed=s) for s in range(3)])
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, os.path.join(REPO, "bench", "benchmark_longform.py"), "--model_dir", model_dir,
         "--data_dir", str(data), "--minutes", "0.5", "--threads", "1", "--work_dir", str(tmp_path / "work"),
         "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["minutes"], r["impl"]) for r in rows] == [(0.5, "ours"), (0.5, "funasr")]
    for row in rows:
        assert "error" not in row, row
        assert row["rtf"] > 0 and row["peak_rss_mb"] > 100 and row["ref_chars"] > 0
    assert rows[0]["cer_percent"] == rows[1]["cer_percent"]
    assert "peak RSS MB" in done.stdout
