"""Train a token LM for shallow fusion on the TRAIN transcripts.

    python -m funasr_lite.bin.train_lm --text data/train/text --token_list data/lang_char/tokens.txt \\
        --valid_text data/dev/text --output_dir exp/lm --config conf/lm.yaml [++train_conf.max_epoch=3 ...]

    torchrun --nproc_per_node 2 -m funasr_lite.bin.train_lm ...   (same arguments; DDP)

The training engine's outputs (docs/training_engine.md): ``<output_dir>/config.yaml`` and the final
``model.avg{N}.pt`` (what ``--lm_dir`` decoding reads), ``train.log``, ``tensorboard/``,
``epochs.jsonl``, ``epoch_N.pt``, ``checkpoint_latest.pt``; a rerun resumes. The task is
:mod:`funasr_lite.train.tasks.lm`. One line per epoch (train/valid perplexity) is printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from funasr_lite.models.load import CheckpointError
from funasr_lite.train.tasks.lm import epoch_summary, train_lm
from funasr_lite.utils.cli import make_parser, parse_args_with_overrides
from funasr_lite.utils.log import setup_logging


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
    setup_logging()
    try:
        result = train_lm(args.text, args.token_list, args.output_dir, config_path=args.config,
                          valid_text=args.valid_text, overrides=extra, device=args.device)
    except (ValueError, CheckpointError) as e:  # bad text, config or resume: the message names the file
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    if result["is_main"]:
        for record in result["epochs"]:
            print(epoch_summary(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
