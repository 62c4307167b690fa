"""The job runner's interface: options, the job array, commands, logs and threads.

Kaldi run.pl-style job runner with a local and a Slurm backend (one interface for both).

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
import socket
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

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


def failure_message(prog: str, jobs: JobArray, failed: List[int]) -> str:
    """``run_local.py: 2 / 4 jobs failed, see log/x.2.log log/x.4.log``."""
    logs = " ".join(jobs.log_path(job_id) for job_id in failed)
    noun = "job" if jobs.num_jobs == 1 else "jobs"
    return f"{prog}: {len(failed)} / {jobs.num_jobs} {noun} failed, see {logs}"


def job_base_name(jobs: JobArray) -> str:
    """``log/decode.JOB.log`` -> ``decode``: names the batch script and Slurm job."""
    base = os.path.basename(jobs.log_template)
    if jobs.job_var:
        base = base.replace("." + jobs.job_var, "").replace(jobs.job_var, "")
    if base.endswith(".log"):
        base = base[: -len(".log")]
    return base or "job"
