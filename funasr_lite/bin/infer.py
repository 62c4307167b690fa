r"""Decode with a Paraformer model dir (ours, FunASR's/ModelScope's) or a training exp dir.

Usage:
  python -m funasr_lite.bin.infer --model_dir DIR --data_dir data/test --output_dir exp/x/decode_test
  python -m funasr_lite.bin.infer --exp_dir exp/x --checkpoint model.avg10.pt --wav_scp wav.scp --output_dir D
  python -m funasr_lite.bin.infer --model_dir DIR --wav a.wav b.wav          # prints "key text" lines
  python -m funasr_lite.bin.infer --model_dir DIR --audio https://host/x.wav  # any SpeechRecognizer() input
  python -m funasr_lite.bin.infer --model_dir DIR --backend onnx [--quantized] --wav a.wav  # after bin.export
  python -m funasr_lite.bin.infer --model_dir DIR --vad_model_dir VAD --punc_model_dir PUNC \
      --wav meeting.wav --output_dir D          # long recordings: + 1best_recog/sentences, srt/
  python -m funasr_lite.bin.infer --model_dir STREAMING_DIR --streaming --data_dir data/test \
      --output_dir D [--piece_ms 600 --chunk_size 0,10,5]   # + D/partials.jsonl, D/latency.json

Parallel jobs, the Kaldi way (egs/aishell1/run.sh stage 6): split the data dir, decode each part
with a plain infer, merge the parts by their keys (no model needed):
  utils/split_data.sh data/test 4 D/split4                             # -> D/split4/{1..4}/
  $decode_cmd JOB=1:4 D/log/decode.JOB.log python -m funasr_lite.bin.infer --model_dir DIR \
      --data_dir D/split4/JOB --output_dir D/split4/JOB               # -> D/split4/JOB/1best_recog
  python -m funasr_lite.bin.infer --merge D/split4 --output_dir D       # -> D/1best_recog

Bad inputs are skipped, named and counted (README "Bad input: skip, name, count"): an utterance
that cannot be read or decoded is logged, listed in <output_dir>/1best_recog/failed
(utt_id<TAB>source<TAB>reason) and left out of the other files; the log ends with
"decoded N, failed M". --max_failures N stops at the (N+1)-th (0: any failure is fatal); the
default is no limit, as Kaldi's compute-fbank. Multichannel audio is averaged to mono (FunASR's
default) unless --channel N picks one channel.

Exit status: 0 every utterance decoded; 3 finished, outputs written, but some utterances failed
(see 1best_recog/failed; also after --merge when a job's failed list is merged); 1 an error,
nothing (new) written (bad model or options, --max_failures exceeded, a merge refused); 2 usage.

Output: <output_dir>/1best_recog/{text,token,score,time_stamp,rtf[,failed]}. Decoding never dithers;
a data dir is read from feats.scp when it has one (its fbank.json must match the model's
frontend_conf), else from wav.scp.
"""

import argparse
import logging
import os
import sys

import torch

from funasr_lite.inference.model_dir import ModelDirError, load_model_dir
from funasr_lite.inference.onnx_backend import BACKENDS, load_for_backend
from funasr_lite.inference.speech2text import (
    DECODE_MODES,
    TIMESTAMP_SOURCES,
    UNIASR_MODES,
    DecodeError,
    DecodeOptions,
    Speech2Text,
    decode_to_dir,
    items_from_data_dir,
    items_from_wav_files,
    items_from_wav_scp,
    merge_split_dirs,
    summarize,
)
from funasr_lite.inference.writers import FAILED_FILE, write_1best_recog
from funasr_lite.utils.cli import make_parser
from funasr_lite.utils.failures import EXIT_SOME_FAILED, FailureLog
from funasr_lite.utils.log import setup_logging

logger = logging.getLogger("infer")


