"""Train a token LM for shallow fusion on the TRAIN transcripts.

    python -m funasr_lite.bin.train_lm --text data/train/text --token_list data/lang_char/tokens.txt \\
        --valid_text data/dev/text --output_dir exp/lm --config conf/lm.yaml [++train_conf.max_epoch=3 ...]

    torchrun --nproc_per_node 2 -m funasr_lite.bin.train_lm ...   (same arguments; DDP)

Writes ``<output_dir>/config.yaml``, ``model.pt``, ``train.log``, ``tensorboard/``,
``epochs.jsonl`` and ``epoch_N.pt`` checkpoints; a rerun with the same config resumes. The
training itself is :func:`funasr_lite.train.lm_trainer.train_lm` (outputs described there).
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from funasr_lite.train.lm_trainer import train_lm
from funasr_lite.utils.cli import make_parser, parse_args_with_overrides


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "funasr_lite.bin.train_lm",
        __doc__,
        epilog="Extra arguments of the form ++key.sub=value override the config (e.g. ++train_conf.max_epoch=3).")
    parser.add_argument("--text", required=True, help="Kaldi text file of the TRAIN set")
    parser.add_argument("--token_list", required=True, help="tokens.txt of the ASR model")
    parser.add_argument("--valid_text", default=None, help="Kaldi text file for validation perplexity (e.g. dev)")
    parser.add_argument("--output_dir", required=True, help="experiment dir, e.g. exp/lm")
    parser.add_argument("--config", default=None, help="LM YAML config (e.g. conf/lm.yaml)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda when a GPU is visible, else cpu")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parse_args_with_overrides(parser, argv, example="++train_conf.max_epoch=3")
    train_lm(args.text, args.token_list, args.output_dir, config_path=args.config, valid_text=args.valid_text,
             overrides=extra, device=args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
