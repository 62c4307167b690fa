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
from funasr_lite.utils.cli import HelpFormatter, make_parser


_PROG = {"validate": "validate_data_dir.sh", "fix": "fix_data_dir.sh", "perturb-speed": "perturb_data_dir_speed.sh",
         "combine": "combine_data.sh", "subset": "subset_data_dir.sh"}


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.data_dir_tools", __doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)

    p = command("validate", "check a data dir against the Kaldi contract (validate_data_dir.sh)")
    p.add_argument("--no-feats", action="store_true", help="do not require feats.scp")
    p.add_argument("--no-text", action="store_true", help="do not require text")
    p.add_argument("data_dir", help="the data dir")
    p = command("fix", "sort the files and keep the utterances present in all of them (fix_data_dir.sh)")
    p.add_argument("data_dir", help="the data dir (fixed in place; originals kept in .backup/)")
    p = command("perturb-speed", "a speed-perturbed copy of a data dir (perturb_data_dir_speed.sh)")
    p.add_argument("factor", help="speed factor, e.g. 0.9")
    p.add_argument("src", help="source data dir")
    p.add_argument("dst", help="new data dir")
    p = command("combine", "concatenate data dirs (combine_data.sh)")
    p.add_argument("dst", help="new data dir")
    p.add_argument("srcs", nargs="+", help="source data dirs")
    p = command("subset", "a subset of a data dir (subset_data_dir.sh)")
    p.add_argument("--first", type=int, help="the first N utterances")
    p.add_argument("--utt-list", help="a file of utterance ids to keep")
    p.add_argument("src", help="source data dir")
    p.add_argument("dst", help="new data dir")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
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
