"""Calibrate a model's fire delay on a dev set: FunASR's timestamp paper sets it by hand (-1.5
frames, "fire-delay"); this measures it.

  python -m funasr_lite.bin.calibrate_timestamps --data_dir data/dev \
      --decode_dir exp/demo_bicif/decode_dev_greedy --model_dir exp/demo_bicif [--dry_run]

Reads the decode dir's ``1best_recog/{text,token,time_stamp}`` (decoded with the model's current
delay) and the data dir's ``char_timestamps``, measures the mean start error of the characters
recognised correctly (``%BIAS_COR``, positive = late), and writes
``timestamp_conf.time_shift_frames`` = current - bias / frame into the model's config.yaml (an exp
dir's, so the exported model dir carries it too; FunASR ignores the key). Calibrate on dev, report
on test (docs/timestamps.md).
"""

import os
import sys

from funasr_lite.data.datadir import DataDirError, read_kv
from funasr_lite.inference.model_dir import SHIFT_KEYS, ModelDirError, load_model_dir, timestamp_shift_frames
from funasr_lite.scoring.cer import compute_cer
from funasr_lite.scoring.timestamps import compute_timestamp_scores, load_char_timestamps
from funasr_lite.inference.writers import read_time_stamps, read_tokens
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.config import dump_config
from funasr_lite.utils.fileio import atomic_open
from funasr_lite.utils.log import setup_logging

MIN_CORRECT_CHARS = 100  # fewer: the mean is too noisy to calibrate on


def build_parser():
    parser = make_parser("funasr_lite.bin.calibrate_timestamps", __doc__)
    parser.add_argument("--data_dir", required=True, help="a data dir with text and char_timestamps (dev)")
    parser.add_argument("--decode_dir", required=True, help="its decode by the model (holds 1best_recog/)")
    parser.add_argument("--model_dir", required=True, help="the model or exp dir whose config.yaml gets the delay")
    parser.add_argument("--checkpoint", default=None, help="for an exp dir (only its frame length is read)")
    parser.add_argument("--timestamp_source", choices=("model", "cif"), default="model",
                        help="the signal the decode dir was decoded with (infer --timestamp_source)")
    parser.add_argument("--dry_run", action="store_true", help="print the delay, change nothing")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    try:
        loaded = load_model_dir(args.model_dir, args.checkpoint)
        recog = os.path.join(args.decode_dir, "1best_recog")
        result = compute_cer(read_kv(os.path.join(args.data_dir, "text")),
                             read_kv(os.path.join(recog, "text"), allow_empty_value=True))
        scores = compute_timestamp_scores(result, load_char_timestamps(os.path.join(args.data_dir, "char_timestamps")),
                                          read_tokens(os.path.join(recog, "token")),
                                          read_time_stamps(os.path.join(recog, "time_stamp")))
    except (ModelDirError, DataDirError, ValueError, OSError) as e:
        print(f"calibrate_timestamps: {e}", file=sys.stderr)
        return 1
    timing = scores.timing
    if timing.num_correct < MIN_CORRECT_CHARS:
        print(f"calibrate_timestamps: only {timing.num_correct} correct characters with times (< {MIN_CORRECT_CHARS})",
              file=sys.stderr)
        return 1
    bias_ms = timing.mean_start_bias_ms
    key = SHIFT_KEYS[args.timestamp_source]
    current = timestamp_shift_frames(loaded.config, loaded.files.config, args.timestamp_source)
    frame_ms = loaded.timestamp_frame_ms if args.timestamp_source == "model" else loaded.encoder_frame_ms
    shift = round(current - bias_ms / frame_ms, 2)
    print(f"start bias {bias_ms:+.1f} ms over {timing.num_correct} correct characters; frame {frame_ms:g} ms; "
          f"{key} {current:g} -> {shift:g}")
    if args.dry_run:
        return 0
    config = dict(loaded.config)
    config["timestamp_conf"] = {**(config.get("timestamp_conf") or {}), key: shift}
    with atomic_open(loaded.files.config) as f:
        f.write(dump_config(config))
    print(f"wrote timestamp_conf.{key}: {shift:g} into {loaded.files.config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
