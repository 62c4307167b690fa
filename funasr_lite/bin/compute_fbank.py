"""Compute 80-dim Kaldi fbank for one wav.scp into a float32 ark + scp (one job of make_fbank.sh).

Usage:
  python -m funasr_lite.bin.compute_fbank --wav_scp wav.scp [--utt2speed utt2speed] \
      --out_ark raw_fbank.1.ark --out_scp raw_fbank.1.scp --out_utt2num_frames utt2num_frames.1 \
      [--resample true] [--channel N] [--dither 0] [--num_mel_bins 80]

Bad utterances are skipped with one WARNING line each and listed in <out_scp>.dropped.
Exit status 0 unless no utterance was given or every one was dropped.
"""

import argparse
import logging
import sys

import torch

from funasr_lite.data.datadir import DataDirError
from funasr_lite.frontend.fbank import extract_fbank_job
from funasr_lite.utils.cli import str2bool


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wav_scp", required=True, help="Kaldi wav.scp: utt path, or utt 'command |'")
    parser.add_argument("--utt2speed", default=None, help="optional 'utt factor' speed-perturbation file")
    parser.add_argument("--out_ark", required=True)
    parser.add_argument("--out_scp", required=True)
    parser.add_argument("--out_utt2num_frames", required=True)
    parser.add_argument("--sample_rate", type=int, default=16000, help="rate the features are computed at")
    parser.add_argument("--resample", type=str2bool, default=True, help="resample other rates (else drop them)")
    parser.add_argument("--channel", type=int, default=None, help="0-based channel of multichannel files")
    parser.add_argument("--dither", type=float, default=0.0, help="0 for decoding/CMVN; > 0 only for training")
    parser.add_argument("--num_mel_bins", type=int, default=80)
    parser.add_argument("--num_threads", type=int, default=1, help="torch threads (jobs run in parallel)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    log = logging.getLogger("compute_fbank")
    torch.set_num_threads(args.num_threads)
    try:
        summary = extract_fbank_job(
            args.wav_scp,
            args.out_ark,
            args.out_scp,
            args.out_utt2num_frames,
            utt2speed=args.utt2speed,
            sample_rate=args.sample_rate,
            resample=args.resample,
            channel=args.channel,
            num_mel_bins=args.num_mel_bins,
            dither=args.dither,
        )
    except (DataDirError, OSError) as e:
        log.error("%s", e)
        return 1
    log.info("%s: %s", args.wav_scp, summary.describe())
    if summary.total == 0:
        log.error("%s: no utterances", args.wav_scp)
        return 1
    if summary.written == 0:
        log.error("%s: every utterance was dropped (see %s.dropped)", args.wav_scp, args.out_scp)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
