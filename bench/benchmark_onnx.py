#!/usr/bin/env python3
"""ONNX deployment benchmark: one model, one set of audio, seven decoders, end to end from samples.

Decoders (each with its own frontend, from 16 kHz float samples in memory to tokens):
  ours_torch        funasr_lite Speech2Text on the PyTorch model (greedy)
  ours_onnx         funasr_lite Speech2Text on model.onnx (onnxruntime; infer --backend onnx)
  ours_onnx_int8    the same on model_quant.onnx
  funasr_torch      FunASR AutoModel(model=DIR).generate (the oracle package, PyTorch)
  funasr_onnx       funasr_onnx.Paraformer(DIR): extract_feat + infer + decode (its __call__ minus file reading)
  funasr_onnx_int8  the same with quantize=True (model_quant.onnx)
  sherpa_onnx       sherpa_onnx.OfflineRecognizer.from_paraformer(model.onnx, tokens.txt), decode_streams
Timestamps are off in ours (the clients compute none). Sources:
  demo   --model_dir (a model dir, e.g. stage 8's; copied, then exported), else egs/aishell1/conf/demo.yaml
         with random weights (--demo_vocab tokens)
  large  egs/aishell1/conf/paraformer_sanm.yaml (paraformer-large, vocab 8404) with random weights
         (CIF output bias logit(0.3): ~1 token per 3 frames, as a trained model)
Each source dir is exported with funasr_lite.bin.export --quantize (file sizes reported). Audio:
the first --max_utts of --data_dir's wav.scp, else synthetic speech-like audio of 3-6 s. For
each source x --threads x mode (batch1; batched: longest first, --batch_size utterances) every
decoder runs in its own harness worker process (peak RSS per row). RTF = decode seconds / audio seconds, median
of --repeats passes after one warm-up batch; "match" = fraction of utterances whose text equals
ours_torch's (spaces and <unk> ignored); "frontend" = RTF of the decoder's feature pipeline alone
(fbank, LFR, CMVN; ours and funasr-onnx), i.e. how much of the RTF is not the model.

    # what docs/deploy.md reports (small setting; the full one: --max_utts 32 --repeats 3)
    python bench/benchmark_onnx.py --max_utts 4 --repeats 1 --threads 1,2 --out bench_out/onnx.json
    python bench/benchmark_onnx.py --model_dir egs/aishell1/exp/demo/model_dir --data_dir egs/aishell1/data/test \
        --max_utts 32 --repeats 3 --out bench_out/onnx_demo.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

import harness
from paraformer_pair import LARGE_VOCAB, fire_about_every_third_frame

DECODERS = ("ours_torch", "ours_onnx", "ours_onnx_int8", "funasr_torch", "funasr_onnx", "funasr_onnx_int8",
            "sherpa_onnx")
MODES = ("batch1", "batched")
SAMPLE_RATE = 16000
SOURCE_FILES = ("config.yaml", "model.pt", "model.pb", "am.mvn", "tokens.txt", "tokens.json", "configuration.json")


# ---------------------------------------------------------------- inputs (driver)
def synthetic_waves(count, seed):
    """Speech-like audio: gliding tones with syllable-rate envelopes plus noise, 3-6 s each."""
    rng = np.random.default_rng(seed)
    waves = []
    for _ in range(count):
        n = int(rng.uniform(3.0, 6.0) * SAMPLE_RATE)
        t = np.arange(n) / SAMPLE_RATE
        wave = 0.003 * rng.standard_normal(n)
        for _ in range(4):
            envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None) ** 2
            wave += 0.12 * envelope * np.sin(2 * np.pi * (rng.uniform(120, 1500) + rng.uniform(-200, 200) * t) * t)
        waves.append(np.clip(wave, -0.99, 0.99).astype(np.float32))
    return waves, "synthetic speech-like audio"


def data_dir_waves(data_dir, count):
    from funasr_lite.data.datadir import read_kv
    from funasr_lite.frontend.audio import read_audio

    waves = []
    for value in list(read_kv(os.path.join(data_dir, "wav.scp")).values())[:count]:
        waves.append(np.asarray(read_audio(value, target_sr=SAMPLE_RATE)[0], dtype=np.float32))
    return waves, f"{data_dir} (first {len(waves)} of wav.scp)"


def random_model_dir(work, name, config_path, vocab_size, waves, seed):
    """A FunASR-layout model dir with random weights (CIF bias logit(0.3)) and am.mvn of the audio."""
    from funasr_lite.export.model_dir import export_model_dir
    from funasr_lite.frontend.cmvn import write_am_mvn
    from funasr_lite.frontend.fbank import compute_fbank
    from funasr_lite.frontend.lfr import lfr_stack
    from funasr_lite.models import build_model
    from funasr_lite.utils.config import dump_config, load_yaml

    exp = os.path.join(work, f"{name}_exp")
    os.makedirs(exp)
    config = load_yaml(config_path)
    conf = config["frontend_conf"]
    tokens = ["<blank>", "<s>", "</s>"] + [chr(0x4E00 + i) for i in range(vocab_size - 4)] + ["<unk>"]
    with open(os.path.join(exp, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    frames = np.concatenate([lfr_stack(compute_fbank(w), m=int(conf["lfr_m"]), n=int(conf["lfr_n"]))[0].numpy()
                             for w in waves[:8]]).astype(np.float64)
    write_am_mvn(os.path.join(exp, "am.mvn"), -frames.mean(0), 1.0 / np.maximum(frames.std(0), 1e-3))
    config.update(token_list=os.path.join(exp, "tokens.txt"), cmvn_file=os.path.join(exp, "am.mvn"))
    torch.manual_seed(seed)
    build = {k: v for k, v in config.items() if k not in ("specaug", "specaug_conf")}
    model = build_model(dict(build, input_size=int(conf["n_mels"]) * int(conf["lfr_m"]), vocab_size=vocab_size))
    fire_about_every_third_frame(model)
    torch.save(model.state_dict(), os.path.join(exp, "model.pt"))
    del model
    with open(os.path.join(exp, "config.yaml"), "w", encoding="utf-8") as f:
        f.write(dump_config(config))
    out = export_model_dir(exp, os.path.join(work, name))
    shutil.rmtree(exp)
    return out


def copied_model_dir(work, model_dir):
    out = os.path.join(work, "demo")
    os.makedirs(out)
    for name in SOURCE_FILES:
        if os.path.isfile(os.path.join(model_dir, name)):
            shutil.copyfile(os.path.join(model_dir, name), os.path.join(out, name))
    return out


def export_and_size(model_dir):
    from funasr_lite.export.onnx_export import export_onnx

    start = time.perf_counter()
    export_onnx(model_dir, quantize=True)
    seconds = time.perf_counter() - start
    sizes = {name: os.path.getsize(os.path.join(model_dir, name)) / 2**20
             for name in ("model.pt", "model.onnx", "model_quant.onnx") if os.path.isfile(os.path.join(model_dir, name))}
    return {"export_s": seconds, "size_mib": sizes}


# ---------------------------------------------------------------- worker: one decoder, one configuration
def make_decoder(name, model_dir, threads):
    """-> a function: list of (N,) float32 waves -> list of texts."""
    if name in ("ours_torch", "ours_onnx", "ours_onnx_int8"):
        from funasr_lite.inference.speech2text import DecodeOptions, InputItem, Speech2Text
        from funasr_lite.inference.onnx_backend import load_for_backend

        backend = "torch" if name == "ours_torch" else "onnx"
        loaded = load_for_backend(model_dir, backend, quantized=name.endswith("int8"), threads=threads, timestamps=False)
        speech2text = Speech2Text(loaded, DecodeOptions(timestamps=False, batch_bins=10**9, max_frames=10**6))

        def decode(waves):
            items = [InputItem(f"u{i}", "waveform", "", w, SAMPLE_RATE) for i, w in enumerate(waves)]
            return [r["text"] for r in speech2text.decode(items)]
        decode.frontend = lambda waves: [speech2text.prepare(i, InputItem(f"u{i}", "waveform", "", w, SAMPLE_RATE))
                                         for i, w in enumerate(waves)]
        return decode
    if name == "funasr_torch":
        from funasr import AutoModel

        model = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True,
                          ncpu=threads)
        return lambda waves: [r.get("text", "") for r in model.generate(input=list(waves), batch_size=len(waves))]
    if name in ("funasr_onnx", "funasr_onnx_int8"):
        import funasr_onnx

        client = funasr_onnx.Paraformer(model_dir, quantize=name.endswith("int8"), intra_op_num_threads=threads)

        def decode(waves):
            feats, lengths = client.extract_feat(list(waves))
            outputs = client.infer(feats, lengths)
            return ["".join(tokens) for tokens in client.decode(outputs[0], outputs[1])]
        decode.frontend = lambda waves: client.extract_feat(list(waves))
        return decode
    if name == "sherpa_onnx":
        import sherpa_onnx

        recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
            paraformer=os.path.join(model_dir, "model.onnx"), tokens=os.path.join(model_dir, "tokens.txt"),
            num_threads=threads)

        def decode(waves):
            streams = []
            for wave in waves:
                stream = recognizer.create_stream()
                stream.accept_waveform(SAMPLE_RATE, wave)
                streams.append(stream)
            recognizer.decode_streams(streams)
            return [s.result.text for s in streams]
        return decode
    raise ValueError(name)


def decode_audio(decoder: str, audio: str, model_dir: str, mode: str, num_threads: int, batch_size: int,
                 repeats: int) -> dict:
    """(harness worker) ``decoder`` decodes the waves of ``audio`` (.npz) ``repeats`` times after one
    warm-up batch: batch 1, or batched (longest first, ``batch_size`` utterances)."""
    data = np.load(audio)
    waves = [data[key] for key in sorted(data.files, key=lambda k: int(k[1:]))]
    audio_s = sum(len(w) for w in waves) / SAMPLE_RATE
    load_start = time.perf_counter()
    decode = make_decoder(decoder, model_dir, num_threads)
    load_s = time.perf_counter() - load_start
    order = sorted(range(len(waves)), key=lambda i: -len(waves[i]))
    size = 1 if mode == "batch1" else batch_size
    batches = [order[i:i + size] for i in range(0, len(order), size)]
    with harness.PeakRss() as decode_peak:
        decode([waves[i] for i in batches[0]])  # warm-up
        seconds, outputs = harness.time_repeats(lambda: [decode([waves[i] for i in batch]) for batch in batches],
                                                repeats)
    texts = [None] * len(waves)
    for batch, output in zip(batches, outputs):
        for i, text in zip(batch, output):
            texts[i] = text
    frontend_rtf = None
    if hasattr(decode, "frontend"):  # where the time goes: the feature pipeline alone (fbank, LFR, CMVN)
        start = time.perf_counter()
        for batch in batches:
            decode.frontend([waves[i] for i in batch])
        frontend_rtf = (time.perf_counter() - start) / audio_s
    return {"rtf": statistics.median(seconds) / audio_s, "frontend_rtf": frontend_rtf, "seconds": seconds,
            "audio_s": audio_s, "load_s": load_s, "texts": texts, "decode_hwm_mb": decode_peak.mb}


def normalized(text):
    return "".join((text or "").replace("<unk>", "").split())


# ---------------------------------------------------------------- driver
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model_dir", help="demo source: a model dir (copied, then exported); default: random demo")
    parser.add_argument("--data_dir", help="audio: its wav.scp (default: synthetic audio)")
    parser.add_argument("--max_utts", type=int, default=8)
    parser.add_argument("--demo_config", default=os.path.join(harness.REPO, "egs/aishell1/conf/demo.yaml"))
    parser.add_argument("--demo_vocab", type=int, default=3000, help="random demo model: vocabulary size")
    parser.add_argument("--large_config", default=os.path.join(harness.REPO, "egs/aishell1/conf/paraformer_sanm.yaml"))
    parser.add_argument("--sources", default="demo,large", help="comma-separated: demo, large")
    parser.add_argument("--decoders", default=",".join(DECODERS), help="comma-separated subset of " + ", ".join(DECODERS))
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--modes", default="batch1,batched")
    parser.add_argument("--batch_size", type=int, default=8, help="batched mode: utterances per batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--work_dir", help="keep the exported dirs here (default: a temp dir, removed)")
    parser.add_argument("--out", help="JSON file to write")
    args = parser.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    decoders = args.decoders.split(",")
    modes = args.modes.split(",")
    work = args.work_dir or tempfile.mkdtemp(prefix="bench_onnx_")
    os.makedirs(work, exist_ok=True)
    rows, exports = [], {}
    try:
        waves, audio_desc = (data_dir_waves(args.data_dir, args.max_utts) if args.data_dir
                             else synthetic_waves(args.max_utts, args.seed))
        audio = os.path.join(work, "audio.npz")
        np.savez(audio, **{f"u{i}": w for i, w in enumerate(waves)})
        sources = {}
        for source in args.sources.split(","):
            if source == "demo":
                model_dir = (copied_model_dir(work, args.model_dir) if args.model_dir else
                             random_model_dir(work, "demo", args.demo_config, args.demo_vocab, waves, args.seed))
                desc = args.model_dir or f"{os.path.basename(args.demo_config)}, random weights, vocab {args.demo_vocab}"
            else:
                model_dir = random_model_dir(work, "large", args.large_config, LARGE_VOCAB, waves, args.seed)
                desc = f"{os.path.basename(args.large_config)}, random weights, vocab {LARGE_VOCAB}"
            exports[source] = dict(export_and_size(model_dir), description=desc)
            print(f"{source}: exported in {exports[source]['export_s']:.1f} s, sizes (MiB) {exports[source]['size_mib']}",
                  file=sys.stderr)
            sources[source] = model_dir
        for source, model_dir in sources.items():
            for n_threads in threads:
                for mode in modes:
                    reference = None
                    for decoder in decoders:
                        result = harness.run_in_worker(
                            decode_audio, n_threads, decoder=decoder, audio=audio, model_dir=model_dir, mode=mode,
                            num_threads=n_threads, batch_size=args.batch_size, repeats=args.repeats)
                        texts = [normalized(t) for t in result.pop("texts")]
                        if decoder == "ours_torch":
                            reference = texts
                        result["match"] = (sum(a == b for a, b in zip(texts, reference)) / len(texts)
                                           if reference else None)
                        result["mean_chars"] = sum(map(len, texts)) / len(texts)
                        rows.append(dict(source=source, threads=n_threads, mode=mode, decoder=decoder, **result))
                        print(f"{source} {mode} {n_threads} thr {decoder}: RTF {result['rtf']:.4f}", file=sys.stderr)
    finally:
        if not args.work_dir:
            shutil.rmtree(work, ignore_errors=True)

    print(f"\ngreedy decoding from samples, median of {args.repeats} pass(es); audio: {audio_desc}, "
          f"{len(waves)} utterances, {sum(map(len, waves)) / SAMPLE_RATE:.1f} s")
    for row in rows:
        base = next((r["rtf"] for r in rows if (r["source"], r["threads"], r["mode"], r["decoder"]) ==
                     (row["source"], row["threads"], row["mode"], "funasr_torch")), None)
        row["x_funasr_torch"] = base / row["rtf"] if base else None
    print(harness.markdown_table(
        [("source", "source"), ("mode", "mode"), ("thr", "threads"), ("decoder", "decoder"), ("RTF", "rtf", ".4f"),
         ("frontend", "frontend_rtf", ".4f"), ("x funasr_torch", "x_funasr_torch", ".2f"),
         ("peak RSS MB", "peak_rss_mb", ".0f"), ("load s", "load_s", ".1f"), ("match", "match", ".2f")], rows))
    print("x funasr_torch = FunASR PyTorch RTF / this RTF (> 1: faster); match = same text as ours_torch")
    for source, info in exports.items():
        sizes = ", ".join(f"{name} {mib:.1f} MiB" for name, mib in info["size_mib"].items())
        print(f"  {source}: {info['description']}; {sizes}; export {info['export_s']:.0f} s")
    if args.out:
        harness.write_report(args.out, {"benchmark": "onnx_decode", "environment": harness.environment(threads),
                                        "audio": audio_desc, "max_utts": args.max_utts, "repeats": args.repeats,
                                        "batch_size": args.batch_size, "exports": exports, "rows": rows})


if __name__ == "__main__":
    main()
