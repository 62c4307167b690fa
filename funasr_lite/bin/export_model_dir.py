"""Export a training exp dir as a FunASR-layout model dir (recipe stage 8).

Usage:
  python -m funasr_lite.bin.export_model_dir --exp_dir exp/paraformer --checkpoint model.avg10.pt \\
      --out_dir exp/paraformer/model_dir

The out dir gets config.yaml (relative file names, dither 0), model.pt (a plain state dict),
am.mvn and tokens.txt (+ bpe.model for BPE). The exp dir is checked first (token list, am.mvn,
config and weights must agree) and the new dir is loaded back before it replaces out_dir, so
out_dir is never half written. funasr_lite.bin.infer --model_dir and FunASR's AutoModel read it.

A speaker exp dir (funasr_lite.bin.train_speaker) gives a speaker model dir instead: config.yaml
(sv.yaml's model keys and the speakers) and model.pt of --checkpoint (default: the exp dir's
model.pt; model.init.pt: the untrained weights), which funasr_lite.SpeakerVerifier loads.
"""

import argparse
import logging
import sys

from funasr_lite.export.model_dir import export_model_dir
from funasr_lite.export.speaker_model_dir import export_speaker_model_dir, is_speaker_dir
from funasr_lite.inference.model_dir import ModelDirError
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("export_model_dir")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.export_model_dir", __doc__)
    parser.add_argument("--exp_dir", required=True, help="training exp dir (config.yaml + checkpoints)")
    parser.add_argument("--checkpoint", help="weights in the exp dir, e.g. model.avg10.pt (default: the only "
                                             "model.avg*.pt, else the best epoch of best.json; a speaker "
                                             "exp dir: its model.pt)")
    parser.add_argument("--out_dir", required=True, help="the model dir to write")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        if is_speaker_dir(args.exp_dir):
            export_speaker_model_dir(args.exp_dir, args.out_dir, args.checkpoint)
        else:
            export_model_dir(args.exp_dir, args.out_dir, args.checkpoint)
    except (ModelDirError, OSError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
