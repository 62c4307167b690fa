r"""Fine-tune a released (FunASR / ModelScope / exported) model dir on your own data.

    python -m funasr_lite.bin.finetune --model_dir DIR --data_dir example_data --output_dir checkpoint \
        [--dataset_type small|large] [--batch_bins 2000] [--max_epoch 50] [--lr 5e-5] [++key=value ...]

    torchrun --nproc_per_node N -m funasr_lite.bin.finetune ...   (same arguments)

``--data_dir`` holds ``train/{text,wav.scp}`` and ``validation/{text,wav.scp}``. The model dir's own
frontend_conf, am.mvn, token list and config are used (no new CMVN or vocabulary). The data are
checked first (counts printed, problems named in <output_dir>/data/<split>/data_check.txt); then
fbank features (small) or tar shards (large, features on the fly) go under <output_dir>/data,
checkpoints and train.log under <output_dir>, and the fine-tuned model dir, in the input's layout,
to <output_dir>/model_dir. ``--batch_bins``: fbank frames (small) or milliseconds (large) per batch.
A rerun resumes. Details: egs/finetune/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List, Optional

from funasr_lite.train.finetune import DATASET_TYPES, run_finetune
from funasr_lite.utils.cli import make_parser, parse_args_with_overrides, str2bool
from funasr_lite.utils.config import OVERRIDE_PREFIX
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("finetune")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.finetune", __doc__,
                         epilog=f"Extra arguments {OVERRIDE_PREFIX}key.sub=value override the training config.")
    parser.add_argument("--model_dir", required=True, help="released model dir (config.yaml, model.pt|pb, am.mvn, tokens)")
    parser.add_argument("--data_dir", required=True, help="dir with train/ and validation/ (text, wav.scp)")
    parser.add_argument("--output_dir", required=True, help="checkpoints, logs, data, model_dir/")
    parser.add_argument("--dataset_type", default="small", choices=DATASET_TYPES,
                        help="small: features computed once into output_dir; large: tar shards, features on the fly")
    parser.add_argument("--batch_bins", type=int, default=2000,
                        help="padded batch size: fbank frames (small) or milliseconds of audio (large)")
    parser.add_argument("--max_epoch", type=int, default=50)
    parser.add_argument("--lr", type=float, default=5e-5, help="learning rate (constant unless overridden)")
    parser.add_argument("--num_avg", type=int, default=5, help="average this many best epochs into the model dir")
    parser.add_argument("--resample", type=str2bool, default=True,
                        help="resample audio at other rates (with a warning); false: drop it")
    parser.add_argument("--shard_size", type=int, default=1000, help="large: utterances per tar shard")
    parser.add_argument("--nj", type=int, default=1, help="large: parallel shard-writing processes")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--prepare_only", type=str2bool, default=False,
                        help="only check the data and make features/shards (a recipe stage)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parse_args_with_overrides(parser, argv)
    os.makedirs(args.output_dir, exist_ok=True)
    # rank 0: the data check and set-up also go to a file
    setup_logging(log_file=os.path.join(args.output_dir, "finetune.log") if int(os.environ.get("RANK", "0")) == 0 else None)
    from funasr_lite.data.check import DataCheckError
    from funasr_lite.inference.model_dir import ModelDirError
    from funasr_lite.train.finetune import FinetuneError

    try:
        out = run_finetune(args.model_dir, args.data_dir, args.output_dir, dataset_type=args.dataset_type,
                           batch_bins=args.batch_bins, max_epoch=args.max_epoch, lr=args.lr, num_avg=args.num_avg,
                           overrides=extra, resample=args.resample, shard_size=args.shard_size, nj=args.nj,
                           device=args.device, prepare_only=args.prepare_only)
    except (FinetuneError, DataCheckError, ModelDirError) as e:
        logger.error("%s", e)
        return 1
    if out:
        print(f"fine-tuned model dir: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
