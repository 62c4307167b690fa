#!/usr/bin/env python3
"""Per-class punctuation precision/recall/F1 of a punctuation model dir on held-out text.

    python egs/aishell1/local/score_punc.py --model_dir exp/punc --text exp/punc/data/test.txt --out exp/punc/score.json

``--text``: punctuated lines (characters and the marks ，。？、; e.g. the ``data/test.txt`` that
funasr_lite.bin.train_punc holds out). Each line's characters, marks removed, go through
``Punctuator.punctuate_tokens`` (FunASR's windowed inference; the last character of a line always
gets a sentence end, as FunASR's does); the predicted mark after every character is compared with
the reference mark (funasr_lite.scoring.punctuation). ``--joined``: all lines as ONE text instead
(the long-form case: windows cross paragraph boundaries). Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from funasr_lite.data.punc_text import read_punctuated_lines
from funasr_lite.scoring.punctuation import punctuation_score_lines, punctuation_scores
from funasr_lite.models.punc import Punctuator
from funasr_lite.utils.fileio import atomic_open


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True, help="FunASR punctuation model dir")
    parser.add_argument("--text", required=True, help="punctuated reference lines")
    parser.add_argument("--out", default=None, help="JSON output (default: print only)")
    parser.add_argument("--joined", action="store_true", help="score all lines as one long text")
    parser.add_argument("--split_size", type=int, default=None, help="mini-sentence length (default: 20)")
    args = parser.parse_args(argv)
    try:
        punctuator = Punctuator.from_model_dir(args.model_dir, split_size=args.split_size)
        lines = read_punctuated_lines(args.text)
    except (OSError, ValueError) as e:
        print(f"score_punc.py: {e}", file=sys.stderr)
        return 1
    start = time.time()
    if args.joined:
        lines = [([t for tokens, _ in lines for t in tokens], [l for _, labels in lines for l in labels])]
    pairs = [(labels, punctuator.punctuate_tokens(tokens)) for tokens, labels in lines]
    scores = punctuation_scores(pairs)
    seconds = time.time() - start
    print(f"{args.model_dir} on {args.text}: {len(lines)} text(s), {sum(len(t) for t, _ in lines)} characters"
          f"{' (joined)' if args.joined else ''}, {seconds:.1f} s")
    print("\n".join(punctuation_score_lines(scores)))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with atomic_open(args.out) as f:
            json.dump({"model_dir": os.path.abspath(args.model_dir), "text": os.path.abspath(args.text),
                       "joined": args.joined, "texts": len(lines), "seconds": round(seconds, 2), "scores": scores},
                      f, ensure_ascii=False, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
