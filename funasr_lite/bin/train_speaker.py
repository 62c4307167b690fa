"""Train FunASR's x-vector speaker model on the speakers of a Kaldi data dir (AAM-softmax).

    python -m funasr_lite.bin.train_speaker --train_data data/sv_train --valid_data data/sv_valid \\
        --config conf/xvector_demo.yaml --output_dir exp/xvector [++train_conf.max_epoch=1 ...]

The data dirs need feats.scp (stored raw fbank, recipe stage 1, with its fbank.json) and utt2spk.
The engine trains the task funasr_lite.train.tasks.speaker; ``<output_dir>`` becomes a speaker
model dir (config.yaml, model.pt = the engine's final model.avg{N}.pt, model.init.pt = the
untrained weights) that ``funasr_lite.SpeakerVerifier`` loads. A rerun resumes.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from funasr_lite.models.load import CheckpointError
from funasr_lite.train.tasks.speaker import train_speaker
from funasr_lite.utils.cli import make_parser, parse_args_with_overrides
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "funasr_lite.bin.train_speaker",
        __doc__,
        epilog="Extra arguments of the form ++key.sub=value override the config (e.g. ++train_conf.max_epoch=1).")
    parser.add_argument("--train_data", required=True, help="data dir of the training speakers (feats.scp, utt2spk)")
    parser.add_argument("--valid_data", default=None,
                        help="data dir validated on each epoch (EER over its pairs; loss/acc on its utterances of "
                             "training speakers); default: no validation")
    parser.add_argument("--output_dir", required=True, help="experiment / speaker model dir, e.g. exp/xvector")
    parser.add_argument("--config", default=None, help="speaker YAML config (e.g. conf/xvector_demo.yaml)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda when a GPU is visible, else cpu")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parse_args_with_overrides(parser, argv, example="++train_conf.max_epoch=1")
    setup_logging()
    try:
        train_speaker(args.train_data, args.output_dir, config_path=args.config, valid_data=args.valid_data,
                      overrides=extra, device=args.device)
    except (ValueError, CheckpointError, OSError) as e:  # bad data, config or resume: named
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
