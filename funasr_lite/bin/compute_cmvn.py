r"""Global CMVN statistics of a feats.scp -> am.mvn (tiled for LFR) and cmvn.json.

Usage:
  python -m funasr_lite.bin.compute_cmvn --feats_scp data/train/feats.scp \
      --out_mvn exp/am.mvn --out_json exp/cmvn.json [--lfr_m 7]

Statistics are over raw (e.g. 80-dim) frames, which must be computed with dither 0; am.mvn
holds them tiled lfr_m times (560 dims for m=7), the layout of LFR frames (see
funasr_lite.frontend.cmvn for why this matches statistics of LFR frames up to edge effects).
"""

import argparse
import logging
import sys

from funasr_lite.data.datadir import DataDirError
from funasr_lite.frontend.cmvn import (
    DEFAULT_VAR_FLOOR,
    CmvnError,
    accumulate_feats_scp,
    tile_for_lfr,
    write_am_mvn,
    write_cmvn_json,
)
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.compute_cmvn", __doc__)
    parser.add_argument("--feats_scp", required=True, help="feats.scp of the training set (raw fbank)")
    parser.add_argument("--out_mvn", required=True, help="Kaldi nnet1 am.mvn (shift = -mean, scale = 1/std)")
    parser.add_argument("--out_json", required=True, help="cmvn.json: mean, istd, frame count, raw sums")
    parser.add_argument("--lfr_m", type=int, default=7, help="tile statistics this many times (1: no LFR)")
    parser.add_argument("--dim", type=int, default=None, help="expected feature dim (default: first utterance)")
    parser.add_argument("--var_floor", type=float, default=DEFAULT_VAR_FLOOR, help="variance floor before 1/std")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    log = logging.getLogger("compute_cmvn")
    if args.lfr_m < 1:
        log.error("--lfr_m must be >= 1, got %d", args.lfr_m)
        return 1
    try:
        stats, summary = accumulate_feats_scp(args.feats_scp, expected_dim=args.dim)
        if stats.frame_count == 0:
            log.error("%s: no usable frames (%s)", args.feats_scp, summary.describe())
            return 1
        shift, scale = stats.shift_scale(args.var_floor)
        write_am_mvn(args.out_mvn, tile_for_lfr(shift, args.lfr_m), tile_for_lfr(scale, args.lfr_m))
        write_cmvn_json(args.out_json, stats, args.var_floor)
    except (DataDirError, CmvnError, OSError) as e:
        log.error("%s", e)
        return 1
    log.info(
        "%s: %s; %d frames of dim %d -> %s (%d dims), %s",
        args.feats_scp, summary.describe(), stats.frame_count, stats.dim,
        args.out_mvn, stats.dim * args.lfr_m, args.out_json,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
