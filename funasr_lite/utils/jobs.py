"""Kaldi run.pl-style job runner with a local and a Slurm backend (one interface for both).

    run_local.py [options] JOB=1:N log/x.JOB.log prog args...
    run_slurm.py [options] JOB=1:N log/x.JOB.log prog args...
    run_local.py [options] log/x.log prog args...          (a single job)

The job variable (``JOB`` above, any identifier) is replaced by the job id everywhere in the
log path and the command arguments (plain text replacement, as in Kaldi). The command runs
through ``bash -o pipefail -c``. With ONE command argument that argument is shell code as it
stands (``"prog a | prog b > out"`` works). With several, each argument reaches the program
as it is (quoted: spaces, backslashes, ``$`` and globs are not reinterpreted), except shell
operators given as separate arguments (``\\|``, ``";"``, ``"&&"``, ``">"``, ``"2>&1"``, ``">out"``),
which act as operators, as in Kaldi's ``$cmd ... prog a \\| prog2 b``.

Every job writes its log: first ``# <command>``, then ``# Started at ...``, the command's
stdout+stderr, then ``# Accounting: time=<s> threads=<n>`` and
``# Ended (code <rc>) at <date>, elapsed time <s> seconds``. The runner exits 1 if any job
failed and names the failed jobs' logs on stderr.

Threads (local backend): torch, numpy and MKL start about one thread per core in every process,
so several jobs at once on few cores slow each other down badly. Without ``--num-threads``, when
more than one job runs at once and neither OMP_NUM_THREADS nor MKL_NUM_THREADS is set, every job
gets both set to max(1, CPUs // jobs at once), CPUs being those this process may run on. If the
environment sets either variable, both are left as they are (the user's setting wins); a single
job keeps the libraries' defaults; ``--num-threads N`` exports OMP_NUM_THREADS=N.

Progress: on a terminal (stderr a TTY, not CI, FUNASR_LITE_NO_PROGRESS unset) the runner keeps
one live line on stderr, ``<name>: k/N done, elapsed M:SS, ETA M:SS``, followed by the newest
``[progress] ...`` line that a running job wrote into its log (a training job's epoch, step, ETA
and last validation CER; see funasr_lite.utils.progress). Job output still goes only to the logs.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from funasr_lite.utils.progress import StatusLine, last_progress_message

logger = logging.getLogger(__name__)

BACKENDS = ("local", "slurm")
# Thread-count variables of OpenMP (torch, numpy's BLAS) and MKL, set for parallel local jobs.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")

USAGE = """\
Usage: {prog} [options] [JOB=1:N] <log-file> <command> [args...]
  e.g. {prog} --max-jobs-run 4 JOB=1:8 exp/log/decode.JOB.log decode.py --part JOB
