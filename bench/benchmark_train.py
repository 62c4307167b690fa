#!/usr/bin/env python3
"""Training-step throughput: funasr_lite's Paraformer vs FunASR's Paraformer class, side by side.

What is timed: the MODEL STEP only -- forward (loss), backward, grad-norm clipping
(train_conf.grad_clip) and an Adam step (optim_conf.lr) -- for both implementations built from the
SAME config, starting from the SAME weights (ours are built with --seed and copied into FunASR's
model with strict=True) and fed the SAME batches (saved once, loaded by both). Data loading, the
LR scheduler, checkpointing, logging and DDP are not timed, on either side. FunASR's whole trainer
(funasr.bin.train_ds: jsonl lists, on-the-fly features, its own loop) mixes data pipeline, trainer
and model; bench/benchmark_trainer_full.py compares the two whole trainers on one epoch of the same
config and data.

Each implementation runs in its own subprocess per repeat (order alternates between repeats), so
peak RSS (resource.getrusage ru_maxrss, whole process) is per implementation; "step_hwm_mb" is the
peak of the warm-up + timed steps alone (the peak is reset via /proc/self/clear_refs before them).
Throughput counts unpadded model-input frames (after LFR); x real time = frames * LFR frame
duration (lfr_n * frame_shift, 60 ms) / compute s. Numerics are not compared here (see
tests/models/test_sanm_parity.py): dropout/SpecAug draw different random numbers in the two
implementations and FunASR does not zero padded frames before the predictor.

    # random features, the demo config (smoke: add --steps 1 --warmup 1 --repeats 1)
    python bench/benchmark_train.py --config egs/aishell1/conf/demo.yaml --batch_frames 6000 \
        --warmup 3 --steps 10 --repeats 3 --threads 2 --out bench_out/train_demo.json
    # real LFR+CMVN features and tokens of a data dir
    python bench/benchmark_train.py --data_dir egs/aishell1/data/train --steps 10 --repeats 3 \
        --out bench_out/train_demo_data.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from funasr_lite.models import DECODERS, ENCODERS, MODELS, PREDICTORS, SPECAUGS, build_model  # noqa: E402
from funasr_lite.utils.config import load_yaml  # noqa: E402
from funasr_lite.utils.progress import peak_rss_mb  # noqa: E402  (also imported by the other benchmarks)

IMPLEMENTATIONS = ("ours", "funasr")
LARGE_VOCAB = 8404  # paraformer-large's vocabulary


# ---------------------------------------------------------------- helpers shared with benchmark_decode.py
def model_config(config_path: str, vocab_size: int) -> dict:
    """The YAML with input_size (n_mels * lfr_m) and vocab_size set: what build_model needs."""
    config = load_yaml(config_path)
    frontend_conf = config.get("frontend_conf") or {}
    config["input_size"] = int(frontend_conf.get("n_mels", 80)) * int(frontend_conf.get("lfr_m", 1))
    config["vocab_size"] = int(vocab_size)
    config.pop("token_list", None)
    return config


def lfr_frame_s(config: dict) -> float:
    conf = config.get("frontend_conf") or {}
    return int(conf.get("lfr_n", 1)) * float(conf.get("frame_shift", 10)) / 1000.0


def _class_name(registry: dict, name: str) -> str:
    """Our registry alias ("sanm") -> the class name FunASR's registry knows ("SANMEncoder")."""
    entry = registry.get(name, name)
    if isinstance(entry, str):
        return entry.split(":")[-1]
    return entry.__name__


