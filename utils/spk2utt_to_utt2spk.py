#!/usr/bin/env python3
"""spk2utt -> utt2spk: `spk2utt_to_utt2spk.py [spk2utt|-] > utt2spk` (sorted by utterance)."""
import argparse
import sys

from funasr_lite.data.datadir import DataDirError, read_spk2utt, spk2utt_to_utt2spk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("spk2utt", nargs="?", default="-", help="file, or - for stdin (default)")
    args = parser.parse_args()
    path = "/dev/stdin" if args.spk2utt == "-" else args.spk2utt
    try:
        utt2spk = spk2utt_to_utt2spk(read_spk2utt(path))
    except (DataDirError, OSError) as e:
        print(f"spk2utt_to_utt2spk.py: error: {e}", file=sys.stderr)
        return 1
    for utt in sorted(utt2spk, key=lambda u: u.encode("utf-8")):
        sys.stdout.write(f"{utt} {utt2spk[utt]}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
