"""Data-dir tools behind the Kaldi-style shell scripts in utils/:

    python -m funasr_lite.bin.data_dir_tools validate [--no-feats] [--no-text] <data-dir>  (validate_data_dir.sh)
    python -m funasr_lite.bin.data_dir_tools fix <data-dir>                                 (fix_data_dir.sh)
    python -m funasr_lite.bin.data_dir_tools perturb-speed <factor> <src> <dst>             (perturb_data_dir_speed.sh)
    python -m funasr_lite.bin.data_dir_tools combine <dst> <src>...                         (combine_data.sh)
    python -m funasr_lite.bin.data_dir_tools subset (--first N | --utt-list F) <src> <dst>  (subset_data_dir.sh)

Messages go to stderr prefixed with the shell script's name; exit status 1 on any problem.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from funasr_lite.data.datadir import DataDirError, shorten_list
from funasr_lite.data.datadir_ops import combine_data_dirs, perturb_data_dir_speed, subset_data_dir
from funasr_lite.data.fix import fix_data_dir
from funasr_lite.data.validate import validate_data_dir


_PROG = {"validate": "validate_data_dir.sh", "fix": "fix_data_dir.sh", "perturb-speed": "perturb_data_dir_speed.sh",
         "combine": "combine_data.sh", "subset": "subset_data_dir.sh"}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m funasr_lite.bin.data_dir_tools",
                                     description="Data-dir tools behind utils/*_data_dir.sh.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("validate")
    p.add_argument("--no-feats", action="store_true")
    p.add_argument("--no-text", action="store_true")
    p.add_argument("data_dir")
    p = sub.add_parser("fix")
    p.add_argument("data_dir")
    p = sub.add_parser("perturb-speed")
    p.add_argument("factor")
    p.add_argument("src")
    p.add_argument("dst")
    p = sub.add_parser("combine")
    p.add_argument("dst")
    p.add_argument("srcs", nargs="+")
    p = sub.add_parser("subset")
    p.add_argument("--first", type=int)
    p.add_argument("--utt-list")
    p.add_argument("src")
    p.add_argument("dst")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _build_parser().parse_args(argv)
    prog = _PROG[args.command]

    def say(message: str) -> None:
        print(f"{prog}: {message}", file=sys.stderr)

    try:
        if args.command == "validate":
            problems = validate_data_dir(args.data_dir, require_feats=not args.no_feats,
                                         require_text=not args.no_text)
            if problems:
                say(f"{args.data_dir}: {len(problems)} problem(s):")
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
            say(f"{args.data_dir}: valid")
        elif args.command == "fix":
            report = fix_data_dir(args.data_dir)
            for note in report.notes:
                say(note)
            say(report.summary(args.data_dir))
        elif args.command == "perturb-speed":
            n = perturb_data_dir_speed(args.src, args.dst, args.factor)
            say(f"{args.src} -> {args.dst}: {n} utterances at speed {args.factor}")
        elif args.command == "combine":
            n, skipped = combine_data_dirs(args.dst, args.srcs)
            for name in skipped:
                say(f"warning: {name} not combined: some sources lack it")
            say(f"{' + '.join(args.srcs)} -> {args.dst}: {n} utterances")
        elif args.command == "subset":
            n, missing = subset_data_dir(args.src, args.dst, first=args.first, utt_list=args.utt_list)
            if missing:
                say(f"warning: {len(missing)} listed utterance(s) not in {args.src}, skipped: {shorten_list(missing)}")
            say(f"{args.src} -> {args.dst}: {n} utterances")
    except (DataDirError, OSError) as e:
        say(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
