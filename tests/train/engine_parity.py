#!/usr/bin/env python3
"""Train the same tiny ASR, LM and punctuation experiments with two copies of funasr_lite and
compare the checkpoints tensor by tensor (``torch.equal``): the engine against the trainers it
replaced (commit b7efa15, before the one engine).

    python tests/train/engine_parity.py --old_root /path/to/old/checkout --work /tmp/parity [--json out.json] \
        [--only asr|lm|punc ...] [--aligned_only]

``--old_root`` is a directory holding the old ``funasr_lite/`` (a worktree, or ``git archive
b7efa15 funasr_lite | tar -x -C DIR``). Every run is a fresh process (``python -m
funasr_lite.bin.train*``, one thread, CPU) with that copy first on PYTHONPATH.

ASR: ``epoch_1.pt`` and ``epoch_2.pt`` must be equal in every entry (model, optimizer,
scheduler, sampler, RNG states, history, counters). LM and punctuation: the checkpoint layout
changed (the engine's), so model, optimizer and scheduler states are compared, and the RNG state
of rank 0. The old LM/punctuation trainers did not re-seed after building the model, the engine
does (``seed + rank``, the ASR trainer's rule): the old code is run once as it is (its weights are
expected to differ) and once with that one re-seed added (``--aligned``: build the model, then
``seed_everything(seed)``), which must give equal weights.

Every dropout of the three experiments is 0: the engine is what is compared, and our CPU dropout
(``funasr_lite/models/modules/dropout.py``) draws its masks differently from the old code's
``torch.nn.functional.dropout`` (16 bits an element). SpecAugment, the glancing sampler and the
data order still draw from the same generators, so the RNG flow is still compared.
"""

import argparse
import json
import os
import random
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from train_testkit import make_experiment  # noqa: E402

LM_CORPUS = ["甲乙丙丁", "乙丙丁甲乙", "丙丁甲", "丁甲乙丙丁甲"]
PUNC_WORDS = ["我们", "今天", "工作", "人民", "发展", "经济", "建设", "国家", "社会", "文化"]
NO_DROPOUT_ASR = ["++encoder_conf.dropout_rate=0.0", "++encoder_conf.positional_dropout_rate=0.0",
                  "++encoder_conf.attention_dropout_rate=0.0", "++decoder_conf.dropout_rate=0.0",
                  "++decoder_conf.positional_dropout_rate=0.0", "++decoder_conf.self_attention_dropout_rate=0.0",
                  "++decoder_conf.src_attention_dropout_rate=0.0", "++predictor_conf.dropout=0.0"]
NO_DROPOUT_PUNC = ["++model_conf.dropout_rate=0.0", "++encoder_conf.dropout_rate=0.0",
                   "++encoder_conf.positional_dropout_rate=0.0", "++encoder_conf.attention_dropout_rate=0.0"]
PUNC_SMALL = ["++encoder_conf.input_size=16", "++encoder_conf.output_size=16", "++model_conf.embed_unit=16",
              "++model_conf.att_unit=16", "++encoder_conf.linear_units=32", "++encoder_conf.num_blocks=1",
              "++optim_conf.lr=0.01", "++scheduler_conf.warmup_steps=10", "++train_conf.batch_tokens=400",
              "++token_min_count=1", "++train_conf.max_epoch=2", "++train_conf.log_interval=1000"]

# Runs a bin tool with the old LM/punctuation trainer's model builder followed by a re-seed.
ALIGNED_RUNNER = textwrap.dedent("""
    import sys
    import funasr_lite.train.checkpoint as checkpoint
    module_name, builder, tool = sys.argv[1:4]
    module = __import__(module_name, fromlist=["x"])
    real = getattr(module, builder)

    def build_then_reseed(config, *args, **kwargs):
        model = real(config, *args, **kwargs)
        checkpoint.seed_everything(config.get("seed", 0))
        return model

    setattr(module, builder, build_then_reseed)
    tool_module = __import__("funasr_lite.bin." + tool, fromlist=["main"])
    sys.exit(tool_module.main(sys.argv[4:]))
""")


