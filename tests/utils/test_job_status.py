"""The job runners' terminal status line: counting finished jobs and showing a running job's
newest [progress] line (local jobs are tested on a pty in test_run_local.py)."""
import os
import time

from funasr_lite.jobs.slurm import _slurm_status_line, status_file
from funasr_lite.jobs.options import parse_runner_argv


def test_slurm_status_line_counts_status_files_and_shows_a_fresh_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _, jobs = parse_runner_argv(["JOB=1:3", "log/decode.JOB.log", "true"])
    os.makedirs("log/q")
    with open(jobs.log_path(3), "w") as f:  # an earlier run's log: not a running job
        f.write("[progress] stale\n")
    old = time.time() - 3600
    os.utime(jobs.log_path(3), (old, old))
    status = _slurm_status_line(jobs, enabled=False)
    assert status.text().startswith("decode: 0/3 done, elapsed 0:00, ETA ?")
    assert "stale" not in status.text()
    with open(status_file(jobs, 1), "w") as f:
        f.write("0\n")
    with open(jobs.log_path(1), "w") as f:
        f.write("[progress] finished job\n")
    with open(jobs.log_path(2), "w") as f:
        f.write("# started\n[progress] 40/100 utterances\n")
    text = status.text()
    assert text.startswith("decode: 1/3 done") and text.endswith("| job 2: 40/100 utterances")
