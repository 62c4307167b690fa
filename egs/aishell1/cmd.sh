# Job runners, Kaldi style: every stage calls "$cmd JOB=1:N log/x.JOB.log prog args...".
# train_cmd runs stage 1 (fbank jobs), 3 (LM) and 4-5 (training); decode_cmd runs stage 6.
# Local machine (default): parallel jobs share the CPUs.
export train_cmd="run_local.py"
export decode_cmd="run_local.py"

# Slurm cluster: uncomment and adapt. One `sbatch --array --wait` per parallel step; the usual
# options (all in `run_slurm.py --help`):
#   --partition P --account A --time 48:00:00
#   --mem 32G          memory per job (per array task)
#   --num-threads N    CPUs per job, exported as OMP_NUM_THREADS; per process for torchrun
#   --gpu N            GPUs per job. A torchrun job (run.sh --ngpu P) asks for max(N, P) GPUs and
#                      P x num-threads CPUs, so one train_cmd serves --ngpu 1 and --ngpu 8
#   --max-jobs-run N   at most N array tasks at once
#   --extra "ARGS"     anything else for sbatch, e.g. "--qos=high --exclude=node1"
# A failed job is named with its log; one that Slurm ended (scancel, time or memory limit) is
# reported with that state. Rerunning a stage resubmits all its jobs (docs/training.md says why).
# train_cmd also runs the fbank jobs, so a --gpu in it reserves a GPU for each of them too.
# export train_cmd="run_slurm.py --partition gpu --gpu 1 --num-threads 8 --mem 32G --time 48:00:00"
# export decode_cmd="run_slurm.py --partition cpu --num-threads 1 --mem 4G --time 4:00:00"
# Training on several nodes: slurm/train.sbatch (see docs/training.md).
