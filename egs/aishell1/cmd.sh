# Job runners, Kaldi style: every stage calls "$cmd JOB=1:N log/x.JOB.log prog args...".
# Local machine (default):
export train_cmd="run_local.py"
export decode_cmd="run_local.py"
# Slurm cluster: uncomment and adapt (options are documented in utils/run_slurm.py --help).
# export train_cmd="run_slurm.py --partition gpu --gpu 1 --num-threads 8 --mem 32G --time 48:00:00"
# export decode_cmd="run_slurm.py --partition cpu --num-threads 2 --mem 8G"
