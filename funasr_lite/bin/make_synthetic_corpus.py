"""Generate the embedded synthetic Mandarin corpus in AISHELL-1 layout.

Usage: python -m funasr_lite.bin.make_synthetic_corpus --out DIR --size tiny|small|full
           [--nj N] [--seed 1] [--text PATH]
Writes DIR/data_aishell/{wav,transcript} and DIR/data_aishell/.done (see docs/synthetic_corpus.md).
Rerunning with the same parameters does nothing; a killed run resumes.
"""

import argparse
import logging
import sys

from funasr_lite.data.synthetic import SIZES, CorpusError, default_text_path, generate_corpus
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.make_synthetic_corpus", __doc__)
    parser.add_argument("--out", required=True, help="output directory (gets data_aishell/)")
    parser.add_argument("--size", choices=sorted(SIZES), default="small",
                        help="tiny: ~100 utterances (tests); small: demo (~8 h train); full: >= 50 h")
    parser.add_argument("--nj", type=int, default=1, help="parallel processes (output does not depend on it)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (same seed, same bytes)")
    parser.add_argument("--text", default=None,
                        help=f"People's Daily 1998-01 tagged text (default {default_text_path()})")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    if args.nj < 1:
        logging.error("--nj must be at least 1, got %d", args.nj)
        return 2
    try:
        generate_corpus(args.out, size=args.size, seed=args.seed, nj=args.nj, text_path=args.text)
    except CorpusError as e:
        logging.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
