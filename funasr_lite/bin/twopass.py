r"""2-pass recognition of recordings fed as a live stream (docs/streaming.md#2-pass): streaming
partials, then each VAD segment re-decoded by an offline model (punctuated if given).

  python -m funasr_lite.bin.twopass --online_model_dir STREAMING --offline_model_dir OFFLINE \
      [--punc_model_dir PUNC] [--vad_model_dir VAD] --wav a.wav b.wav [--piece_ms 60] [--output_dir D]

Each file is fed in ``--piece_ms`` pieces as a live source would. Prints one JSON event a line
(``{"key", "mode": "2pass-online"|"2pass-offline", "text", ...}``); with ``--output_dir`` also
writes ``D/events.jsonl`` and ``D/text`` (each recording's offline segment texts joined). A file
that cannot be read is named and skipped (exit 3); the others are done.
"""

import json
import os
import sys

import numpy as np

from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.failures import EXIT_SOME_FAILED
from funasr_lite.utils.log import setup_logging


def build_parser():
    parser = make_parser("funasr_lite.bin.twopass", __doc__)
    parser.add_argument("--online_model_dir", required=True, help="a ParaformerStreaming model dir (or exp dir)")
    parser.add_argument("--offline_model_dir", required=True, help="an offline Paraformer/BiCif/SeACo model dir")
    parser.add_argument("--punc_model_dir", default=None, help="a CT-Transformer punctuation model dir")
    parser.add_argument("--vad_model_dir", default=None, help="an FSMN-VAD dir (default: the released one)")
    parser.add_argument("--wav", nargs="+", required=True, help="recordings")
    parser.add_argument("--piece_ms", type=float, default=60.0, help="audio per call (FunASR's clients send 60 ms)")
    parser.add_argument("--max_end_silence_time", type=int, default=None,
                        help="fixed VAD end silence (ms); default: FunASR's streaming schedule")
    parser.add_argument("--output_dir", default=None)
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging()
    import logging

    from funasr_lite.api import TwoPass
    from funasr_lite.inference.speech2text import ItemError, item_waveform, items_from_wav_files

    logger = logging.getLogger("twopass")
    try:
        two_pass = TwoPass.from_model_dirs(args.online_model_dir, args.offline_model_dir, args.vad_model_dir,
                                           args.punc_model_dir, args.device)
    except (ValueError, OSError) as e:
        logger.error("%s", e)
        return 1
    rate = two_pass.online.sample_rate
    piece = max(1, int(rate * args.piece_ms / 1000))
    events_file = texts = None
    if args.output_dir:
        os.makedirs(args.output_dir, exist_ok=True)
        events_file = open(os.path.join(args.output_dir, "events.jsonl"), "w", encoding="utf-8")
        texts = {}
    failed = 0
    try:
        for item in items_from_wav_files(args.wav):
            key = item.key
            try:
                audio = item_waveform(two_pass.online.loaded.frontend, item)
            except ItemError as e:
                logger.warning("%s skipped: %s", item.value, e)
                failed += 1
                continue
            session = two_pass.stream(max_end_silence_time=args.max_end_silence_time)
            for start in range(0, max(audio.size, 1), piece):
                final = start + piece >= audio.size
                for event in session.feed(audio[start:start + piece], is_final=final):
                    line = json.dumps({"key": key, **event}, ensure_ascii=False)
                    print(line, flush=True)
                    if events_file is not None:
                        events_file.write(line + "\n")
            if texts is not None:
                texts[key] = "".join(segment["text"] for segment in session.segments)
    finally:
        if events_file is not None:
            events_file.close()
    if texts is not None:
        with open(os.path.join(args.output_dir, "text"), "w", encoding="utf-8") as f:
            f.writelines(f"{key} {text}\n" for key, text in sorted(texts.items()))
    if failed:
        logger.warning("decoded %d, failed %d", len(args.wav) - failed, failed)
        return EXIT_SOME_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
