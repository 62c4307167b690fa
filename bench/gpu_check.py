#!/usr/bin/env python3
"""The GPU check (issue #26 item 6): one prepared script for a lent GPU machine. It reports what the
machine has (nvidia-smi, Python, torch, CUDA, which oracle packages import), then times, each step
in its own process with its own time limit inside one overall budget:

  train   bench/benchmark_train.py: one training step (forward + backward + clip + Adam), ours vs
          FunASR's Paraformer class, same weights and batches, random features, on the demo config
          and on paraformer-large (egs/aishell1/conf/paraformer_sanm.yaml, 220M), fp32 and bf16
          autocast;
  decode  bench/benchmark_decode.py: greedy decoding of paraformer-large, batched, random weights
          (CIF bias set so it fires about every third frame, like a trained model) and random
          features of 3-6 s, fp32, bf16 and fp16 autocast, its RTF printed beside the seed model
          card's RTF 0.0093 (the released model on real audio on the card's GPU: the comparison is
          of the model's compute only, no audio reading, fbank or CMVN here).

FunASR is timed beside ours when it imports on the machine (``--impls auto``); otherwise ours runs
alone and the output says so. A step that fails or runs out of time is recorded and the next one
runs; a step that no longer fits the budget is skipped and named. Results: ``gpu_check.json`` (the
probe, every step's command, status and full report), ``gpu_check.md`` (the summary tables) and
``gpu_check.log`` (every step's output) under ``--out`` (default ``$OUT``, else bench_out/gpu).

    # here, once: the pure-Python oracle packages the GPU image lacks, into an ignored folder
    python bench/gpu_check.py --pack                     # -> bench_out/gpu_site (~20 MB)
    # on the GPU machine (the device tool: carry bench_out/gpu_site; see bench/README.md)
    PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT
    # the script's own test on CPU: tiny steps, demo config only (tests/bench/test_gpu_check.py)
    python bench/gpu_check.py --device cpu --quick --impls ours --out bench_out/gpu_quick
    # rerun some steps only
    python3 bench/gpu_check.py --only decode_large_fp32,train_large_bf16 --out $OUT

The GPU image (bench/README.md, "GPU check") has torch, numpy and PyYAML but not funasr, kaldiio,
librosa or rapidfuzz, and nothing can be downloaded there: ``--pack`` copies those four (and
torch-complex) from this interpreter's site-packages, Python files only (rapidfuzz then runs its
pure-Python fallback, RAPIDFUZZ_IMPLEMENTATION=python); the run puts ``--site`` on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time

import harness

SEED_CARD_RTF = 0.0093  # the seed model card's GPU RTF of paraformer-large (docs/spec.md, "Speed anchors")
DEFAULT_SITE = os.path.join(harness.REPO, "bench_out", "gpu_site")
# Distributions FunASR's Paraformer needs to build, train and decode that the GPU image lacks (pure
# Python once compiled files are left out); import names to probe beside them.
PACKED = ("funasr", "kaldiio", "librosa", "rapidfuzz", "torch-complex")
PROBED = ("torch", "numpy", "yaml", "funasr_lite", "funasr", "kaldiio", "librosa", "rapidfuzz", "torch_complex",
          "onnxruntime")
DEMO = os.path.join(harness.REPO, "egs", "aishell1", "conf", "demo.yaml")
LARGE = os.path.join(harness.REPO, "egs", "aishell1", "conf", "paraformer_sanm.yaml")
RESERVE_S = 15  # kept back from the budget for the summary
MIN_STEP_S = 30  # a step is not started with less than this left


# ---------------------------------------------------------------- the plan
def plan(device: str, quick: bool, impls: str, threads: int) -> list:
    """The steps, most wanted first: (name, script, arguments, time limit s)."""
    common = ["--device", device, "--impls", impls, "--threads", str(threads)]
    if quick:  # the script's own test: the demo config for both benchmarks, the smallest sizes
        train = ["--config", DEMO, "--batch_frames", "300", "--max_frames", "60", "--warmup", "1", "--steps", "1",
                 "--repeats", "1"]
        decode = ["--large_config", DEMO, "--data_dir", "", "--max_utts", "2", "--batch_utts", "2",
                  "--modes", "batched", "--repeats", "1"]
        return [(f"train_demo_{p}", "benchmark_train.py", train + common + ["--precision", p], 120)
                for p in ("fp32", "bf16")] + \
               [(f"decode_demo_{p}", "benchmark_decode.py", decode + common + ["--precision", p], 120)
                for p in ("fp32", "bf16")]
    train_large = ["--config", LARGE, "--batch_frames", "8000", "--warmup", "2", "--steps", "8", "--repeats", "2"]
    train_demo = ["--config", DEMO, "--batch_frames", "8000", "--warmup", "3", "--steps", "10", "--repeats", "2"]
    decode = ["--large_config", LARGE, "--data_dir", "", "--max_utts", "64", "--batch_utts", "16",
              "--modes", "batched", "--repeats", "3"]
    return [
        ("decode_large_fp32", "benchmark_decode.py", decode + common + ["--precision", "fp32"], 150),
        ("train_large_fp32", "benchmark_train.py", train_large + common + ["--precision", "fp32"], 180),
        ("train_large_bf16", "benchmark_train.py", train_large + common + ["--precision", "bf16"], 180),
        ("decode_large_bf16", "benchmark_decode.py", decode + common + ["--precision", "bf16"], 150),
        ("train_demo_fp32", "benchmark_train.py", train_demo + common + ["--precision", "fp32"], 120),
        ("train_demo_bf16", "benchmark_train.py", train_demo + common + ["--precision", "bf16"], 120),
        ("decode_large_fp16", "benchmark_decode.py", decode + common + ["--precision", "fp16"], 150),
    ]


def choose_impls(requested: str, probe: dict) -> tuple:
    """--impls auto: ours,funasr when FunASR's Paraformer built in the probe, else ours (and why)."""
    if requested != "auto":
        return requested, f"--impls {requested} (as asked)"
    if probe.get("funasr_paraformer") == "ok":
        return "ours,funasr", "FunASR's Paraformer builds here: ours vs FunASR"
    why = probe.get("funasr_paraformer") or (f"the probe failed: {probe['error']}" if "error" in probe
                                             else "not probed")
    return "ours", f"FunASR cannot be used here ({why}): OURS ALONE, no FunASR numbers"


