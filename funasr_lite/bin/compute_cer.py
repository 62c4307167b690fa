r"""Character error rate of a decode, with Kaldi-style reports (and timestamp accuracy).

Usage:
  python -m funasr_lite.bin.compute_cer --ref data/test/text \
      --hyp exp/x/decode_test/1best_recog/text --out_dir exp/x/decode_test \
      [--ref_timestamps data/test/char_timestamps --hyp_timestamps exp/x/decode_test/1best_recog/time_stamp]

Writes <out_dir>/cer.txt (``%CER x.xx [ errs / chars, I ins, D del, S sub ]``), per_utt,
errors.txt and, with timestamps, timestamp.txt; prints the cer.txt line, then the timestamp.txt
lines. timestamp.txt holds, in ms:
  %AAS       mean absolute start/end shift over correct + substituted characters;
  %AAS_COR   the same over the characters aligned as correct only, with their count and the
             share of the reference characters they make up;
  %BIAS_COR  the mean signed error (hyp - ref; positive = late) over those same characters.
Spaces are removed before scoring; reference utterances without a hypothesis count as all
deletions. See funasr_lite.scoring.cer for the file formats. With --hotword_list, hotword.txt holds
the hotwords' recall and precision and the CER outside (U-CER) and inside (B-CER) them
(funasr_lite.scoring.hotword). With --command_list, command.txt (and command.json) hold the command
recogniser's figures: command accuracy, and false accepts of the negatives, per kind with --utt2kind
(funasr_lite.scoring.commands).
"""

import argparse
import logging
import os
import sys

from funasr_lite.data.datadir import DataDirError
from funasr_lite.scoring.decode_dir import score_decode_dir
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.compute_cer", __doc__)
    parser.add_argument("--ref", required=True, help="reference Kaldi text (utt transcript)")
    parser.add_argument("--hyp", required=True, help="hypothesis text, e.g. 1best_recog/text")
    parser.add_argument("--out_dir", required=True, help="where cer.txt, per_utt, errors.txt go")
    parser.add_argument("--ref_timestamps", default=None, help="ground-truth char_timestamps of the data dir")
    parser.add_argument("--hyp_timestamps", default=None, help="1best_recog/time_stamp")
    parser.add_argument("--hyp_token", default=None, help="1best_recog/token (default: beside --hyp_timestamps)")
    parser.add_argument("--hotword_list", default=None,
                        help="a hotword list (one per line): also write hotword.txt, the hotwords' recall and "
                             "precision and the CER outside and inside them (funasr_lite/scoring/hotword.py)")
    parser.add_argument("--command_list", default=None,
                        help="a command list (one per line): also write command.txt/command.json, the command "
                             "accuracy and the negatives' false accepts (funasr_lite/scoring/commands.py)")
    parser.add_argument("--utt2kind", default=None,
                        help="with --command_list: utt -> kind of each utterance (command set: command, near_miss, "
                             "other), false accepts reported per kind")
    return parser


def _write_command_score(args, log) -> bool:
    import json

    from funasr_lite.data.datadir import read_kv
    from funasr_lite.scoring.commands import score_commands
    from funasr_lite.utils.fileio import atomic_open

    try:
        with open(args.command_list, encoding="utf-8") as f:
            commands = [line.strip() for line in f if line.strip()]
        kinds = read_kv(args.utt2kind) if args.utt2kind else None
        score = score_commands(read_kv(args.ref), read_kv(args.hyp, allow_empty_value=True), commands, kinds)
    except (DataDirError, ValueError, OSError) as e:
        log.error("%s", e)
        return False
    with atomic_open(os.path.join(args.out_dir, "command.txt")) as f:
        f.write("\n".join([f"# {len(commands)} commands from {args.command_list}", *score.lines()]) + "\n")
    with atomic_open(os.path.join(args.out_dir, "command.json")) as f:
        json.dump(score.as_dict(), f, indent=1)
    for line in score.lines():
        print(line)
    return True


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    log = logging.getLogger("compute_cer")
    if (args.ref_timestamps is None) != (args.hyp_timestamps is None):
        log.error("--ref_timestamps and --hyp_timestamps go together")
        return 1
    try:
        result = score_decode_dir(args.ref, args.hyp, args.out_dir, args.ref_timestamps, args.hyp_timestamps,
                                  args.hyp_token)
    except (DataDirError, ValueError, OSError) as e:
        log.error("%s", e)
        return 1
    print(result.cer_line())
    for line in result.timestamp_lines or []:
        print(line)
    if args.hotword_list:
        from funasr_lite.data.datadir import read_kv
        from funasr_lite.data.hotwords import hotword_units
        from funasr_lite.scoring.hotword import score_hotwords
        from funasr_lite.utils.fileio import atomic_open

        try:
            words = ["".join(units) for units in hotword_units(args.hotword_list)]
            score = score_hotwords(read_kv(args.ref), read_kv(args.hyp, allow_empty_value=True), words)
        except (DataDirError, ValueError, OSError) as e:
            log.error("%s", e)
            return 1
        with atomic_open(os.path.join(args.out_dir, "hotword.txt")) as f:
            f.write("\n".join([f"# {len(words)} hotwords from {args.hotword_list}", *score.lines()]) + "\n")
        for line in score.lines():
            print(line)
    if args.command_list and not _write_command_score(args, log):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
