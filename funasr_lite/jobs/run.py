"""``run_local.py`` / ``run_slurm.py``: parse the runner's command line and run the jobs on one back-end.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from funasr_lite.jobs.local import run_local
from funasr_lite.jobs.options import BACKENDS, USAGE, JobUsageError, failure_message, parse_runner_argv
from funasr_lite.jobs.slurm import run_slurm

logger = logging.getLogger(__name__)


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