def build_parser() -> argparse.ArgumentParser:
    parser = make_parser("funasr_lite.bin.infer", __doc__)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--model_dir", help="model dir: config.yaml, model.pt|model.pb, am.mvn, tokens.{txt,json}")
    model.add_argument("--exp_dir", help="training exp dir (config.yaml + checkpoints); same as --model_dir")
    parser.add_argument("--checkpoint", help="weights file in the dir (e.g. model.avg10.pt) or a path")
    inputs = parser.add_mutually_exclusive_group()
    inputs.add_argument("--data_dir", help="Kaldi data dir (feats.scp preferred, else wav.scp)")
    inputs.add_argument("--wav_scp", help="a wav.scp")
    inputs.add_argument("--wav", nargs="+", help="audio files (key = file name without extension)")
    inputs.add_argument("--audio", nargs="+", help="any SpeechRecognizer() input: path, http(s) URL, *.scp, *.pcm")
    parser.add_argument("--audio_fs", type=int, default=None, help="sample rate of raw PCM input (--audio)")
    parser.add_argument("--output_dir", help="write <output_dir>/1best_recog/ (without: print 'key text')")
    parser.add_argument("--decode_mode", choices=DECODE_MODES, default="greedy")
    parser.add_argument("--beam_size", type=int, default=10)
    parser.add_argument("--ctc_weight", type=float, default=0.0, help="beam: CTC prefix score weight")
    parser.add_argument("--lm_dir", help="beam: LM exp dir (config.yaml + model.avg<N>.pt, or model.pt) for shallow fusion")
    parser.add_argument("--lm_weight", type=float, default=0.0, help="beam: LM weight")
    parser.add_argument("--length_bonus", type=float, default=0.0, help="beam: score added per token")
    parser.add_argument("--batch_bins", type=int, default=20000,
                        help="padded model-input frames per batch (a longer utterance is decoded alone)")
    parser.add_argument("--max_frames", type=int, default=6000,
                        help="refuse longer utterances (model-input frames; 6000 = 6 min at LFR 6)")
    parser.add_argument("--bucket_size", type=int, default=256, help="utterances sorted by length together")
    parser.add_argument("--no_timestamps", action="store_true", help="do not write time_stamp")
    parser.add_argument("--hotword", help="hotwords (SeacoParaformer): words separated by spaces, a .txt file "
                        "(one per line) or a URL of one (docs/hotwords.md)")
    parser.add_argument("--nfilter", type=int, default=50,
                        help="hotwords: attention-score filtering keeps this many (0: all)")
    parser.add_argument("--seaco_weight", type=float, default=1.0,
                        help="hotwords: 1 = FunASR's switch to the bias head where it fires; < 1 blends")
    parser.add_argument("--hotword_score", type=float, default=0.0,
                        help="hotwords, any model: beam search bonus per token of a complete hotword "
                             "(--decode_mode beam; 0: off; docs/hotwords.md)")
    parser.add_argument("--hotword_topk", type=int, default=0,
                        help="hotword boost: search a hotword's next token only where it is among the decoder's "
                             "top k (0: wherever; faster with long lists)")
    parser.add_argument("--decoding_model", choices=UNIASR_MODES, default="normal",
                        help="UniASR: fast (pass 1), normal (pass 2), offline (pass 2, its second chunk configuration)")
    parser.add_argument("--token_num_relax", type=int, default=5, help="UniASR: search up to int(CIF count) + this")
    parser.add_argument("--timestamp_source", choices=TIMESTAMP_SOURCES, default="model",
                        help="model: the model's own (BiCifParaformer: its upsampled head, 20 ms); "
                             "cif: the CIF fires (60 ms), e.g. to compare a BiCif model's two (docs/timestamps.md)")
    parser.add_argument("--channel", type=int, default=None,
                        help="0-based channel of multichannel audio (default: the mean of the channels, as FunASR)")
    parser.add_argument("--max_failures", type=int, default=None,
                        help="stop with an error after this many unusable utterances (0: any is fatal; "
                             "default: no limit, skip and list them in 1best_recog/failed)")
    parser.add_argument("--merge", metavar="SPLIT_DIR",
                        help="merge SPLIT_DIR/{1..N}/1best_recog (utils/split_data.sh parts) into output_dir")
    longform = parser.add_argument_group("long recordings (funasr_lite/inference/longform.py; docs/longform.md)")
    longform.add_argument("--vad_model_dir", help="FunASR FSMN-VAD model dir: each input is a recording of any "
                          "length, cut by VAD (writes also 1best_recog/sentences and srt/)")
    longform.add_argument("--punc_model_dir", help="FunASR CT-Transformer punctuation model dir")
    longform.add_argument("--batch_size_s", type=float, default=300.0, help="padded seconds of segments per batch")
    longform.add_argument("--max_segment_s", type=float, default=60.0, help="longer VAD segments are cut")
    streaming = parser.add_argument_group("streaming (a ParaformerStreaming model; funasr_lite/inference/streaming.py; "
                                          "docs/streaming.md)")
    streaming.add_argument("--streaming", action="store_true",
                           help="feed each utterance's audio (wav.scp, even beside feats.scp) through a stream in "
                                "pieces of --piece_ms; also write partials.jsonl and latency.json")
    streaming.add_argument("--piece_ms", type=float, default=600.0, help="audio per feed() call, as a live source")
    streaming.add_argument("--chunk_size", default="0,10,5",
                           help="left,step,look-ahead LFR frames (FunASR's chunk_size; 0,8,4 = 480 ms steps)")
    streaming.add_argument("--encoder_chunk_look_back", type=int, default=4, help="steps of encoder K/V kept (-1: all)")
    streaming.add_argument("--decoder_chunk_look_back", type=int, default=1, help="steps of decoder K/V kept")
    streaming.add_argument("--tail", choices=("funasr", "pad"), default="funasr",
                           help="a final piece under one LFR frame: funasr drops it (FunASR's tail chunk), pad decodes it")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--num_threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch, or onnx: onnxruntime on model.onnx of a dir made by funasr_lite.bin.export "
                             "(greedy only; docs/deploy.md)")
    parser.add_argument("--quantized", action="store_true",
                        help="int8: onnx reads model_quant.onnx; torch quantizes the model's Linears (CPU)")
    parser.add_argument("--onnx_threads", type=int, default=1, help="onnx: onnxruntime intra-op threads")
    return parser


