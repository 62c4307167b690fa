"""AISHELL-1 corpus tree + transcript -> data/{train,dev,test} Kaldi data dirs.

Usage: python -m funasr_lite.bin.aishell_data_prep <audio-dir> <transcript-dir> <out-data-dir>
(called by egs/aishell1/local/aishell_data_prep.sh, which then fixes and validates each dir).
Prints the names of the splits it wrote on stdout, one per line.
"""

import argparse
import logging
import sys

from funasr_lite.data.aishell import SPLITS, prepare_aishell
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.aishell_data_prep", __doc__)
    parser.add_argument("audio_dir", help="e.g. /export/data/data_aishell/wav")
    parser.add_argument("transcript_dir", help="e.g. /export/data/data_aishell/transcript")
    parser.add_argument("out_dir", help="e.g. data (writes data/train, data/dev, data/test)")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), help="splits to prepare")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        report = prepare_aishell(args.audio_dir, args.transcript_dir, args.out_dir, args.splits)
    except FileNotFoundError as e:
        logging.error("%s", e)
        return 1
    if not report.written_splits:
        logging.error("no split could be prepared from %s", args.audio_dir)
        return 1
    for split in report.written_splits:
        print(split)
    return 0


if __name__ == "__main__":
    sys.exit(main())