def build_funasr_paraformer(config: dict, with_specaug: bool = True):
    """FunASR's Paraformer from our config: registry aliases ("sanm") -> FunASR class names."""
    import funasr  # noqa: F401  (imports every funasr module, filling its registries)
    from funasr.models.paraformer.model import Paraformer as FunasrParaformer

    if _class_name(MODELS, config.get("model", "Paraformer")) != "Paraformer":
        raise SystemExit(f"only Paraformer configs can be compared, got model {config.get('model')!r}")
    kwargs = {
        "encoder": _class_name(ENCODERS, config.get("encoder", "SANMEncoder")),
        "encoder_conf": copy.deepcopy(config.get("encoder_conf") or {}),
        "decoder": _class_name(DECODERS, config.get("decoder", "ParaformerSANMDecoder")),
        "decoder_conf": copy.deepcopy(config.get("decoder_conf") or {}),
        "predictor": _class_name(PREDICTORS, config.get("predictor", "CifPredictorV2")),
        "predictor_conf": copy.deepcopy(config.get("predictor_conf") or {}),
        "ctc_conf": copy.deepcopy(config.get("ctc_conf") or {}),
        "input_size": config["input_size"], "vocab_size": config["vocab_size"],
    }
    if with_specaug and config.get("specaug"):
        kwargs["specaug"] = _class_name(SPECAUGS, config["specaug"])
        kwargs["specaug_conf"] = copy.deepcopy(config.get("specaug_conf") or {})
    kwargs.update(copy.deepcopy(config.get("model_conf") or {}))
    return FunasrParaformer(**kwargs)


def reset_peak_rss() -> bool:
    """Reset the peak (Linux: clear_refs 5 resets VmHWM and ru_maxrss); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def environment(threads) -> dict:
    return {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor(), "cpu_count": os.cpu_count(), "threads": threads}


def write_report(path: str, report: dict) -> None:
    """Write a benchmark report as indented JSON (creating the folder) and say where."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(report, handle, indent=2)
    print(f"wrote {path}")


