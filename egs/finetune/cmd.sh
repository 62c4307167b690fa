# Job runners, Kaldi style (see ../aishell1/cmd.sh for the Slurm settings): train_cmd runs the data
# preparation and the fine-tuning, decode_cmd the decoding.
export train_cmd="run_local.py"
export decode_cmd="run_local.py"
