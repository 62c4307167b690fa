"""Kaldi run.pl-style job runner: one interface (``options``), a local (``local``) and a Slurm (``slurm``)
back-end, the command line of ``run_local.py`` / ``run_slurm.py`` (``run``)."""
