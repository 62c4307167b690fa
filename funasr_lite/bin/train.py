r"""Train a Paraformer (one process, or each process of ``torchrun``).

    python -m funasr_lite.bin.train --config conf/train_paraformer.yaml \
        --train_data data/train --valid_data data/dev \
        --token_list data/lang_char/tokens.txt --cmvn_file data/train/am.mvn \
        --output_dir exp/paraformer [--resume true] [--init_param model.pt] \
        [--init_encoder exp/data2vec/model.avg1.pt] [++train_conf.max_epoch=50 ++optim_conf.lr=1e-3 ...]

    torchrun --nnodes 1 --nproc_per_node 4 -m funasr_lite.bin.train ...   (same arguments)

A config whose ``model`` is a pretraining model (``data2vec``) pretrains its encoder on the data
dirs' audio instead (no --token_list; ``text`` is not read): funasr_lite.train.tasks.pretrain.

Config overrides are ``++dotted.key=value`` (value read as YAML). See docs/training.md; the outputs
(``model.avg{N}.pt`` the final model) are the engine's, docs/training_engine.md.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from funasr_lite.train.config import resolve_training_config
from funasr_lite.utils.config import OVERRIDE_PREFIX, ConfigError
from funasr_lite.utils.cli import make_parser, parse_args_with_overrides, str2bool
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "funasr_lite.bin.train",
        __doc__,
        epilog=f"Extra arguments of the form {OVERRIDE_PREFIX}key.sub=value override the config.",
    )
    parser.add_argument("--config", required=True, help="training YAML (FunASR config.yaml schema)")
    parser.add_argument("--train_data", help="training data dir (feats.scp, text, utt2num_frames)")
    parser.add_argument("--valid_data", help="validation data dir")
    parser.add_argument("--token_list", help="tokens.txt / tokens.json")
    parser.add_argument("--cmvn_file", help="am.mvn (dimension n_mels * lfr_m)")
    parser.add_argument("--output_dir", required=True, help="experiment dir")
    parser.add_argument("--resume", type=str2bool, default=True, help="continue from <output_dir>/checkpoint_latest.pt if present")
    parser.add_argument("--init_param", help="initial model weights (fine-tuning): FunASR model.pt or an averaged model")
    parser.add_argument("--init_encoder", help="initial encoder weights: the encoder.* tensors of a pretrained model "
                        "(data2vec's model.avgN.pt; its pretraining-only parts are skipped)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: cuda when a GPU is visible, else cpu")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args, extra = parse_args_with_overrides(parser, argv)
    setup_logging()
    try:
        config = resolve_training_config(
            args.config,
            extra,
            token_list=args.token_list,
            cmvn_file=args.cmvn_file,
            train_data=args.train_data,
            valid_data=args.valid_data,
            output_dir=args.output_dir,
            init_param=args.init_param,
            init_encoder=args.init_encoder,
        )
    except ConfigError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    if not config.get("train_data"):
        parser.error("--train_data is required (or train_data in the config)")
    from funasr_lite.train.checkpoint import CheckpointError
    from funasr_lite.train.tasks.asr import run_training
    from funasr_lite.train.tasks.pretrain import is_pretraining, run_pretraining

    try:
        if is_pretraining(config):
            run_pretraining(config, resume=args.resume, device=args.device)
        else:
            run_training(config, resume=args.resume, device=args.device)
    except ConfigError as e:  # e.g. a pretraining config that cannot be trained as given
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    except CheckpointError as e:  # an unreadable checkpoint to resume from, a full disk, ...
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
