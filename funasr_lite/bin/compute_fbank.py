r"""Compute Kaldi fbank for one wav.scp into a float32 ark + scp (one job of make_fbank.sh).

Usage:
  python -m funasr_lite.bin.compute_fbank --wav_scp wav.scp [--utt2speed utt2speed] \
      --out_ark raw_fbank.1.ark --out_scp raw_fbank.1.scp --out_utt2num_frames utt2num_frames.1 \
      [--config conf/demo.yaml] [--out_options fbank_options.1.json] [--resample true] [--channel N] [--dither 0] \
      [--max_failures N]
  python -m funasr_lite.bin.compute_fbank --config conf/demo.yaml --print_options   # the options, as JSON

The fbank options (fs, window, n_mels, frame_length, frame_shift) come from --config: a training
config or a model dir's config.yaml (its frontend_conf block), or a data dir's fbank.json;
without --config, FunASR's WavFrontend defaults (16 kHz, hamming, 80 bins, 25/10 ms).
Bad utterances are skipped with one WARNING line each and listed in <out_scp>.dropped
(``utt_id reason source: detail``; utils/make_fbank.sh gathers them in <data>/fbank.dropped).
Multichannel audio is averaged to mono (FunASR's default) unless --channel N picks one channel.
Exit status, as Kaldi's compute-fbank: 0 when some utterance was written (dropped ones are
counted in the log's summary line and listed); 1 when no utterance was given, every one was
dropped, or more than --max_failures were dropped (then nothing is written; 0: any is fatal).
"""

import argparse
import json
import logging
import sys

import torch

from funasr_lite.data.datadir import DataDirError
from funasr_lite.frontend.fbank import extract_fbank_job
from funasr_lite.frontend.wav_frontend import WavFrontend, write_fbank_options
from funasr_lite.utils.cli import make_parser, str2bool
from funasr_lite.utils.config import ConfigError, load_yaml
from funasr_lite.utils.failures import TooManyFailuresError
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.compute_fbank", __doc__)
    parser.add_argument("--wav_scp", help="Kaldi wav.scp: utt path, or utt 'command |'")
    parser.add_argument("--utt2speed", default=None, help="optional 'utt factor' speed-perturbation file")
    parser.add_argument("--out_ark")
    parser.add_argument("--out_scp")
    parser.add_argument("--out_utt2num_frames")
    parser.add_argument("--config", default=None,
                        help="YAML/JSON with a frontend_conf block (training or model-dir config.yaml), or a fbank.json")
    parser.add_argument("--out_options", default=None, help="also write the fbank options used (fbank.json format)")
    parser.add_argument("--print_options", action="store_true", help="print the fbank options as JSON and exit")
    parser.add_argument("--resample", type=str2bool, default=True, help="resample other rates (else drop them)")
    parser.add_argument("--channel", type=int, default=None,
                        help="0-based channel of multichannel files (default: the mean of the channels, as FunASR)")
    parser.add_argument("--max_failures", type=int, default=None,
                        help="fail (writing nothing) when more utterances are dropped (0: any is fatal; default: no limit)")
    parser.add_argument("--dither", type=float, default=0.0, help="0 for decoding/CMVN; > 0 only for training")
    parser.add_argument("--num_threads", type=int, default=1, help="torch threads (jobs run in parallel)")
    return parser


def frontend_from_file(path, dither: float = 0.0) -> WavFrontend:
    """The frontend (no CMVN) of a config with a frontend_conf block, or of a fbank.json."""
    if path is None:
        return WavFrontend(dither=dither)
    content = load_yaml(path)  # JSON is YAML
    conf = content.get("frontend_conf", content)
    if not isinstance(conf, dict):
        raise ConfigError(f"{path}: frontend_conf must be a mapping")
    return WavFrontend(conf, dither=dither, source=str(path))


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    log = logging.getLogger("compute_fbank")
    torch.set_num_threads(args.num_threads)
    try:
        frontend = frontend_from_file(args.config, args.dither)
    except (ConfigError, ValueError) as e:
        log.error("%s", e)
        return 1
    if args.print_options:
        print(json.dumps(frontend.fbank_options(), sort_keys=True))
        return 0
    missing = [name for name in ("wav_scp", "out_ark", "out_scp", "out_utt2num_frames") if not getattr(args, name)]
    if missing:
        parser.error("the following arguments are required: " + ", ".join("--" + name for name in missing))
    try:
        summary = extract_fbank_job(
            args.wav_scp,
            args.out_ark,
            args.out_scp,
            args.out_utt2num_frames,
            frontend,
            utt2speed=args.utt2speed,
            resample=args.resample,
            channel=args.channel,
            max_failures=args.max_failures,
        )
        if args.out_options:
            write_fbank_options(args.out_options, frontend.fbank_options())
    except (DataDirError, OSError, TooManyFailuresError) as e:
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