def _items(args, frontend=None):
    if args.data_dir:
        items = items_from_data_dir(args.data_dir, frontend)
    elif args.wav_scp:
        items = items_from_wav_scp(args.wav_scp)
    else:
        items = items_from_wav_files(args.wav)
    if not items:  # as compute_fbank: an empty list is a mistake, not a run that decoded nothing
        raise DecodeError(f"{args.data_dir or args.wav_scp}: no utterances to decode")
    for item in items:
        item.channel = args.channel
    return items


def _print_results(results) -> None:
    for result in results:
        print(f"{result['key']} {result['text']}")


def _decode_streaming(args, model_dir) -> int:
    """infer --streaming: each utterance through a stream (funasr_lite.inference.streaming)."""
    import json

    from funasr_lite.inference.streaming import decode_streaming, latency_summary
    from funasr_lite.utils.fileio import atomic_open

    if args.backend != "torch" or args.audio:
        raise DecodeError("--streaming runs the torch backend on --data_dir, --wav_scp or --wav")
    try:
        chunk_size = tuple(int(v) for v in args.chunk_size.split(","))
    except ValueError:
        raise DecodeError(f"--chunk_size {args.chunk_size!r}: give three integers, e.g. 0,10,5") from None
    loaded = load_model_dir(model_dir, args.checkpoint, args.device)
    if args.data_dir:  # a stream reads audio: wav.scp, even where feats.scp is there too
        wav_scp = os.path.join(args.data_dir, "wav.scp")
        if not os.path.isfile(wav_scp):
            raise DecodeError(f"{args.data_dir}: --streaming needs wav.scp")
        items = items_from_wav_scp(wav_scp)
        for item in items:
            item.channel = args.channel
    else:
        items = _items(args)
    options = dict(chunk_size=chunk_size, encoder_chunk_look_back=args.encoder_chunk_look_back,
                   decoder_chunk_look_back=args.decoder_chunk_look_back, tail=args.tail)
    failures = FailureLog(args.max_failures, what="utterance")
    results = decode_streaming(loaded, items, args.piece_ms, failures, **options)
    if args.output_dir:
        recog_dir = write_1best_recog(args.output_dir, results, failures.failures)
        with atomic_open(os.path.join(args.output_dir, "partials.jsonl")) as f:
            for result in results:
                for index, partial in enumerate(result["partials"]):
                    f.write(json.dumps({"key": result["key"], "call": index, **partial}, ensure_ascii=False) + "\n")
        summary = latency_summary(results, args.piece_ms, options)
        with atomic_open(os.path.join(args.output_dir, "latency.json")) as f:
            json.dump(summary, f, indent=1)
        logger.info("%s -> %s; latency: finish %s ms, RTF %s", summarize(results), recog_dir,
                    summary["finish_ms"], summary["rtf"])
    else:
        _print_results(results)
    (logger.warning if len(failures) else logger.info)("%s", failures.summary(len(results)))
    return EXIT_SOME_FAILED if len(failures) else 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging()
    torch.set_num_threads(max(1, args.num_threads))
    model_dir = args.model_dir or args.exp_dir
    given_inputs = [name for name in ("data_dir", "wav_scp", "wav", "audio") if getattr(args, name)]
    if args.merge:
        if given_inputs or model_dir or not args.output_dir:
            parser.error("--merge SPLIT_DIR takes only --output_dir (the parts' keys come from SPLIT_DIR)")
    elif not given_inputs:
        parser.error("give one of --data_dir, --wav_scp, --wav, --audio (or --merge SPLIT_DIR)")
    if args.max_failures is not None and args.max_failures < 0:
        parser.error(f"--max_failures must be >= 0, got {args.max_failures}")
    if args.channel is not None and args.channel < 0:
        parser.error(f"--channel must be >= 0, got {args.channel}")
    try:
        if args.merge:
            recog_dir = merge_split_dirs(args.merge, args.output_dir)
            return EXIT_SOME_FAILED if os.path.isfile(os.path.join(recog_dir, FAILED_FILE)) else 0
        if not model_dir:
            raise DecodeError("give --model_dir (or --exp_dir)")
        options = DecodeOptions(
            decode_mode=args.decode_mode, batch_bins=args.batch_bins, max_frames=args.max_frames,
            bucket_size=args.bucket_size, beam_size=args.beam_size, ctc_weight=args.ctc_weight,
            lm_weight=args.lm_weight, length_bonus=args.length_bonus, lm_dir=args.lm_dir,
            timestamps=not args.no_timestamps, timestamp_source=args.timestamp_source, hotword=args.hotword,
            nfilter=args.nfilter, seaco_weight=args.seaco_weight, hotword_score=args.hotword_score,
            hotword_topk=args.hotword_topk,
            decoding_model=args.decoding_model,
            token_num_relax=args.token_num_relax,
        )
        options.check()
        if args.vad_model_dir or args.punc_model_dir:
            from funasr_lite.api import SpeechRecognizer

            asr = SpeechRecognizer.from_model_dir(
                model_dir, args.checkpoint, args.device, vad_model=args.vad_model_dir,
                punc_model=args.punc_model_dir, batch_size_s=args.batch_size_s, max_segment_s=args.max_segment_s,
                **vars(options))
            audio_in = args.audio or args.wav or [args.wav_scp or os.path.join(args.data_dir, "wav.scp")]
            results = asr(list(audio_in), audio_fs=args.audio_fs, output_dir=args.output_dir)
            if not args.output_dir:
                _print_results([r for r in results if "error" not in r])
            return EXIT_SOME_FAILED if any("error" in r for r in results) else 0
        if args.audio:
            from funasr_lite.api import SpeechRecognizer

            asr = SpeechRecognizer.from_model_dir(model_dir, args.checkpoint, args.device, backend=args.backend,
                                            quantized=args.quantized, threads=args.onnx_threads, **vars(options))
            results = asr(args.audio if len(args.audio) > 1 else args.audio[0], audio_fs=args.audio_fs,
                          output_dir=args.output_dir, channel=args.channel, max_failures=args.max_failures)
            if not args.output_dir:
                _print_results([r for r in results if "error" not in r])
            return EXIT_SOME_FAILED if any("error" in r for r in results) else 0
        if args.streaming:
            return _decode_streaming(args, model_dir)
        loaded = load_for_backend(model_dir, args.backend, args.checkpoint, args.device, args.quantized,
                                  args.onnx_threads, options.timestamps, options.decode_mode)
        items = _items(args, loaded.frontend)
        speech2text = Speech2Text(loaded, options)
        failures = FailureLog(args.max_failures, what="utterance")
        if args.output_dir:
            decode_to_dir(speech2text, items, args.output_dir, failures)
        else:
            results = speech2text.decode(items, failures=failures)
            _print_results(results)
            (logger.warning if len(failures) else logger.info)("%s", failures.summary(len(results)))
        if len(failures):
            return EXIT_SOME_FAILED
    except (DecodeError, ModelDirError, ValueError, OSError, RuntimeError) as e:
        logger.error("%s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
