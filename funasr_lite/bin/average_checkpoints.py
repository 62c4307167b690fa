"""Average model weights into ``model.avg{N}.pt`` (a plain state dict): the final-model rule of the
training engine (docs/training_engine.md), e.g. to redo it with another N after training.

    python -m funasr_lite.bin.average_checkpoints --exp_dir exp/paraformer --num 10
    python -m funasr_lite.bin.average_checkpoints --out avg.pt exp/x/epoch_8.pt exp/x/epoch_9.pt

The first form takes the N best epochs listed in ``<exp_dir>/best.json``.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from funasr_lite.train.average import average_best_checkpoints, average_checkpoint_files
from funasr_lite.train.checkpoint import CheckpointError
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.average_checkpoints", __doc__)
    parser.add_argument("--exp_dir", help="experiment dir with best.json")
    parser.add_argument("--num", type=int, default=10, help="number of best epochs to average")
    parser.add_argument("--out", help="output file (default <exp_dir>/model.avg<num>.pt)")
    parser.add_argument("checkpoints", nargs="*", help="checkpoint files to average instead of best.json")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        if args.checkpoints:
            if not args.out:
                parser.error("--out is required when checkpoints are listed")
            path = average_checkpoint_files(args.checkpoints, args.out)
        else:
            if not args.exp_dir:
                parser.error("give --exp_dir or a list of checkpoints")
            path = average_best_checkpoints(args.exp_dir, args.num, args.out)
    except (CheckpointError, ValueError) as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
