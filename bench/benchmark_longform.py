#!/usr/bin/env python3
"""Long-form transcription: RTF, peak RSS and CER of ours vs funasr's AutoModel, same recording, same weights.

For each duration in ``--minutes`` a recording is built from ``--data_dir`` (the test split) by
egs/aishell1/local/make_longform_set.py (utterances joined with 0.3-3 s pauses over background noise; cached in
``--work_dir``). Each implementation decodes it in its own harness worker process (so peak RSS is per run):

  ours    ``SpeechRecognizer.from_model_dir(ASR, vad_model=VAD, batch_size_s=...)`` on the WAV path
  funasr  ``funasr.AutoModel(model=ASR, vad_model=VAD).generate(input=path, batch_size_s=...)``

ASR is a FunASR-format model dir (recipe stage 8 / funasr_lite.bin.export_model_dir; ``--exp_dir``
+ ``--checkpoint`` exports one into the work dir first), VAD the released FSMN-VAD. Both run on
``--threads`` torch threads. Reported per run: wall seconds of the call (model loading excluded),
RTF = wall / audio, peak RSS of the process (VmHWM, loading included), CER against the joined
reference (punctuation removed; egs/aishell1/local/score_longform.py's one-alignment CER). The table is printed
and everything written to ``--out`` (JSON).

    # quick look (what runs here): 1 and 2 minutes
    python bench/benchmark_longform.py --exp_dir egs/aishell1/exp/demo --checkpoint model.avg_e5-7.pt \\
        --data_dir egs/aishell1/data/test --minutes 1,2 --out bench_out/longform_small.json
    # the full run (idle machine, 2 cores): 1, 10, 60 minutes, and 180 minutes of ours alone
    python bench/benchmark_longform.py --exp_dir egs/aishell1/exp/demo --checkpoint model.avg_e5-7.pt \\
        --data_dir egs/aishell1/data/test --minutes 1,10,60 --threads 2 --out bench_out/longform.json
    python bench/benchmark_longform.py --exp_dir egs/aishell1/exp/demo --checkpoint model.avg_e5-7.pt \\
        --data_dir egs/aishell1/data/test --minutes 180 --impls ours --threads 2 --out bench_out/longform_3h.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import harness

sys.path.insert(0, os.path.join(harness.REPO, "egs", "aishell1", "local"))  # make_longform_set, score_longform


def funasr_loadable(model_dir: str) -> str:
    """A copy of the model dir whose config.yaml has no ``specaug`` (training-only; FunASR's registry
    does not know our ``specaug_lfr`` name, and inference never applies it)."""
    import shutil
    import tempfile

    import yaml

    with open(os.path.join(model_dir, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if "specaug" not in config:
        return model_dir
    copy = tempfile.mkdtemp(prefix="funasr_model_dir.")
    for name in os.listdir(model_dir):
        if os.path.isfile(os.path.join(model_dir, name)) and name != "config.yaml":
            os.symlink(os.path.abspath(os.path.join(model_dir, name)), os.path.join(copy, name))
    config.pop("specaug", None)
    config.pop("specaug_conf", None)
    with open(os.path.join(copy, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True)
    shutil.copystat(model_dir, copy)
    return copy


def decode_recording(impl: str, wav: str, model_dir: str, vad_model_dir: str, num_threads: int,
                     batch_size_s: float) -> dict:
    """(harness worker) One implementation transcribes the recording; wall seconds of the call
    (model loading excluded) and the text."""
    import torch

    if impl == "ours":
        from funasr_lite import SpeechRecognizer

        asr = SpeechRecognizer.from_model_dir(model_dir, vad_model=vad_model_dir, batch_size_s=batch_size_s)
        start = time.perf_counter()
        (result,) = asr(wav)
        wall = time.perf_counter() - start
    else:
        import logging

        from funasr import AutoModel

        model = AutoModel(model=funasr_loadable(model_dir), vad_model=vad_model_dir, device="cpu", disable_update=True,
                          disable_pbar=True, disable_log=True, ncpu=num_threads)
        torch.set_num_threads(num_threads)
        logging.getLogger().setLevel(logging.WARNING)
        start = time.perf_counter()
        (result,) = model.generate(input=wav, batch_size_s=batch_size_s)
        wall = time.perf_counter() - start
    return {"wall_s": wall, "text": result.get("text", "")}


def ensure_model_dir(args) -> str:
    if args.model_dir:
        return args.model_dir
    from funasr_lite.export.model_dir import export_model_dir

    out = os.path.join(args.work_dir, "asr_model_dir")
    if not os.path.isfile(os.path.join(out, "model.pt")):
        export_model_dir(args.exp_dir, out, args.checkpoint)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", help="FunASR-format ASR model dir")
    parser.add_argument("--exp_dir", help="training exp dir to export (with --checkpoint) instead of --model_dir")
    parser.add_argument("--checkpoint")
    parser.add_argument("--vad_model_dir", help="default: the released FSMN-VAD installed by tools/setup.sh")
    parser.add_argument("--data_dir", help="test split for the recordings (wav.scp, text)")
    parser.add_argument("--minutes", default="1,10,60")
    parser.add_argument("--impls", default="ours,funasr")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch_size_s", type=float, default=300.0)
    parser.add_argument("--work_dir", default="bench_out/longform_work")
    parser.add_argument("--out", default="bench_out/longform.json")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.vad_model_dir is None:
        from funasr_lite.models.vad.model import released_vad_model_dir

        args.vad_model_dir = released_vad_model_dir()
    if not (args.model_dir or args.exp_dir) or not args.data_dir:
        parser.error("give --model_dir (or --exp_dir + --checkpoint) and --data_dir")

    from make_longform_set import make_recording
    from score_longform import cer_counts

    from funasr_lite.data.datadir import read_kv

    os.makedirs(args.work_dir, exist_ok=True)
    model_dir = ensure_model_dir(args)
    rows = []
    for minutes in [float(m) for m in args.minutes.split(",")]:
        name = f"long{int(minutes * 60)}s"
        rec_dir = os.path.join(args.work_dir, name)
        if not os.path.isfile(os.path.join(rec_dir, "text")):
            make_recording(args.data_dir, minutes * 60, args.work_dir, name, args.seed)
        wav = read_kv(os.path.join(rec_dir, "wav.scp"))[name]
        reference = read_kv(os.path.join(rec_dir, "text"))[name]
        for impl in args.impls.split(","):
            try:
                run = harness.run_in_worker(decode_recording, args.threads,
                                            log=os.path.join(args.work_dir, f"{name}.{impl}.log"), impl=impl, wav=wav,
                                            model_dir=model_dir, vad_model_dir=args.vad_model_dir,
                                            num_threads=args.threads, batch_size_s=args.batch_size_s)
            except harness.WorkerError as e:
                print(e, file=sys.stderr)
                rows.append({"minutes": minutes, "impl": impl, "error": str(e).split(":", 1)[0]})
                continue
            errors, ref_chars = cer_counts(reference, run["text"])
            rows.append({"minutes": minutes, "impl": impl, "rtf": run["wall_s"] / (minutes * 60),
                         "wall_s": run["wall_s"], "peak_rss_mb": run["peak_rss_mb"],
                         "cer_percent": 100.0 * errors / max(1, ref_chars), "ref_chars": ref_chars})
            print(json.dumps(rows[-1]), flush=True)

    print(f"\none run each, {args.threads} thread(s)")
    print(harness.markdown_table(
        [("minutes", "minutes", "g"), ("impl", "impl"), ("RTF", "rtf", ".4f"), ("wall s", "wall_s", ".1f"),
         ("peak RSS MB", "peak_rss_mb", ".0f"), ("CER %", "cer_percent", ".2f"), ("error", "error")], rows))
    harness.write_report(args.out, {"benchmark": "longform", "environment": harness.environment(args.threads),
                                    "model_dir": model_dir, "vad_model_dir": args.vad_model_dir,
                                    "threads": args.threads, "batch_size_s": args.batch_size_s, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