def run_worker(script: str, args, threads: int) -> dict:
    """Run `script --worker ...` in a fresh process; its last stdout line is a JSON result."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=REPO,
               FUNASR_LITE_NO_PROGRESS="1")
    proc = subprocess.run([sys.executable, script, *map(str, args)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}): {' '.join(map(str, args))}\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- batches
def random_batches(count, batch_frames, dim, vocab_size, min_frames, max_frames, seed):
    """Bucket-like batches: each draws a longest length, fills batch_frames with similar lengths."""
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        longest = int(rng.integers(min_frames, max_frames + 1))
        size = max(1, batch_frames // longest)
        lengths = np.sort(rng.integers(int(0.8 * longest), longest + 1, size))[::-1].copy()
        lengths[0] = longest
        speech = torch.from_numpy(rng.standard_normal((size, longest, dim)).astype(np.float32))
        for i, length in enumerate(lengths):
            speech[i, length:] = 0.0
        text_lengths = np.maximum(1, np.round(lengths / 3.3)).astype(np.int64)  # ~1 char per 200 ms
        text = torch.full((size, int(text_lengths.max())), -1, dtype=torch.long)
        for i, n in enumerate(text_lengths):
            text[i, :n] = torch.from_numpy(rng.integers(3, vocab_size - 1, n))
        batches.append({"speech": speech, "speech_lengths": torch.from_numpy(lengths.astype(np.int64)),
                        "text": text, "text_lengths": torch.from_numpy(text_lengths)})
    return batches


def data_dir_batches(count, batch_frames, config, data_dir, token_list, cmvn_file, seed):
    """Batches of real features: shuffled utterances, length-sorted buckets of 512, cut by batch_frames."""
    from funasr_lite.data.batch_sampler import split_into_batches
    from funasr_lite.data.collate import collate_batch
    from funasr_lite.data.dataset import AsrDataset
    from funasr_lite.data.tokenizer import CharTokenizer

    conf = config.get("frontend_conf") or {}
    max_frames = int((config.get("dataset_conf") or {}).get("max_frames", 1_000_000))
    dataset = AsrDataset(data_dir, CharTokenizer.from_file(token_list), cmvn_file, lfr_m=int(conf.get("lfr_m", 1)),
                         lfr_n=int(conf.get("lfr_n", 1)), max_frames=max_frames)
    order = np.random.default_rng(seed).permutation(len(dataset))
    batches = []
    for start in range(0, len(order), 512):
        bucket = sorted(order[start:start + 512], key=lambda i: -dataset.lengths[i])
        for batch in split_into_batches(bucket, dataset.lengths, batch_frames):
            collated = collate_batch([dataset[i] for i in batch])
            collated.pop("utt_ids")
            batches.append(collated)
            if len(batches) == count:
                return batches
    raise SystemExit(f"{data_dir}: only {len(batches)} batches of {batch_frames} frames; need {count}")


# ---------------------------------------------------------------- worker: one implementation, one repeat
def worker(args) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    with open(os.path.join(args.work, "config.json")) as handle:
        config = json.load(handle)
    model = build_model(copy.deepcopy(config)) if args.worker == "ours" else build_funasr_paraformer(config)
    model.load_state_dict(torch.load(os.path.join(args.work, "init.pt"), weights_only=True, mmap=True), strict=True)
    model.train()
    batches = torch.load(os.path.join(args.work, "batches.pt"), weights_only=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=float((config.get("optim_conf") or {}).get("lr", 1e-3)))
    grad_clip = float((config.get("train_conf") or {}).get("grad_clip", 5.0))
    parameters = [p for p in model.parameters() if p.requires_grad]

    def step(batch):
        loss = model(batch["speech"], batch["speech_lengths"], batch["text"], batch["text_lengths"])[0]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    setup_peak_mb = peak_rss_mb()  # imports, model, weights, batches
    hwm_reset = reset_peak_rss()
    for batch in batches[: args.warmup]:
        step(batch)
    timed = batches[args.warmup:]
    start = time.perf_counter()
    losses = [step(batch) for batch in timed]
    seconds = time.perf_counter() - start
    frames = int(sum(int(b["speech_lengths"].sum()) for b in timed))
    steps_peak_mb = peak_rss_mb()
    result = {"impl": args.worker, "seconds": seconds, "frames": frames, "frames_per_s": frames / seconds,
              "x_real_time": frames * args.frame_s / seconds, "steps": len(timed), "last_loss": losses[-1],
              "peak_rss_mb": max(setup_peak_mb, steps_peak_mb), "step_hwm_mb": steps_peak_mb if hwm_reset else None,
              "parameters": sum(p.numel() for p in model.parameters())}
    if args.worker == "funasr":
        import funasr
        result["funasr_version"] = funasr.__version__
    return result


# ---------------------------------------------------------------- driver
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=os.path.join(REPO, "egs/aishell1/conf/demo.yaml"))
    parser.add_argument("--data_dir", help="real features (feats.scp, text, utt2num_frames); default: random")
    parser.add_argument("--token_list", help="with --data_dir; default <data_dir>/../lang_char/tokens.txt")
    parser.add_argument("--cmvn_file", help="with --data_dir; default <data_dir>/am.mvn")
    parser.add_argument("--vocab_size", type=int, default=LARGE_VOCAB, help="random mode only")
    parser.add_argument("--batch_frames", type=int, default=6000, help="padded LFR frames per batch")
    parser.add_argument("--min_frames", type=int, default=40, help="random mode: shortest longest-utterance")
    parser.add_argument("--max_frames", type=int, default=150, help="random mode: LFR frames (150 = 9 s)")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", help="JSON file to write")
    parser.add_argument("--worker", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--frame_s", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return

    vocab_size = args.vocab_size
    if args.data_dir:
        from funasr_lite.data.tokenizer import read_token_list
        args.token_list = args.token_list or os.path.join(os.path.dirname(os.path.abspath(args.data_dir)),
                                                          "lang_char", "tokens.txt")
        args.cmvn_file = args.cmvn_file or os.path.join(args.data_dir, "am.mvn")
        if not os.path.isfile(args.cmvn_file):
            raise SystemExit(f"no CMVN file {args.cmvn_file}: give --cmvn_file (the training set's am.mvn)")
        vocab_size = len(read_token_list(args.token_list))
    config = model_config(args.config, vocab_size)
    frame_s = lfr_frame_s(config)
    count = args.warmup + args.steps
    with tempfile.TemporaryDirectory(prefix="bench_train_") as work:
        if args.data_dir:
            batches = data_dir_batches(count, args.batch_frames, config, args.data_dir, args.token_list,
                                       args.cmvn_file, args.seed)
        else:
            batches = random_batches(count, args.batch_frames, config["input_size"], vocab_size, args.min_frames,
                                     args.max_frames, args.seed)
        torch.manual_seed(args.seed)
        torch.save(build_model(copy.deepcopy(config)).state_dict(), os.path.join(work, "init.pt"))
        torch.save(batches, os.path.join(work, "batches.pt"))
        with open(os.path.join(work, "config.json"), "w") as handle:
            json.dump(config, handle)
        runs = {impl: [] for impl in IMPLEMENTATIONS}
        for repeat in range(args.repeats):
            order = IMPLEMENTATIONS if repeat % 2 == 0 else IMPLEMENTATIONS[::-1]
            for impl in order:
                runs[impl].append(run_worker(__file__, [
                    "--worker", impl, "--work", work, "--threads", args.threads, "--warmup", args.warmup,
                    "--seed", args.seed, "--frame_s", frame_s], args.threads))
                print(f"repeat {repeat + 1}/{args.repeats} {impl}: {runs[impl][-1]['frames_per_s']:.0f} frames/s",
                      file=sys.stderr)

    timed = batches[args.warmup:]
    summary = {}
    for impl, impl_runs in runs.items():
        summary[impl] = {
            "frames_per_s": statistics.median(r["frames_per_s"] for r in impl_runs),
            "x_real_time": statistics.median(r["x_real_time"] for r in impl_runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in impl_runs),
            "step_hwm_mb": max((r["step_hwm_mb"] or 0.0) for r in impl_runs) or None,
            "parameters": impl_runs[0]["parameters"], "runs": impl_runs,
        }
    ratios = [o["frames_per_s"] / f["frames_per_s"] for o, f in zip(runs["ours"], runs["funasr"])]
    report = {
        "benchmark": "train_step", "timed": "forward + backward + grad clip + Adam step (no data loading)",
        "environment": dict(environment(args.threads), funasr=runs["funasr"][0].get("funasr_version")),
        "config": os.path.abspath(args.config), "features": args.data_dir or "random",
        "vocab_size": vocab_size, "batch_frames": args.batch_frames, "warmup": args.warmup, "steps": args.steps,
        "repeats": args.repeats, "seed": args.seed, "lfr_frame_s": frame_s,
        "timed_batches": {"count": len(timed), "utterances": sum(len(b["speech_lengths"]) for b in timed),
                          "frames": int(sum(int(b["speech_lengths"].sum()) for b in timed)),
                          "padded_frames": int(sum(b["speech"].shape[0] * b["speech"].shape[1] for b in timed))},
        "results": summary,
        "throughput_ratio_ours_over_funasr": {"median_per_repeat": statistics.median(ratios), "per_repeat": ratios},
    }
    print(f"\ntraining step, {os.path.basename(args.config)}, {report['features']} features, "
          f"{args.steps} steps x {args.repeats} repeats, {args.threads} thread(s), torch {torch.__version__}")
    print(f"{'impl':8} {'frames/s':>10} {'x real time':>12} {'peak RSS MB':>12} {'step HWM MB':>12}")
    for impl, row in summary.items():
        hwm = f"{row['step_hwm_mb']:.0f}" if row["step_hwm_mb"] else "-"
        print(f"{impl:8} {row['frames_per_s']:10.0f} {row['x_real_time']:12.1f} {row['peak_rss_mb']:12.0f} {hwm:>12}")
    ratio = report["throughput_ratio_ours_over_funasr"]["median_per_repeat"]
    print(f"ours / funasr throughput (median of per-repeat ratios): {ratio:.3f}")
    if args.out:
        write_report(args.out, report)


if __name__ == "__main__":
    main()
