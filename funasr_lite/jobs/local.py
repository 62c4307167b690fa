"""The local back-end of the job runner: jobs as child processes, at most ``--max-jobs-run`` at once (interface: :mod:`funasr_lite.jobs.options`).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, Iterable, List, Optional

from funasr_lite.jobs.options import JobArray, RunnerOptions, _job_env, _log_footer, _log_header, job_base_name
from funasr_lite.utils.progress import StatusLine, last_progress_message

logger = logging.getLogger(__name__)


class _ProcessTable:
    """Running child process groups, so an interrupted runner can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: Dict[int, subprocess.Popen] = {}
        self.stopping = False

    def add(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs[proc.pid] = proc
            if self.stopping:
                self._kill(proc)

    def remove(self, proc: subprocess.Popen) -> None:
        with self._lock:
            self._procs.pop(proc.pid, None)

    def stop_all(self) -> None:
        with self._lock:
            self.stopping = True
            for proc in self._procs.values():
                self._kill(proc)

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def run_job_locally(jobs: JobArray, job_id: int, options: RunnerOptions,
                    table: Optional[_ProcessTable] = None, concurrent_jobs: int = 1) -> int:
    """Run one job, writing its log; return the exit code. ``concurrent_jobs``: how many jobs
    run at once (sets the per-job thread count, see the module docstring)."""
    log_path = jobs.log_path(job_id)
    command = jobs.command(job_id)
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    start = time.time()
    with open(log_path, "wb") as log_file:
        log_file.write(_log_header(command).encode("utf-8"))
        log_file.flush()
        if table is not None and table.stopping:
            return_code = 130
        else:
            # A new session per job: stopping the runner kills the whole pipeline of the job.
            proc = subprocess.Popen(["bash", "-o", "pipefail", "-c", command], stdin=subprocess.DEVNULL,
                                    stdout=log_file, stderr=subprocess.STDOUT,
                                    env=_job_env(options, concurrent_jobs), start_new_session=True)
            if table is not None:
                table.add(proc)
            try:
                return_code = proc.wait()
            finally:
                if table is not None:
                    table.remove(proc)
            if return_code < 0:  # killed by a signal: report it the way bash does
                return_code = 128 - return_code
        elapsed = int(round(time.time() - start))
        log_file.write(_log_footer(return_code, elapsed, options.num_threads or 1).encode("utf-8"))
    return return_code


def _run_in_parallel(job_ids: List[int], run_one: Callable[[int, _ProcessTable], int],
                     max_parallel: int) -> Dict[int, int]:
    """Run ``run_one(job_id, table)`` for each job, ``max_parallel`` at a time; stop all on
    Ctrl-C or SIGTERM. Returns {job_id: exit code}."""
    table = _ProcessTable()
    results: Dict[int, int] = {}

    def on_sigterm(signum, frame):
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    executor = ThreadPoolExecutor(max_workers=max(1, min(max_parallel, len(job_ids))))
    try:
        futures = {job_id: executor.submit(run_one, job_id, table) for job_id in job_ids}
        for job_id, future in futures.items():
            results[job_id] = future.result()
    except KeyboardInterrupt:
        table.stop_all()
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        executor.shutdown(wait=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return results


def job_status_line(jobs: JobArray, running: Callable[[], Iterable[int]],
                    count: Optional[Callable[[], int]] = None, enabled: Optional[bool] = None) -> StatusLine:
    """The live terminal line of a job array (see the module docstring): ``running()`` gives the
    ids of the jobs now running, whose logs are searched for the newest ``[progress]`` line."""

    def detail() -> Optional[str]:
        for job_id in sorted(running()):
            message = last_progress_message(jobs.log_path(job_id))
            if message:
                return message if jobs.num_jobs == 1 else f"job {job_id}: {message}"
        return None

    return StatusLine(job_base_name(jobs), jobs.num_jobs, detail=detail, count=count, enabled=enabled)


def run_local(jobs: JobArray, options: RunnerOptions, show_progress: Optional[bool] = None) -> List[int]:
    """Run all jobs on this machine; return the ids of the jobs that failed. ``show_progress``:
    the live status line (None: on a terminal only)."""
    max_parallel = options.max_jobs_run or jobs.num_jobs
    concurrent_jobs = min(max_parallel, jobs.num_jobs)
    lock = threading.Lock()
    running: set = set()
    finished = [0]

    def running_ids() -> List[int]:
        with lock:
            return list(running)

    with job_status_line(jobs, running_ids, enabled=show_progress) as status:
        def run_one(job_id: int, table: _ProcessTable) -> int:
            with lock:
                running.add(job_id)
            try:
                return run_job_locally(jobs, job_id, options, table, concurrent_jobs)
            finally:
                with lock:
                    running.discard(job_id)
                    finished[0] += 1
                status.update(finished[0])

        results = _run_in_parallel(jobs.job_ids(), run_one, max_parallel)
    return [job_id for job_id in jobs.job_ids() if results[job_id] != 0]

