"""bench/harness.py, the one harness of the benchmarks: statistics, side-by-side order, a worker
round trip (threads, result, peak RSS), measured commands, the table and the JSON report; and the
layout rule of bench/: every script imports the harness and none imports another script.
No timing is asserted."""

import ast
import json
import os
import sys
import time

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(REPO, "bench")
sys.path.insert(0, BENCH)

import harness  # noqa: E402

# bench/ modules that scripts import: the harness and the builders shared by several benchmarks
LIBRARIES = {"harness", "paraformer_pair", "trainer_pair"}
MB = 2 ** 20


# ---------------------------------------------------------------- functions the workers call
def square_in_worker(n, hold_mb, phase_mb):
    """Touches ``hold_mb`` MB and frees it, then ``phase_mb`` MB inside a PeakRss phase."""
    import torch

    big = np.ones(hold_mb * MB, dtype=np.uint8)
    del big
    with harness.PeakRss() as phase:
        small = np.ones(phase_mb * MB, dtype=np.uint8)
        del small
    return {"square": n * n, "omp": os.environ.get("OMP_NUM_THREADS"), "torch_threads": torch.get_num_threads(),
            "phase_mb": phase.mb, "pid": os.getpid(), "progress_off": os.environ.get("FUNASR_LITE_NO_PROGRESS")}


def failing_worker(message):
    print("some output before the failure")
    raise ValueError(message)


def sleeping_worker(seconds):
    time.sleep(seconds)
    return {}


# ---------------------------------------------------------------- statistics and order
def test_stats_and_medians():
    assert harness.stats([3.0, 1.0, 10.0, 2.0]) == {"median": 2.5, "min": 1.0, "max": 10.0, "n": 4}
    runs = [{"fps": 100.0, "s": 3.0}, {"fps": 120.0, "s": 1.0}, {"fps": 90.0, "s": 2.0}]
    summary = harness.medians(runs, ("fps", "s"))
    assert summary["fps"] == 100.0 and summary["s"] == 2.0
    assert summary["spread"]["fps"] == {"median": 100.0, "min": 90.0, "max": 120.0, "n": 3}
    ratios = harness.paired_ratios([{"fps": 10.0}, {"fps": 30.0}, {"fps": 12.0}],
                                   [{"fps": 5.0}, {"fps": 10.0}, {"fps": 12.0}], "fps")
    assert ratios == {"median_per_repeat": 2.0, "per_repeat": [2.0, 3.0, 1.0]}


def test_side_by_side_rotates_who_goes_first():
    calls = []
    runs = harness.side_by_side(("ours", "funasr"), 3, lambda impl, repeat: calls.append((impl, repeat)) or repeat)
    assert calls == [("ours", 0), ("funasr", 0), ("funasr", 1), ("ours", 1), ("ours", 2), ("funasr", 2)]
    assert runs == {"ours": [0, 1, 2], "funasr": [0, 1, 2]}
    assert harness.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]


def test_time_repeats_returns_each_call_and_the_last_value():
    values = iter(range(10))
    seconds, last = harness.time_repeats(lambda: next(values), 3)
    assert len(seconds) == 3 and all(s >= 0 for s in seconds) and last == 2


# ---------------------------------------------------------------- processes
def test_worker_round_trip_threads_result_and_peak_rss():
    result = harness.run_in_worker(square_in_worker, 2, n=7, hold_mb=300, phase_mb=40)
    assert result["square"] == 49 and result["pid"] != os.getpid()
    assert result["omp"] == "2" and result["torch_threads"] == 2 and result["progress_off"] == "1"
    # The phase saw the 40 MB block, not the 300 MB freed before it; the worker's peak (VmHWM,
    # across the phase's reset) still holds the 300 MB.
    assert result["peak_rss_mb"] > 300
    if result["phase_mb"] is not None:  # None where /proc/self/clear_refs is not writable
        assert 40 < result["phase_mb"] < result["peak_rss_mb"] - 200


def test_worker_failure_and_timeout_raise_with_the_output(tmp_path):
    with pytest.raises(harness.WorkerError, match="(?s)some output before the failure.*ValueError: no luck"):
        harness.run_in_worker(failing_worker, 1, message="no luck")
    log = tmp_path / "logs" / "worker.log"
    with pytest.raises(harness.WorkerError, match="timed out after 1 s"):
        harness.run_in_worker(sleeping_worker, None, log=str(log), timeout=1, seconds=60)
    assert log.exists()


def test_run_command_measures_wall_time_and_tree_rss(tmp_path):
    log = tmp_path / "cmd.log"
    code = "import numpy, time; a = numpy.ones(200 * 2**20, dtype=numpy.uint8); time.sleep(0.6); print('done')"
    result = harness.run_command([sys.executable, "-c", code], str(log), threads=1)
    assert result["wall_s"] > 0.6 and result["peak_rss_mb"] > 200
    assert log.read_text().strip() == "done" and result["command"].startswith(sys.executable)
    with pytest.raises(harness.WorkerError, match="failed \\(3\\)"):
        harness.run_command([sys.executable, "-c", "raise SystemExit(3)"], str(tmp_path / "fail.log"))


# ---------------------------------------------------------------- output
def test_markdown_table():
    table = harness.markdown_table([("impl", "impl"), ("frames/s", "fps", ".0f"), ("RSS MB", "rss", ".1f")],
                                   [{"impl": "ours", "fps": 1234.4, "rss": 512.04}, {"impl": "funasr", "fps": 99.6}])
    assert table.splitlines() == ["| impl | frames/s | RSS MB |", "|---|---|---|", "| ours | 1234 | 512.0 |",
                                  "| funasr | 100 | - |"]


def test_write_report_carries_the_environment(tmp_path, capsys):
    out = tmp_path / "sub" / "report.json"
    harness.write_report(str(out), {"benchmark": "x", "environment": harness.environment(3), "rows": [{"a": 1}]})
    report = json.loads(out.read_text())
    env = report["environment"]
    assert report["rows"] == [{"a": 1}] and env["threads"] == 3
    assert env["cpu_model"] and env["cpu_count"] >= 1 and env["usable_cores"] >= 1
    import torch

    assert env["torch"] == torch.__version__ and "onnxruntime" in env
    assert env["git_commit"] is None or len(env["git_commit"]) == 40
    assert f"wrote {out}" in capsys.readouterr().out
    with pytest.raises(ValueError, match="environment"):
        harness.write_report(str(out), {"rows": []})


# ---------------------------------------------------------------- layout of bench/
def _imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_script_uses_the_harness_and_none_imports_another_script():
    modules = {name[:-3] for name in os.listdir(BENCH) if name.endswith(".py")}
    scripts = modules - LIBRARIES
    assert LIBRARIES <= modules and {"benchmark_train", "learning_curve", "profile_onnx_sessions"} <= scripts
    for module in sorted(modules):
        imports = _imported_modules(os.path.join(BENCH, module + ".py"))
        assert not imports & scripts, f"bench/{module}.py imports the benchmark script(s) {imports & scripts}"
        if module in scripts:
            assert "harness" in imports, f"bench/{module}.py does not use bench/harness.py"
        if module != "harness":  # worker processes and measured commands are the harness's job
            assert "subprocess" not in imports, f"bench/{module}.py starts processes itself"
