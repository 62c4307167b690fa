#!/usr/bin/env python3
"""Kaldi run.pl-style job runner, local backend: `run_local.py [options] JOB=1:N log/x.JOB.log prog args...`.

Same interface as run_slurm.py; see funasr_lite/jobs/ (options.py: the interface) or run with --help. Jobs that run
at once share the CPUs: unless --num-threads or OMP_NUM_THREADS/MKL_NUM_THREADS are given, each
gets OMP_NUM_THREADS = MKL_NUM_THREADS = max(1, CPUs // jobs at once).
"""
import sys

from funasr_lite.jobs.run import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], backend="local", prog="run_local.py"))