The job variable (JOB) is replaced by 1..N in the log path and the command.
One command argument is run as shell code ("a | b > c" works); with several, each is passed as
it is, except separate shell operators (\\| ";" "&&" ">" "2>&1" ">out"), which act as such.
Options (the same for every backend; a backend ignores those it has no use for):
  --max-jobs-run N   at most N jobs at once (local default: all; Slurm: array throttle %N)
  --num-threads N    threads per job (per process of a torchrun job): Slurm --cpus-per-task;
                     exported as OMP_NUM_THREADS
                     (local default, when several jobs run at once and OMP_NUM_THREADS and
                     MKL_NUM_THREADS are both unset: both exported as max(1, CPUs // jobs at once))
  --mem SIZE         memory per job, e.g. 4G or 500M (Slurm --mem)
  --gpu N            GPUs per job (Slurm --gres=gpu:N; ignored locally)
                     Slurm, a job whose command runs `torchrun --nproc_per_node P`: it asks for
                     --cpus-per-task=P*threads and, when --gpu is given, --gres=gpu:max(N,P)
  --time T           time limit, e.g. 1:00:00 or 2-00:00:00 (Slurm --time; ignored locally)
  --partition P      Slurm partition (ignored locally)
  --account A        Slurm account (ignored locally)
  --extra "ARGS"     extra sbatch/srun arguments, shell-split (ignored locally)
  --use-srun         Slurm: one `srun` per job instead of one `sbatch --array` (no value)
  --status-wait S    Slurm: seconds to wait for status files on a slow shared disk (default 10)
  --help             this message
"""


class JobUsageError(ValueError):
    """Bad runner command line; the message says what is wrong."""


@dataclass
class RunnerOptions:
    """Resources and scheduling options shared by all backends."""

    max_jobs_run: Optional[int] = None
    num_threads: Optional[int] = None
    mem: Optional[str] = None
    gpu: int = 0
    time: Optional[str] = None
    partition: Optional[str] = None
    account: Optional[str] = None
    extra: List[str] = field(default_factory=list)
    use_srun: bool = False
    status_wait_s: float = 10.0


@dataclass
class JobArray:
    """Jobs ``first..last`` of one command; ``job_var`` is None for a single unnumbered job."""

    job_var: Optional[str]
    first: int
    last: int
    log_template: str
    command_args: List[str]

    def job_ids(self) -> List[int]:
        return list(range(self.first, self.last + 1))

    def _substitute(self, text: str, job_id: int) -> str:
        return text.replace(self.job_var, str(job_id)) if self.job_var else text

    def log_path(self, job_id: int) -> str:
        return self._substitute(self.log_template, job_id)

    def command(self, job_id: int) -> str:
        """The bash command line of job ``job_id``."""
        return shell_command([self._substitute(a, job_id) for a in self.command_args])

    @property
    def num_jobs(self) -> int:
        return self.last - self.first + 1


# ---------------------------------------------------------------- command line

_JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)(?::(\d+))?$")
_MEM = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)
_TIME = re.compile(r"^(\d+-)?\d+(:\d+){0,2}$|^\d+-\d+$")

def _positive_int(name: str) -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not value.isdigit() or int(value) < 1:
            raise JobUsageError(f"{name} must be a positive integer, got {value!r}")
        return int(value)

    return convert


def _non_negative_int(name: str) -> Callable[[str], int]:
    def convert(value: str) -> int:
        if not value.isdigit():
            raise JobUsageError(f"{name} must be a non-negative integer, got {value!r}")
        return int(value)

    return convert


def _mem(value: str) -> str:
    if not _MEM.match(value):
        raise JobUsageError(f"--mem must look like 4G, 500M or 1024 (MB), got {value!r}")
    return value.upper()


def _time(value: str) -> str:
    if not _TIME.match(value):
        raise JobUsageError(f"--time must look like 30, 1:00:00 or 2-00:00:00, got {value!r}")
    return value


def _seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds < 0:
        raise JobUsageError(f"--status-wait must be a number of seconds >= 0, got {value!r}")
    return seconds


# option name -> (RunnerOptions field, converter); a None converter marks a flag without value.
_OPTIONS: Dict[str, Tuple[str, Optional[Callable[[str], object]]]] = {
    "--max-jobs-run": ("max_jobs_run", _positive_int("--max-jobs-run")),
    "--num-threads": ("num_threads", _positive_int("--num-threads")),
    "--mem": ("mem", _mem),
    "--gpu": ("gpu", _non_negative_int("--gpu")),
    "--time": ("time", _time),
    "--partition": ("partition", str),
    "--account": ("account", str),
    "--extra": ("extra", shlex.split),
    "--use-srun": ("use_srun", None),
    "--status-wait": ("status_wait_s", _seconds),
}


def _parse_options(argv: List[str], pos: int, options: RunnerOptions) -> int:
    """Consume options starting at ``argv[pos]``; return the index of the first non-option."""
    while pos < len(argv) and argv[pos].startswith("--"):
        arg = argv[pos]
        name, has_value, value = arg.partition("=")
        if name not in _OPTIONS:
            raise JobUsageError(f"unknown option {name}")
        attr, convert = _OPTIONS[name]
        if convert is None:
            if has_value:
                raise JobUsageError(f"option {name} takes no value")
            setattr(options, attr, True)
            pos += 1
            continue
        if not has_value:
            if pos + 1 >= len(argv):
                raise JobUsageError(f"option {name} needs a value")
            value = argv[pos + 1]
            pos += 1
        setattr(options, attr, convert(value))
        pos += 1
    return pos


def parse_runner_argv(argv: Sequence[str]) -> Tuple[RunnerOptions, JobArray]:
    """Parse ``[options] [JOB=a:b] [options] log command...`` (options may come on both sides
    of the job range, as in Kaldi, so ``$cmd JOB=1:4 --mem 4G log prog`` works)."""
    argv = list(argv)
    options = RunnerOptions()
    pos = _parse_options(argv, 0, options)
    job_var, first, last = None, 1, 1
    if pos < len(argv):
        match = _JOB_RANGE.match(argv[pos])
        if match:
            job_var = match.group(1)
            first = int(match.group(2))
            last = int(match.group(3)) if match.group(3) is not None else first
            if first < 1 or last < first:
                raise JobUsageError(f"bad job range {argv[pos]!r}: need 1 <= first <= last")
            pos = _parse_options(argv, pos + 1, options)
    if len(argv) - pos < 2:
        raise JobUsageError("need a log file and a command")
    log_template, command_args = argv[pos], argv[pos + 1:]
    if job_var and job_var not in log_template and first != last:
        raise JobUsageError(
            f"log file {log_template!r} does not contain {job_var}: all jobs would write one log")
    return options, JobArray(job_var, first, last, log_template, command_args)


def shell_command(args: Sequence[str]) -> str:
    """Join command arguments into one bash command line (rules in the module docstring)."""
    if len(args) == 1:
        return args[0]
    return " ".join(arg if _is_shell_operator(arg) else shlex.quote(arg) for arg in args)


_OPERATORS = {"|", "||", "|&", "&&", ";", "&", "(", ")"}
_REDIRECTION = re.compile(r"^(\d*(>>|>\||>&|<&|>|<)|&>>?)\S*$")


def _is_shell_operator(arg: str) -> bool:
    """True for ``|``, ``&&``, ``;``, ... and redirections such as ``>``, ``2>&1``, ``>out.txt``."""
    return arg in _OPERATORS or bool(_REDIRECTION.match(arg))


# ---------------------------------------------------------------- local backend

def _now() -> str:
    return time.strftime("%a %b %d %H:%M:%S %Z %Y")


def _log_header(command: str) -> str:
    return f"# {command}\n# Started at {_now()} on {socket.gethostname()}\n#\n"


def _log_footer(return_code: int, elapsed_s: int, num_threads: int) -> str:
    return (f"# Accounting: time={elapsed_s} threads={num_threads}\n"
            f"# Ended (code {return_code}) at {_now()}, elapsed time {elapsed_s} seconds\n")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: taskset, a cgroup cpuset), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def threads_per_job(concurrent_jobs: int, cpus: Optional[int] = None) -> int:
    """max(1, CPUs // jobs running at once): the cores shared out among the jobs."""
    return max(1, (cpus if cpus is not None else available_cpus()) // max(1, concurrent_jobs))


def _job_env(options: RunnerOptions, concurrent_jobs: int = 1) -> Dict[str, str]:
    """The environment of a local job (thread rules in the module docstring)."""
    env = dict(os.environ)
    if options.num_threads:
        env["OMP_NUM_THREADS"] = str(options.num_threads)
    elif concurrent_jobs > 1 and not any(env.get(name) for name in THREAD_VARIABLES):
        threads = str(threads_per_job(concurrent_jobs))
        for name in THREAD_VARIABLES:
            env[name] = threads
    return env


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

    return StatusLine(_job_base_name(jobs), jobs.num_jobs, detail=detail, count=count, enabled=enabled)


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


# ---------------------------------------------------------------- Slurm backend

def _job_base_name(jobs: JobArray) -> str:
    """``log/decode.JOB.log`` -> ``decode``: names the batch script and Slurm job."""
    base = os.path.basename(jobs.log_template)
    if jobs.job_var:
        base = base.replace("." + jobs.job_var, "").replace(jobs.job_var, "")
    if base.endswith(".log"):
        base = base[: -len(".log")]
    return base or "job"


def slurm_queue_dir(jobs: JobArray) -> str:
    """``<logdir>/q``: batch script, exit-status files and Slurm's own output."""
    return os.path.join(os.path.dirname(jobs.log_template) or ".", "q")


def status_file(jobs: JobArray, job_id: int) -> str:
    return os.path.join(slurm_queue_dir(jobs), f"{_job_base_name(jobs)}.{job_id}.status")


def write_slurm_script(jobs: JobArray, options: RunnerOptions, workdir: Optional[str] = None) -> str:
    """Write the batch script that runs job ``$SLURM_ARRAY_TASK_ID`` (or job ``$1``) with the
    same log format as the local backend and an exit-status file; return its path."""
    workdir = workdir or os.getcwd()
    queue_dir = slurm_queue_dir(jobs)
    os.makedirs(queue_dir, exist_ok=True)
    script_path = os.path.join(queue_dir, _job_base_name(jobs) + ".sh")
    cases = []
    for job_id in jobs.job_ids():
        cases.append(
            f"  {job_id}) log={shlex.quote(jobs.log_path(job_id))}; "
            f"status={shlex.quote(status_file(jobs, job_id))}\n"
            f"     cmd={shlex.quote(jobs.command(job_id))} ;;")
    threads = options.num_threads or 1
    omp = f"export OMP_NUM_THREADS={options.num_threads}\n" if options.num_threads else ""
    script = f"""#!/usr/bin/env bash
# Generated by run_slurm.py at {_now()}. One Slurm array task (or srun) runs one job.
# Run job 3 by hand: SLURM_ARRAY_TASK_ID=3 bash {shlex.quote(script_path)}   (or: bash {shlex.quote(script_path)} 3)
set -u
cd {shlex.quote(workdir)} || exit 1
job=${{1:-${{SLURM_ARRAY_TASK_ID:-}}}}
case "$job" in
{chr(10).join(cases)}
  *) echo "$0: no job '$job' (jobs {jobs.first}..{jobs.last})" >&2; exit 1 ;;
esac
{omp}mkdir -p "$(dirname "$log")"
rm -f "$status"
start=$(date +%s)
{{
  printf '# %s\\n' "$cmd"
  echo "# Started at $(date) on ${{HOSTNAME:-$(uname -n)}}"
  echo "#"
}} > "$log"
bash -o pipefail -c "$cmd" < /dev/null >> "$log" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
echo "# Accounting: time=$elapsed threads={threads}" >> "$log"
echo "# Ended (code $rc) at $(date), elapsed time $elapsed seconds" >> "$log"
echo "$rc" > "$status.tmp" && mv "$status.tmp" "$status"
exit "$rc"
"""
    with open(script_path, "w", encoding="utf-8") as f:
        f.write(script)
    os.chmod(script_path, 0o755)
    return script_path


_TORCHRUN_NPROC = re.compile(r"^--nproc[_-]per[_-]node(?:=(.*))?$")


def torchrun_processes(command: str) -> int:
    """Processes that a ``torchrun`` (or ``python -m torch.distributed.run``) in ``command``
    starts: its ``--nproc_per_node`` when that is a number; 1 for any other command."""
    try:
        tokens = shlex.split(command)
    except ValueError:
        return 1
    for i, token in enumerate(tokens):
        if os.path.basename(token) == "torchrun" or (i > 0 and token == "torch.distributed.run" and tokens[i - 1] == "-m"):
            for j in range(i + 1, len(tokens)):
                match = _TORCHRUN_NPROC.match(tokens[j])
                if match:
                    value = match.group(1) if match.group(1) is not None else " ".join(tokens[j + 1:j + 2])
                    return int(value) if value.isdigit() and int(value) > 0 else 1
            return 1
    return 1


def slurm_resource_args(jobs: JobArray, options: RunnerOptions) -> List[str]:
    """Resource arguments shared by sbatch and srun. A torchrun job with P processes asks for
    P times the threads and, on GPUs, at least P GPUs (one per process)."""
    args = [f"--job-name={_job_base_name(jobs)}"]
    processes = torchrun_processes(jobs.command(jobs.first))
    if options.num_threads or processes > 1:
        args.append(f"--cpus-per-task={(options.num_threads or 1) * processes}")
    if options.mem:
        args.append(f"--mem={options.mem}")
    if options.gpu:
        args.append(f"--gres=gpu:{max(options.gpu, processes)}")
    if options.time:
        args.append(f"--time={options.time}")
    if options.partition:
        args.append(f"--partition={options.partition}")
    if options.account:
        args.append(f"--account={options.account}")
    return args


def sbatch_argv(jobs: JobArray, options: RunnerOptions, script_path: str) -> List[str]:
    """``sbatch --parsable --wait --array=a-b[%max] <resources> <extra> script``."""
    array = f"{jobs.first}-{jobs.last}"
    if options.max_jobs_run:
        array += f"%{options.max_jobs_run}"
    output = os.path.join(slurm_queue_dir(jobs), _job_base_name(jobs) + ".%a.out")
    return (["sbatch", "--parsable", "--wait", f"--array={array}", f"--output={output}"]
            + slurm_resource_args(jobs, options) + options.extra + [script_path])


def srun_argv(jobs: JobArray, options: RunnerOptions, script_path: str, job_id: int) -> List[str]:
    return (["srun", "--ntasks=1"] + slurm_resource_args(jobs, options) + options.extra
            + ["bash", script_path, str(job_id)])


def _read_status(path: str) -> Optional[int]:
    try:
        with open(path, encoding="utf-8") as f:
            return int(f.read().strip())
    except (FileNotFoundError, ValueError):
        return None


def _slurm_status_line(jobs: JobArray, enabled: Optional[bool] = None) -> StatusLine:
    """Finished jobs counted by their exit-status files; running ones: no status yet and a log
    written since the line started (an older log is an earlier run's)."""
    start = time.time() - 1.0

    def finished() -> List[int]:
        return [j for j in jobs.job_ids() if os.path.exists(status_file(jobs, j))]

    def running() -> List[int]:
        done = set(finished())
        return [j for j in jobs.job_ids()
                if j not in done and os.path.exists(jobs.log_path(j)) and os.path.getmtime(jobs.log_path(j)) >= start]

    return job_status_line(jobs, running, count=lambda: len(finished()), enabled=enabled)


def _wait_for_array(jobs: JobArray, sbatch: subprocess.Popen) -> int:
    """Wait for ``sbatch --wait`` to exit, or until every task has written its exit status:
    sbatch polls Slurm with sleeps growing to 10 s, the status files show the end sooner.
    Stopping sbatch there does not touch the (finished) job. Returns sbatch's exit code, 0
    when stopped."""
    while True:
        try:
            return sbatch.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if all(os.path.exists(status_file(jobs, job_id)) for job_id in jobs.job_ids()):
                sbatch.terminate()
                sbatch.wait()
                return 0


def _submit_array(jobs: JobArray, options: RunnerOptions, script_path: str) -> str:
    """Submit the job array and wait for it; return Slurm's job id. Ctrl-C cancels the array."""
    argv = sbatch_argv(jobs, options, script_path)
    logger.info("submitting: %s", shlex.join(argv))
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    except FileNotFoundError:
        raise RuntimeError("sbatch not found on PATH (run on a Slurm login node, or use run_local.py)")
    slurm_job_id = ""
    try:
        # --parsable prints "jobid[;cluster]" at submission, before --wait blocks.
        slurm_job_id = (proc.stdout.readline().strip().split(";")[0] if proc.stdout else "")
        if slurm_job_id:
            logger.info("Slurm job %s (%d tasks)", slurm_job_id, jobs.num_jobs)
        with _slurm_status_line(jobs):
            return_code = _wait_for_array(jobs, proc)
    except KeyboardInterrupt:
        if slurm_job_id:
            subprocess.run(["scancel", slurm_job_id], check=False)
        proc.terminate()
        raise
    if not slurm_job_id:
        raise RuntimeError(f"sbatch failed (exit code {return_code}); nothing was submitted")
    if return_code != 0:
        # sbatch --wait exits non-zero when a task failed: the status files tell which.
        logger.info("sbatch exited with code %d", return_code)
    return slurm_job_id


# Final task states of a job that ended without running its command to the end (the batch
# script then writes no exit status, or the code of a signal).
SLURM_KILLED_STATES = ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL", "PREEMPTED",
                       "BOOT_FAIL", "DEADLINE", "REVOKED")
# States after which nothing changes (COMPLETING, shown just after scancel, is not one).
SLURM_FINAL_STATES = ("COMPLETED", "FAILED") + SLURM_KILLED_STATES


def slurm_task_states(slurm_job_id: str) -> Dict[int, str]:
    """{array task id: state, e.g. COMPLETED, FAILED, CANCELLED} of a job array, from sacct when
    accounting is on, else from scontrol (the controller keeps finished jobs for MinJobAge,
    300 s by default); {} when neither answers."""
    def run(argv: List[str]) -> str:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return proc.stdout if proc.returncode == 0 else ""

    states: Dict[int, str] = {}
    for line in run(["sacct", "-n", "-P", "-X", "-j", slurm_job_id, "-o", "JobID,State"]).splitlines():
        job, _, state = line.partition("|")
        match = re.match(rf"^{re.escape(slurm_job_id)}_(\d+)$", job.strip())
        if match and state.strip():
            states[int(match.group(1))] = state.split()[0]  # "CANCELLED by 0" -> CANCELLED
    if states:
        return states
    for line in run(["scontrol", "-o", "show", "job", slurm_job_id]).splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        task, state = fields.get("ArrayTaskId", ""), fields.get("JobState", "")
        if task.isdigit() and state:
            states[int(task)] = state
    return states


def _srun_one(jobs: JobArray, options: RunnerOptions, script_path: str, job_id: int,
              table: _ProcessTable) -> int:
    out_path = os.path.join(slurm_queue_dir(jobs), f"{_job_base_name(jobs)}.{job_id}.out")
    with open(out_path, "wb") as out:
        proc = subprocess.Popen(srun_argv(jobs, options, script_path, job_id), stdin=subprocess.DEVNULL,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        table.add(proc)
        try:
            return proc.wait()
        finally:
            table.remove(proc)


def run_slurm(jobs: JobArray, options: RunnerOptions) -> List[int]:
    """Run all jobs through Slurm and wait; return the ids of the failed jobs (a job that
    never wrote its exit-status file counts as failed)."""
    for job_id in jobs.job_ids():  # stale status files from an earlier run must not count
        for path in (status_file(jobs, job_id), status_file(jobs, job_id) + ".tmp"):
            if os.path.exists(path):
                os.remove(path)
    script_path = write_slurm_script(jobs, options)
    if options.use_srun:
        max_parallel = options.max_jobs_run or jobs.num_jobs
        with _slurm_status_line(jobs):
            _run_in_parallel(jobs.job_ids(),
                             lambda job_id, table: _srun_one(jobs, options, script_path, job_id, table),
                             max_parallel)
        slurm_job_id = ""
    else:
        slurm_job_id = _submit_array(jobs, options, script_path)
    statuses = {job_id: _read_status(status_file(jobs, job_id)) for job_id in jobs.job_ids()}
    states = (slurm_task_states(slurm_job_id) if slurm_job_id and any(s != 0 for s in statuses.values())
              else {})
    # A killed task never writes its status: no point waiting for the file on a slow disk.
    waiting = [j for j, s in statuses.items() if s is None and states.get(j) not in SLURM_KILLED_STATES]

    def unsettled() -> List[int]:  # failed tasks in a state that is not final yet (COMPLETING)
        return [j for j, s in statuses.items() if s != 0 and j in states and states[j] not in SLURM_FINAL_STATES]

    deadline = time.time() + options.status_wait_s
    while (waiting or unsettled()) and time.time() < deadline:
        time.sleep(0.5)  # a shared disk may show the files late
        statuses.update({j: _read_status(status_file(jobs, j)) for j in waiting})
        waiting = [j for j in waiting if statuses[j] is None]
        if unsettled():
            states.update(slurm_task_states(slurm_job_id))
            waiting = [j for j in waiting if states.get(j) not in SLURM_KILLED_STATES]
    failed_without_state = [j for j, s in statuses.items() if s != 0 and j not in states]
    if slurm_job_id and failed_without_state:  # a busy controller may not have answered the first time
        states.update(slurm_task_states(slurm_job_id))
    missing = [j for j, s in statuses.items() if s is None]
    if missing:
        logger.warning("%d job(s) wrote no exit status (killed, or never started): %s; see %s",
                       len(missing), " ".join(map(str, missing)), slurm_queue_dir(jobs))
    for job_id, status in statuses.items():
        state = states.get(job_id, "")
        if status != 0 and state in SLURM_KILLED_STATES:
            logger.warning("job %d (Slurm job %s_%d) was %s before it finished; log: %s", job_id,
                           slurm_job_id, job_id, state, jobs.log_path(job_id))
    return [job_id for job_id, status in statuses.items() if status != 0]


# ---------------------------------------------------------------- entry point

def failure_message(prog: str, jobs: JobArray, failed: List[int]) -> str:
    """``run_local.py: 2 / 4 jobs failed, see log/x.2.log log/x.4.log``."""
    logs = " ".join(jobs.log_path(job_id) for job_id in failed)
    noun = "job" if jobs.num_jobs == 1 else "jobs"
    return f"{prog}: {len(failed)} / {jobs.num_jobs} {noun} failed, see {logs}"


def main(argv: Sequence[str], backend: str, prog: str) -> int:
    """Command-line entry of run_local.py / run_slurm.py; returns the exit status."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {BACKENDS}")
    logging.basicConfig(level=logging.INFO, format=f"{prog}: %(message)s")
    if not argv or argv[0] in ("--help", "-h"):
        print(USAGE.format(prog=prog), file=sys.stdout if argv else sys.stderr, end="")
        return 0 if argv else 1
    try:
        options, jobs = parse_runner_argv(argv)
    except JobUsageError as e:
        print(f"{prog}: {e}\n" + USAGE.format(prog=prog), file=sys.stderr, end="")
        return 1
    try:
        failed = run_local(jobs, options) if backend == "local" else run_slurm(jobs, options)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; running jobs were stopped", file=sys.stderr)
        return 130
    except (OSError, RuntimeError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    if failed:
        print(failure_message(prog, jobs, failed), file=sys.stderr)
        return 1
    return 0
