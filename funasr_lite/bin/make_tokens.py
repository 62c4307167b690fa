r"""Build the token list (and the BPE model) from the TRAIN transcripts.

Usage: python -m funasr_lite.bin.make_tokens --text data/train/text --token_type char \
           --out_dir data/lang_char [--max_tokens 544]
Writes <out_dir>/tokens.txt (<blank> <s> </s>, sorted tokens, <unk>); for --token_type bpe
also <out_dir>/bpe.model and bpe.vocab (sentencepiece, trained on the given text only).
Prints the number of tokens.
"""

import argparse
import logging
import sys

from funasr_lite.data.tokenizer import make_token_list
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.make_tokens", __doc__)
    parser.add_argument("--text", required=True, help="Kaldi text file (utt words...) of the train set")
    parser.add_argument("--token_type", choices=["char", "bpe"], default="char", help="characters or sentencepiece BPE")
    parser.add_argument("--nbpe", type=int, default=500,
                        help="sentencepiece vocabulary size for --token_type bpe (an upper bound)")
    parser.add_argument("--max_tokens", type=int, default=None,
                        help="char lists: at most this many tokens (specials included), the most frequent "
                             "characters kept, the rest read as <unk> (Paraformer-tiny: 544)")
    parser.add_argument("--out_dir", required=True, help="e.g. data/lang_char")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        tokens = make_token_list(args.text, args.token_type, args.out_dir, args.nbpe, args.max_tokens)
    except (OSError, ValueError) as e:
        logging.error("%s", e)
        return 1
    logging.info("wrote %s/tokens.txt", args.out_dir)
    print(f"{len(tokens)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
