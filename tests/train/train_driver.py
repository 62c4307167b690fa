"""Run training in a fresh process and record every optimizer update (for the resume tests).

    python train_driver.py PATHS_JSON OUT_JSONL [--kill_at_step K] [overrides...]

Each update appends {"step", "epoch", "loss", "lr"} to OUT_JSONL (rank 0 only). With
--kill_at_step, the process dies (os._exit(3), no clean-up, like a kill) right after update K.
"""

import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from funasr_lite.train.tasks.asr import run_training  # noqa: E402
from funasr_lite.train.config import resolve_training_config  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("paths_json")
    parser.add_argument("out_jsonl")
    parser.add_argument("--kill_at_step", type=int, default=0)
    args, overrides = parser.parse_known_args()
    torch.set_num_threads(1)
    with open(args.paths_json) as f:
        paths = json.load(f)
    config = resolve_training_config(
        paths["config"],
        overrides,
        token_list=paths["token_list"],
        cmvn_file=paths["cmvn_file"],
        train_data=paths["train_data"],
        valid_data=paths["valid_data"],
        output_dir=paths["output_dir"],
    )
    rank = int(os.environ.get("RANK", 0))

    def record(update):
        if rank == 0:
            with open(args.out_jsonl, "a") as f:
                f.write(json.dumps({k: update[k] for k in ("step", "epoch", "loss", "lr")}) + "\n")
        if args.kill_at_step and update["step"] == args.kill_at_step:
            os._exit(3)

    run_training(config, resume=True, device="cpu", step_callback=record)


if __name__ == "__main__":
    main()