def _env(root: str) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root, HERE])
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    env["FUNASR_LITE_NO_PROGRESS"] = "1"
    return env


def _run(root: str, tool: str, args: List[str], log: str, aligned: str = "") -> None:
    if aligned:
        module, builder = aligned.split(":")
        command = [sys.executable, "-c", ALIGNED_RUNNER, module, builder, tool, *args]
    else:
        command = [sys.executable, "-m", f"funasr_lite.bin.{tool}", *args]
    with open(log, "w") as f:
        result = subprocess.run(command, cwd=root, env=_env(root), stdout=f, stderr=subprocess.STDOUT, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{tool} under {root} failed (exit {result.returncode}); see {log}")


def differences(a: Any, b: Any, where: str = "") -> List[str]:
    """Paths where two checkpoint values differ (tensors by torch.equal, dtype and shape included)."""
    if torch.is_tensor(a) or torch.is_tensor(b):
        if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.dtype != b.dtype or a.shape != b.shape \
                or not torch.equal(a, b):
            return [where or "."]
        return []
    if isinstance(a, dict) and isinstance(b, dict):
        found = [f"{where}/{key}: only in one" for key in sorted(set(a) ^ set(b), key=str)]
        for key in a:
            if key in b:
                found += differences(a[key], b[key], f"{where}/{key}")
        return found
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where}: length {len(a)} vs {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r} vs {b!r}"]


def _load(path: str) -> Dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def asr_parity(old_root: str, work: str) -> Dict[str, Any]:
    paths = make_experiment(os.path.join(work, "asr"))
    common = ["--config", paths["config"], "--train_data", paths["train_data"], "--valid_data", paths["valid_data"],
              "--token_list", paths["token_list"], "--cmvn_file", paths["cmvn_file"], "--device", "cpu",
              "++train_conf.max_epoch=2", "++train_conf.best_metric=cer", *NO_DROPOUT_ASR]
    outs = {}
    for name, root in (("old", old_root), ("new", REPO_ROOT)):
        outs[name] = os.path.join(work, "asr", f"exp_{name}")
        _run(root, "train", [*common, "--output_dir", outs[name]], os.path.join(work, f"asr_{name}.log"))
    report = {}
    for epoch in (1, 2):
        old = _load(os.path.join(outs["old"], f"epoch_{epoch}.pt"))
        new = _load(os.path.join(outs["new"], f"epoch_{epoch}.pt"))
        report[f"epoch_{epoch}.pt"] = {"keys": sorted(old), "differences": differences(old, new)}
    old_avg = _load(os.path.join(outs["old"], "model.avg2.pt"))
    new_avg = _load(os.path.join(outs["new"], "model.avg2.pt"))
    report["model.avg2.pt"] = {"differences": differences(old_avg, new_avg)}
    return report


def _compare_text_task(old: Dict[str, Any], new: Dict[str, Any]) -> Dict[str, List[str]]:
    """model/optimizer/scheduler and rank 0's RNG of an old LM/punc epoch_N.pt vs the engine's."""
    return {
        "model": differences(old["model"], new["model"]),
        "optimizer": differences(old["optimizer"], new["optimizer"]),
        "scheduler": differences(old["scheduler"], new["scheduler"]),
        "rng": differences(old["rng"], new["rng"][0]),
    }


