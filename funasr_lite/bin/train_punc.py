"""Train a CT-Transformer punctuation model on People's Daily text (FunASR model-dir output).

    python -m funasr_lite.bin.train_punc --output_dir exp/punc --config conf/punc.yaml \\
        --exclude_text data/dev/text --exclude_text data/test/text [++train_conf.max_epoch=1 ...]

1. ``<output_dir>/data/{train,valid,test}.txt``: punctuated paragraphs of the tagged People's
   Daily text (``--text``; tools/setup.sh fetches it), leaving out every paragraph that contains a
   transcript of an ``--exclude_text`` file (see funasr_lite.data.punc_text for the mark mapping);
   ``test.txt`` is the held-out punctuation test set (egs/aishell1/local/score_punc.py scores on it).
2. Training (the engine with the task funasr_lite.train.tasks.punc): ``<output_dir>`` becomes a
   FunASR punctuation model dir (config.yaml, tokens.json, model.pt = the engine's final
   model.avg{N}.pt) that ``funasr_lite.Punctuator.from_model_dir`` reads.
A rerun resumes; the text step is redone only when ``data/stats.json`` is missing.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from funasr_lite.data.punc_text import prepare_punc_text
from funasr_lite.data.synthetic.text import default_text_path
from funasr_lite.models.load import CheckpointError
from funasr_lite.train.tasks.punc import train_punc
from funasr_lite.utils.cli import make_parser, parse_args_with_overrides
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser(
        "funasr_lite.bin.train_punc",
        __doc__,
        epilog="Extra arguments of the form ++key.sub=value override the config (e.g. ++train_conf.max_epoch=1).")
    parser.add_argument("--text", default=None,
                        help="tagged People's Daily text (词/pos per word, one paragraph a line); "
                             "default: the copy tools/setup.sh fetched")
    parser.add_argument("--exclude_text", action="append", default=[],
                        help="Kaldi text file whose transcripts are held out (repeat: dev and test)")
    parser.add_argument("--output_dir", required=True, help="experiment / model dir, e.g. exp/punc")
    parser.add_argument("--config", default=None, help="punctuation YAML config (e.g. conf/punc.yaml)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"),
                        help="auto: cuda when a GPU is visible, else cpu")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parse_args_with_overrides(parser, argv, example="++train_conf.max_epoch=1")
    setup_logging()
    text = args.text or default_text_path()
    if not os.path.isfile(text):
        parser.error(f"--text {text}: no such file (run tools/setup.sh, or pass --text)")
    for path in args.exclude_text:
        if not os.path.isfile(path):
            parser.error(f"--exclude_text {path}: no such file")
    data_dir = os.path.join(args.output_dir, "data")
    try:
        if not os.path.isfile(os.path.join(data_dir, "stats.json")):
            prepare_punc_text(text, data_dir, args.exclude_text)
        train_punc(os.path.join(data_dir, "train.txt"), args.output_dir, config_path=args.config,
                   valid_text=os.path.join(data_dir, "valid.txt"), overrides=extra, device=args.device)
    except (ValueError, CheckpointError) as e:  # bad text, config or resume: the message names the file
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