# ---------------------------------------------------------------- the probe (a harness worker)
def probe_machine(device: str, try_funasr: bool) -> dict:
    """(harness worker) Python, torch, CUDA, the device, which packages are installed and import,
    and whether FunASR's Paraformer class builds (imports the whole funasr package)."""
    import platform

    import torch

    info = {"python": platform.python_version(), "executable": sys.executable, "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [], "packages": {}}
    if torch.cuda.is_available():
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        info["cudnn"] = torch.backends.cudnn.version()
    for name in PROBED:
        try:
            spec = importlib.util.find_spec(name)
        except Exception as error:  # noqa: BLE001  (a finder that refuses is a finding too)
            info["packages"][name] = f"fails: {type(error).__name__}: {error}"[:300]
            continue
        if spec is None:
            info["packages"][name] = "missing"
            continue
        where = os.path.dirname(spec.origin or "") if spec.origin else str(spec.submodule_search_locations)
        try:
            module = __import__(name)
            info["packages"][name] = f"ok {getattr(module, '__version__', '')} ({where})".replace("  ", " ")
        except Exception as error:  # noqa: BLE001  (a broken install is a finding, not a crash)
            info["packages"][name] = f"fails: {type(error).__name__}: {error}"[:300]
    if try_funasr:
        try:
            from paraformer_pair import build_funasr_paraformer, model_config

            build_funasr_paraformer(model_config(DEMO, 100))
            info["funasr_paraformer"] = "ok"
        except Exception as error:  # noqa: BLE001
            info["funasr_paraformer"] = f"{type(error).__name__}: {error}"[:300]
    return info


# ---------------------------------------------------------------- --pack (here)
def pack(site: str) -> dict:
    """Copy PACKED's Python files (and dist-info) from this interpreter into ``site``."""
    from importlib.metadata import PackageNotFoundError, distribution

    if os.path.isdir(site):
        shutil.rmtree(site)
    os.makedirs(site)
    versions, total = {}, 0
    for name in PACKED:
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise SystemExit(f"--pack: {name} is not installed in {sys.executable}") from None
        versions[name] = dist.version
        for file in dist.files or []:
            parts = file.parts
            if parts[0] == ".." or "__pycache__" in parts or file.suffix in (".so", ".pyd", ".pyc", ".dylib") \
                    or parts[0].endswith(".libs") or parts[0] == "bin":
                continue
            source = str(file.locate())
            if not os.path.isfile(source):
                continue
            target = os.path.join(site, *parts)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(source, target)
            total += os.path.getsize(source)
    source = {"packed_from": sys.executable, "python": sys.version.split()[0], "versions": versions,
              "git_commit": harness._git("rev-parse", "HEAD"), "date": datetime.date.today().isoformat(),
              "mb": round(total / 2 ** 20, 1)}
    with open(os.path.join(site, "PACKED.json"), "w") as handle:
        json.dump(source, handle, indent=2)
    return source


# ---------------------------------------------------------------- running the steps
def run_step(name, script, arguments, limit, work, log_handle) -> dict:
    out = os.path.join(work, f"{name}.json")
    log = os.path.join(work, f"{name}.log")
    argv = [sys.executable, os.path.join(harness.BENCH, script), *arguments, "--out", out]
    step = {"name": name, "script": script, "command": " ".join(a if a else "''" for a in argv[1:]),
            "limit_s": round(limit)}
    print(f"\n== {name} (limit {limit:.0f} s)", flush=True)
    start = time.perf_counter()
    try:
        measured = harness.run_command(argv, log, threads=None, timeout=limit)
        step.update(status="ok", wall_s=round(measured["wall_s"], 1))
    except harness.WorkerError as error:
        timed_out = "timed out" in str(error).split("\n")[0]
        step.update(status="timeout" if timed_out else "failed", wall_s=round(time.perf_counter() - start, 1),
                    error=harness.worker_failure(error)["error"])
    if os.path.isfile(out):  # a benchmark writes its report before it exits 1 for a failed implementation
        with open(out, encoding="utf-8") as handle:
            step["report"] = json.load(handle)
    with open(log, errors="replace") as handle:
        text = handle.read()
    log_handle.write(f"\n===== {name}: {step['command']}\n{text}\n===== {name}: {step['status']} "
                     f"in {step['wall_s']} s\n")
    log_handle.flush()
    print(text[-3000:] if step["status"] == "ok" else text[-6000:], flush=True)
    print(f"== {name}: {step['status']} in {step['wall_s']} s" + (f": {step['error']}" if "error" in step else ""),
          flush=True)
    return step


# ---------------------------------------------------------------- the summary
def train_rows(steps) -> list:
    rows = []
    for step in steps:
        report = step.get("report")
        if step["script"] != "benchmark_train.py" or not report:
            continue
        ratio = (report.get("throughput_ratio_ours_over_funasr") or {}).get("median_per_repeat")
        for impl, result in report["results"].items():
            rows.append({"config": os.path.basename(report["config"]), "precision": report["precision"],
                         "impl": impl, "frames_per_s": result.get("frames_per_s"),
                         "x_real_time": result.get("x_real_time"), "cuda_peak_mb": result.get("cuda_peak_mb"),
                         "ratio": ratio if impl == "ours" else None,
                         "note": ("FAILED: " + result["error"][:100]) if "error" in result else ""})
    return rows


def decode_rows(steps) -> list:
    rows = []
    for step in steps:
        report = step.get("report")
        if step["script"] != "benchmark_decode.py" or not report:
            continue
        for row in report["rows"]:
            for impl in report["impls"]:
                result = row.get(impl) or {}
                rtf, config = result.get("rtf"), row["description"].split(",")[0]
                rows.append({"source": config, "mode": row["mode"],
                             "precision": report["precision"], "impl": impl, "rtf": rtf,
                             # beside the card only where the architecture is the card's (paraformer-large)
                             "card_over_rtf": SEED_CARD_RTF / rtf if rtf and config == os.path.basename(LARGE)
                             else None,
                             "speed_up": row.get("throughput_ratio_ours_over_funasr") if impl == "ours" else None,
                             "match": row.get("token_match") if impl == "ours" else None,
                             "cuda_peak_mb": result.get("decode_cuda_peak_mb"),
                             "utterances": result.get("utterances"), "audio_s": result.get("audio_s"),
                             "note": ("FAILED: " + result["error"][:100]) if "error" in result else ""})
    return rows


def summary_markdown(result: dict) -> str:
    probe, env = result["probe"], result["environment"]
    device = env.get("device_name") or "no CUDA device seen"
    lines = [f"# GPU check: {device} ({result['device']})", ""]
    if result["device"] == "cpu":
        lines += [f"**Device: cpu.** {'Quick mode: a' if result['quick'] else 'A'} test of the script on the CPU, "
                  "not a GPU measurement.", ""]
    lines += [f"- date {result['date']}, commit {env.get('git_commit') or result.get('packed', {}).get('git_commit')}"
              f", budget {result['budget_s']} s, took {result['wall_s']:.0f} s",
              f"- Python {probe.get('python')}, torch {probe.get('torch')} (CUDA {probe.get('torch_cuda')}), "
              f"CUDA available: {probe.get('cuda_available')}, devices: {', '.join(probe.get('cuda_devices') or []) or '-'}",
              f"- implementations: {result['impls_note']}",
              f"- packages: " + "; ".join(f"{k} {v}" for k, v in probe.get("packages", {}).items()), ""]
    lines += ["## Steps", "", harness.markdown_table(
        [("step", "name"), ("status", "status"), ("wall s", "wall_s"), ("limit s", "limit_s"), ("error", "error")],
        result["steps"]), ""]
    train = train_rows(result["steps"])
    if train:
        lines += ["## Training step (forward + backward + clip + Adam), random features", "", harness.markdown_table(
            [("config", "config"), ("precision", "precision"), ("impl", "impl"), ("frames/s", "frames_per_s", ".0f"),
             ("x real time", "x_real_time", ".0f"), ("CUDA peak MB", "cuda_peak_mb", ".0f"),
             ("ours / funasr", "ratio", ".2f"), ("note", "note")], train), ""]
    decode = decode_rows(result["steps"])
    if decode:
        lines += [f"## Greedy decoding, random weights and features (seed card: RTF {SEED_CARD_RTF})", "",
                  harness.markdown_table(
                      [("model", "source"), ("batch", "mode"), ("precision", "precision"), ("impl", "impl"),
                       ("RTF", "rtf", ".5f"), (f"{SEED_CARD_RTF} / RTF", "card_over_rtf", ".1f"),
                       ("CUDA peak MB", "cuda_peak_mb", ".0f"), ("speed-up vs funasr", "speed_up", ".2f"),
                       ("token match", "match", ".2f"), ("note", "note")], decode), "",
                  f"The seed card's RTF {SEED_CARD_RTF} is the released paraformer-large on real audio on the card's "
                  f"GPU, in its own conditions. The {os.path.basename(LARGE)} rows here are the same architecture "
                  "(220M, vocab 8404) with random weights on random features: the model's compute only (no audio "
                  "reading, fbank or CMVN), so the comparison is of compute only, not of the released model's "
                  f"end-to-end speed. `{SEED_CARD_RTF} / RTF` > 1: faster than the card's figure; it is given for "
                  f"{os.path.basename(LARGE)} rows only.", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------- driver
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--quick", action="store_true", help="the smallest steps, demo config only (the test)")
    parser.add_argument("--impls", default="auto", help="auto (ours,funasr where FunASR builds) | ours | ours,funasr")
    parser.add_argument("--budget_s", type=float, help="overall seconds (default 420, --quick 240)")
    parser.add_argument("--threads", type=int, help="CPU threads of each step (default 4, --quick 1)")
    parser.add_argument("--only", help="comma-separated step names to run (default: all)")
    parser.add_argument("--site", default=DEFAULT_SITE, help="packed oracle packages, put on PYTHONPATH if present")
    parser.add_argument("--pack", action="store_true", help="(here) copy the oracle packages into --site and stop")
    parser.add_argument("--out", default=os.environ.get("OUT") or os.path.join(harness.REPO, "bench_out", "gpu"))
    args = parser.parse_args(argv)
    if args.pack:
        packed = pack(args.site)
        print(json.dumps(packed, indent=2))
        print(f"packed {args.site}: carry it to the GPU machine (bench/README.md, 'GPU check')")
        return
    started = time.perf_counter()
    budget = args.budget_s or (240.0 if args.quick else 420.0)
    threads = args.threads or (1 if args.quick else 4)
    packed = {}
    if os.path.isdir(args.site):  # the packed oracle packages: after the repo, before nothing else of the image
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), args.site]))
        os.environ.setdefault("RAPIDFUZZ_IMPLEMENTATION", "python")  # its compiled files were left behind
        sys.path.append(args.site)
        with open(os.path.join(args.site, "PACKED.json")) as handle:
            packed = json.load(handle)
        print(f"using the packed packages in {args.site}: {packed.get('versions')}")
    os.makedirs(args.out, exist_ok=True)

    smi = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work, \
            open(os.path.join(args.out, "gpu_check.log"), "w", encoding="utf-8") as log_handle:
        if shutil.which("nvidia-smi"):
            try:
                harness.run_command(["nvidia-smi"], os.path.join(work, "smi.log"), timeout=30)
                smi["nvidia_smi"] = open(os.path.join(work, "smi.log"), errors="replace").read()
            except harness.WorkerError as error:
                smi["nvidia_smi"] = f"nvidia-smi failed: {error}"[:2000]
        else:
            smi["nvidia_smi"] = "nvidia-smi: not on PATH"
        print(smi["nvidia_smi"], flush=True)
        log_handle.write(smi["nvidia_smi"] + "\n")
        try:
            probe = harness.run_in_worker(probe_machine, None, timeout=180, device=args.device,
                                          try_funasr=args.impls == "auto")
        except harness.WorkerError as error:
            probe = {"error": harness.worker_failure(error)["error"]}
        print(json.dumps(probe, indent=2), flush=True)
        log_handle.write(json.dumps(probe, indent=2) + "\n")
        impls, impls_note = choose_impls(args.impls, probe)
        print(f"implementations: {impls_note}", flush=True)

        steps = []
        if args.device != "cpu" and not probe.get("cuda_available"):
            steps.append({"name": "all", "script": "", "command": "", "status": "skipped",
                          "error": f"--device {args.device} but torch sees no CUDA device"})
        else:
            names = set(args.only.split(",")) if args.only else None
            for name, script, arguments, limit in plan(args.device, args.quick, impls, threads):
                if names is not None and name not in names:
                    continue
                left = budget - (time.perf_counter() - started) - RESERVE_S
                if left < MIN_STEP_S:
                    steps.append({"name": name, "script": script, "command": "", "status": "skipped",
                                  "error": f"budget: {left:.0f} s left of {budget:.0f}"})
                    print(f"== {name}: skipped, {left:.0f} s left of the budget", flush=True)
                    continue
                steps.append(run_step(name, script, arguments, min(limit, left), work, log_handle))

    environment = harness.environment(threads, args.device if probe.get("cuda_available") or args.device == "cpu"
                                      else None)
    result = {"benchmark": "gpu_check", "environment": environment, "device": args.device, "quick": args.quick,
              "date": datetime.datetime.now().isoformat(timespec="seconds"), "budget_s": budget,
              "wall_s": time.perf_counter() - started, "impls": impls, "impls_note": impls_note,
              "seed_card_rtf": SEED_CARD_RTF, "probe": probe, "packed": packed, **smi, "steps": steps,
              "train": train_rows(steps), "decode": decode_rows(steps)}
    harness.write_report(os.path.join(args.out, "gpu_check.json"), result)
    markdown = summary_markdown(result)
    with open(os.path.join(args.out, "gpu_check.md"), "w", encoding="utf-8") as handle:
        handle.write(markdown + "\n")
    print("\n" + markdown)
    if not steps or any(s["status"] != "ok" for s in steps):
        print("some steps did not finish: see the Steps table", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
