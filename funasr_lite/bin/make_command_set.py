"""Make the command-word set of the synthetic corpus (funasr_lite/data/synthetic/command_set.py).

  python -m funasr_lite.bin.make_command_set --corpus corpus --out data/commandword \
      [--size small --seed 1 --nj 2 --repeats train=4 test=2 --others train=1500 test=200]

Writes data/commandword/{cmd_train,cmd_dev,cmd_test} (Kaldi data dirs with utt2kind), commands.txt
and command_set.json; prints the summary.
"""

import json
import sys

from funasr_lite.data.synthetic.command_set import SPLITS, build_command_set
from funasr_lite.data.synthetic.corpus import CorpusError
from funasr_lite.data.synthetic.text import default_text_path
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def _per_split(values):
    """["train=4", "test=2"] -> {"train": 4, "test": 2}"""
    out = {}
    for item in values or []:
        split, _, count = item.partition("=")
        if split not in SPLITS or not count.isdigit():
            raise ValueError(f"{item!r}: expected <split>=<count> with split one of {', '.join(SPLITS)}")
        out[split] = int(count)
    return out


def build_parser():
    parser = make_parser("funasr_lite.bin.make_command_set", __doc__)
    parser.add_argument("--corpus", required=True, help="the corpus dir (holds data_aishell/)")
    parser.add_argument("--out", required=True, help="where the three data dirs and commands.txt go")
    parser.add_argument("--text", default=None, help="the tagged People's Daily text (default: set-up's copy)")
    parser.add_argument("--size", default="small", help="the corpus size (its voices say the set)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument("--repeats", nargs="*", default=None,
                        help="split=N: each voice says each command N times (default train=4 dev=1 test=2)")
    parser.add_argument("--others", nargs="*", default=None,
                        help="split=N: ordinary-sentence negatives (default train=1500 dev=60 test=200)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        summary = build_command_set(args.corpus, args.out, args.text or default_text_path(), args.size, args.seed,
                                    args.nj, _per_split(args.repeats), _per_split(args.others))
    except (CorpusError, OSError, ValueError) as e:
        print(f"make_command_set: {e}", file=sys.stderr)
        return 1
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
