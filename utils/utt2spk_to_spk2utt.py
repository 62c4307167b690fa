#!/usr/bin/env python3
"""utt2spk -> spk2utt: `utt2spk_to_spk2utt.py [utt2spk|-] > spk2utt` (speakers and utterances sorted)."""
import argparse
import sys

from funasr_lite.data.datadir import DataDirError, read_kv, utt2spk_to_spk2utt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("utt2spk", nargs="?", default="-", help="file, or - for stdin (default)")
    args = parser.parse_args()
    path = "/dev/stdin" if args.utt2spk == "-" else args.utt2spk
    try:
        utt2spk = read_kv(path)
        for utt, spk in utt2spk.items():
            if len(spk.split()) != 1:
                raise DataDirError(f"{path}: utterance {utt!r}: speaker id with spaces: {spk!r}")
    except (DataDirError, OSError) as e:
        print(f"utt2spk_to_spk2utt.py: error: {e}", file=sys.stderr)
        return 1
    for spk, utts in utt2spk_to_spk2utt(utt2spk).items():
        sys.stdout.write(f"{spk} {' '.join(utts)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