def lm_parity(old_root: str, work: str, aligned_only: bool = False) -> Dict[str, Any]:
    root = os.path.join(work, "lm")
    os.makedirs(root, exist_ok=True)
    tokens = ["<blank>", "<s>", "</s>", "丁", "丙", "乙", "甲", "<unk>"]
    with open(os.path.join(root, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    with open(os.path.join(root, "text"), "w", encoding="utf-8") as f:
        f.write("".join(f"utt{i:03d} {LM_CORPUS[i % len(LM_CORPUS)]}\n" for i in range(40)))
    with open(os.path.join(root, "valid"), "w", encoding="utf-8") as f:
        f.write("v1 甲乙丙丁\nv2 丙丁甲\n")
    with open(os.path.join(root, "lm.yaml"), "w", encoding="utf-8") as f:
        f.write("lm: transformer\nlm_conf: {embed_unit: 16, att_unit: 32, head: 4, unit: 64, layer: 2, "
                "dropout_rate: 0.0, pos_enc: sinusoidal}\noptim: adam\noptim_conf: {lr: 0.005}\n"
                "scheduler: warmuplr\nscheduler_conf: {warmup_steps: 5}\n"
                "train_conf: {max_epoch: 2, batch_tokens: 60, log_interval: 1000}\nseed: 3\n")
    args = ["--text", os.path.join(root, "text"), "--token_list", os.path.join(root, "tokens.txt"),
            "--valid_text", os.path.join(root, "valid"), "--config", os.path.join(root, "lm.yaml"), "--device", "cpu"]
    runs = {"old": (old_root, ""), "old_aligned": (old_root, "funasr_lite.train.lm_trainer:build_lm"),
            "new": (REPO_ROOT, "")}
    if aligned_only:
        del runs["old"]
    for name, (code, aligned) in runs.items():
        _run(code, "train_lm", [*args, "--output_dir", os.path.join(root, name)], os.path.join(work, f"lm_{name}.log"),
             aligned)
    return _text_report(root, 2, list(runs)[:-1])


def _text_report(root: str, epochs: int, old_runs: List[str]) -> Dict[str, Any]:
    report = {}
    for epoch in range(1, epochs + 1):
        new = _load(os.path.join(root, "new", f"epoch_{epoch}.pt"))
        for name in old_runs:
            old = _load(os.path.join(root, name, f"epoch_{epoch}.pt"))
            report[f"{name} epoch_{epoch}.pt"] = _compare_text_task(old, new)
    return report


def _tagged_paragraph(rng: random.Random) -> str:
    tokens = []
    for _ in range(rng.randint(2, 5)):
        tokens += [f"{rng.choice(PUNC_WORDS)}/n" for _ in range(rng.randint(2, 4))]
        end = rng.random()
        tokens += ["吗/y", "？/w"] if end < 0.3 else ["了/y", "。/w"] if end < 0.6 else ["和/c", "甲/n", "，/w"]
    return "  ".join(tokens)


def punc_parity(old_root: str, work: str, aligned_only: bool = False) -> Dict[str, Any]:
    root = os.path.join(work, "punc")
    os.makedirs(root, exist_ok=True)
    rng = random.Random(0)
    text = os.path.join(root, "pd.txt")
    with open(text, "w", encoding="utf-8") as f:
        f.write("\n".join(_tagged_paragraph(rng) for _ in range(120)) + "\n")
    config = os.path.join(REPO_ROOT, "egs", "aishell1", "conf", "punc.yaml")
    runs = {"old": (old_root, ""), "old_aligned": (old_root, "funasr_lite.train.punc_trainer:build_ct_transformer"),
            "new": (REPO_ROOT, "")}
    if aligned_only:
        del runs["old"]
    for name, (code, aligned) in runs.items():
        _run(code, "train_punc", ["--text", text, "--config", config, "--device", "cpu", *PUNC_SMALL, *NO_DROPOUT_PUNC,
                                  "--output_dir", os.path.join(root, name)], os.path.join(work, f"punc_{name}.log"),
             aligned)
    return _text_report(root, 2, list(runs)[:-1])


def run_checks(old_root: str, work: str, only=None, aligned_only: bool = False) -> Dict[str, Any]:
    old_root, work = os.path.abspath(old_root), os.path.abspath(work)
    report = {}
    if not only or "asr" in only:
        report["asr"] = asr_parity(old_root, work)
    if not only or "lm" in only:
        report["lm"] = lm_parity(old_root, work, aligned_only)
    if not only or "punc" in only:
        report["punc"] = punc_parity(old_root, work, aligned_only)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old_root", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--json", default=None)
    parser.add_argument("--only", choices=("asr", "lm", "punc"), action="append")
    parser.add_argument("--aligned_only", action="store_true", help="LM/punc: skip the old code run as it is")
    args = parser.parse_args(argv)
    report = run_checks(args.old_root, args.work, args.only, args.aligned_only)
    text = json.dumps(report, indent=1, ensure_ascii=False)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
