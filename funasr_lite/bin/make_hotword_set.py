"""Make the hotword test set of the synthetic corpus (funasr_lite/data/synthetic/hotword_set.py).

  python -m funasr_lite.bin.make_hotword_set --corpus corpus --train_text data/train/text \
      --out data/test_hotword [--size small --seed 1 --nj 2 --num_hotwords 200 --list_sizes 200 1000 4000]
"""

import sys

from funasr_lite.data.synthetic.corpus import CorpusError
from funasr_lite.data.synthetic.hotword_set import build_hotword_set
from funasr_lite.data.synthetic.text import default_text_path
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser():
    parser = make_parser("funasr_lite.bin.make_hotword_set", __doc__)
    parser.add_argument("--corpus", required=True, help="the corpus dir (holds data_aishell/)")
    parser.add_argument("--train_text", required=True, help="the train split's Kaldi text: its words are not hotwords")
    parser.add_argument("--out", required=True, help="the data dir to write")
    parser.add_argument("--text", default=None, help="the tagged People's Daily text (default: set-up's copy)")
    parser.add_argument("--size", default="small", help="the corpus size (its test voices say the set)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--nj", type=int, default=2)
    parser.add_argument("--num_hotwords", type=int, default=200)
    parser.add_argument("--list_sizes", type=int, nargs="+", default=[200, 1000, 4000])
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        summary = build_hotword_set(args.corpus, args.train_text, args.out, args.text or default_text_path(),
                                    args.size, args.seed, args.nj, args.num_hotwords, args.list_sizes)
    except (CorpusError, OSError) as e:
        print(f"make_hotword_set: {e}", file=sys.stderr)
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
