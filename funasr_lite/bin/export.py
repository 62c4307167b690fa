"""Export a model dir to ONNX for onnxruntime, funasr-onnx and sherpa-onnx (after recipe stage 8).

Usage:
  python -m funasr_lite.bin.export --model_dir exp/paraformer/model_dir [--quantize] [--output_dir D]

Writes model.onnx (FunASR's interface: speech, speech_lengths -> logits, token_num; sherpa-onnx's
metadata), model_quant.onnx with --quantize (int8 dynamic MatMuls), tokens.json, tokens.txt
(sherpa's "symbol id" lines), config.yaml and am.mvn, next to the model dir's files unless
--output_dir is given (needed for a training exp dir). The exported graph is run once and
compared with the PyTorch model before any file is replaced. Details: docs/deploy.md.
"""

import argparse
import logging
import sys

from funasr_lite.export.onnx_export import OPSET_VERSION, export_onnx
from funasr_lite.inference.model_dir import ModelDirError
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("export")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.export", __doc__)
    parser.add_argument("--model_dir", required=True, help="model dir (or training exp dir with --output_dir)")
    parser.add_argument("--checkpoint", help="weights in an exp dir, e.g. model.avg10.pt")
    parser.add_argument("--output_dir", help="where to write (default: the model dir itself)")
    parser.add_argument("--quantize", action="store_true", help="also write model_quant.onnx (int8)")
    parser.add_argument("--opset", type=int, default=OPSET_VERSION, help="ONNX opset")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        written = export_onnx(args.model_dir, args.output_dir, args.checkpoint, args.quantize, args.opset)
    except (ModelDirError, OSError) as e:
        logger.error("%s", e)
        return 1
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
