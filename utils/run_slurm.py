#!/usr/bin/env python3
"""Kaldi run.pl-style job runner, slurm backend: `run_slurm.py [options] JOB=1:N log/x.JOB.log prog args...`.

Same interface as run_local.py; see funasr_lite/jobs/ (options.py: the interface) or run with --help.
"""
import sys

from funasr_lite.jobs.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], backend="slurm", prog="run_slurm.py"))
