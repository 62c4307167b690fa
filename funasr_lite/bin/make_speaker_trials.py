"""Speaker-verification lists of a data dir: a trial list (VoxCeleb's format) or held-out utterances.

    python -m funasr_lite.bin.make_speaker_trials trials --data_dir data/sv/eval --num_trials 4000 \\
        --seed 1 --out data/sv/eval/trials
    python -m funasr_lite.bin.make_speaker_trials heldout --data_dir data/train --per_speaker 8 --seed 1 \\
        --out data/sv/valid.list --out_rest data/sv/train.list

trials: ``label enroll_utt test_utt`` lines (1: same speaker, 0: different), half of each, spread
evenly over the speakers and speaker pairs, seeded (funasr_lite.data.speaker_trials).
heldout: ``per_speaker`` utterance ids of every speaker (seeded), one a line; ``--out_rest`` gets the
others (for utils/subset_data_dir.sh --utt-list).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from funasr_lite.data.datadir import read_kv
from funasr_lite.data.speaker_trials import heldout_utterances, make_trials, write_trials
from funasr_lite.utils.cli import HelpFormatter, make_parser
from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("make_speaker_trials")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.make_speaker_trials", __doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("trials", help="a balanced trial list", formatter_class=HelpFormatter)
    p.add_argument("--data_dir", required=True, help="data dir whose utt2spk gives the utterances and speakers")
    p.add_argument("--num_trials", type=int, default=4000, help="trials in all (half target, half nontarget)")
    p.add_argument("--seed", type=int, default=1, help="random seed of the draw")
    p.add_argument("--out", required=True, help="the trial list to write")
    p = sub.add_parser("heldout", help="utterances of every speaker to hold out of training",
                       formatter_class=HelpFormatter)
    p.add_argument("--data_dir", required=True, help="data dir whose utt2spk gives the utterances and speakers")
    p.add_argument("--per_speaker", type=int, default=8, help="utterances held out per speaker")
    p.add_argument("--seed", type=int, default=1, help="random seed of the draw")
    p.add_argument("--out", required=True, help="list of the held-out utterances")
    p.add_argument("--out_rest", default=None, help="also write the list of the other utterances here")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    try:
        utt2spk = read_kv(os.path.join(args.data_dir, "utt2spk"))
        if args.command == "trials":
            trials = make_trials(utt2spk, args.num_trials, args.seed)
            write_trials(args.out, trials)
            logger.info("%s: %d trials (%d target) over %d utterances of %d speakers of %s", args.out, len(trials),
                        sum(label for label, _, _ in trials), len(utt2spk), len(set(utt2spk.values())), args.data_dir)
        else:
            held = heldout_utterances(utt2spk, args.per_speaker, args.seed)
            with atomic_open(args.out) as f:
                f.writelines(f"{utt}\n" for utt in held)
            if args.out_rest:
                kept = set(held)
                with atomic_open(args.out_rest) as f:
                    f.writelines(f"{utt}\n" for utt in sorted(utt2spk) if utt not in kept)
            logger.info("%s: %d utterances held out (%d per speaker) of %d", args.out, len(held), args.per_speaker,
                        len(utt2spk))
    except (ValueError, OSError) as e:
        parser.exit(1, f"{parser.prog}: error: {e}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
