#!/usr/bin/env python3
"""Learning curves per epoch of our trainer (one or more exp dirs) and FunASR's `train_ds`.

    # ours: recipe stage 4 with two seeds, every epoch checkpoint kept (keep_nbest_models=0)
    (cd egs/aishell1 && bash run.sh --stage 4 --stop_stage 4 --exp_tag demo \\
        --train_args "++train_conf.max_epoch=4 ++train_conf.keep_nbest_models=0")
    (cd egs/aishell1 && bash run.sh --stage 4 --stop_stage 4 --exp_tag demo_seed2 \\
        --train_args "++seed=2 ++train_conf.max_epoch=4 ++train_conf.keep_nbest_models=0")
    # FunASR's trainer on the same data + config, then every epoch of every run decoded and drawn
    python bench/learning_curve.py --config egs/aishell1/conf/demo.yaml --data_root egs/aishell1/data \\
        --ours egs/aishell1/exp/demo egs/aishell1/exp/demo_seed2 --work_dir bench_out/learning_curve \\
        --epochs 4 --threads 2 --out bench_out/learning_curve.json --png egs/aishell1/learning_curve.png

FunASR side (bench/trainer_pair.py, shared with benchmark_trainer_full.py: config mapping, jsonl
lists with source_len = LFR frames, the harness-worker launcher with the CPU device fix and the
epoch probe):
``funasr.bin.train_ds`` trains --epochs epochs on the WHOLE train data dir (the utterances our
dataset keeps) and validates after every epoch on the dev data dir (same filter); it saves
``model.pt.ep{N}`` after each epoch and keeps them all (keep_nbest_models huge; validation and
saving never inside an epoch). Rerunning resumes: FunASR continues from its last epoch
checkpoint (``model.pt``), and a finished FunASR run is not started again.

Every number is measured the same way on both sides:
  dev CER    each epoch's checkpoint (FunASR: ``model.pt.ep{N}``'s state_dict put into a model dir
             with config.yaml, am.mvn, tokens.txt; ours: ``epoch_N.pt`` of the exp dir) decoded
             greedily by ``python -m funasr_lite.bin.infer`` (run in-process) on the dev data dir,
             scored by funasr_lite.scoring.cer (what local/score.sh runs). Our trainer's own
             validation CER (greedy too, same scoring alignment, but on its batched dev loader) is
             kept beside it as ``dev_cer_in_training``; an epoch whose checkpoint was pruned has
             only that one (``cer_source``).
  dev loss   the utterance-weighted mean of the model's loss over the dev set (weight = the
  dev acc    batch size the model returns), as our trainer averages it; FunASR's side is tallied
             from its own validation pass by the probe. FunASR's own log value (the plain mean over
             its dev batches) is kept as ``dev_loss_funasr_log`` / ``dev_acc_funasr_log``.
  train loss the same weighted mean over the epoch's training batches (SpecAug and dropout on).
  epoch_s    the training epoch alone (ours: epochs.jsonl ``seconds``; FunASR: Trainer.train_epoch);
  frames/s   model-input (LFR) frames of the epoch / epoch_s.
With --test_set, each run's averaged model (ours ``model.avg{K}.pt``: the K best epochs by the
config's best_metric; FunASR ``model.pt.avg{K}``: the K best by dev acc) is decoded on it too.

A decode is cached in <work_dir>/decode/<run>/<what>/result.json and redone only when its
checkpoint changed, so rerunning (e.g. --skip_funasr_train after a finished run) only collects.
If FunASR's training fails or times out, the epochs it finished are still collected (exit 1).
Outputs: --out JSON (every number), a markdown table on stdout, --png (dev CER, dev loss, train
loss per epoch, one line per run).
"""

from __future__ import annotations

import argparse
import copy
import glob
import json
import os
import re
import shutil
import sys
import time

import harness
import trainer_pair

FUNASR_RUN = "funasr_train_ds"
KEEP_ALL = 10 ** 9  # FunASR's keep_nbest_models: never prune an epoch checkpoint
TRAIN_LOG_VALID = re.compile(r"epoch (\d+) validation: (.*)$")
TRAIN_LOG_SECONDS = re.compile(r"epoch (\d+) trained in ([0-9.]+) s")


# ---------------------------------------------------------------- decoding and scoring (both sides)
def _file_stamp(path: str) -> list:
    stat = os.stat(path)
    return [stat.st_size, stat.st_mtime_ns]


def decode_and_score(model_args: list, stamp_path: str, data_dir: str, out_dir: str, threads: int) -> dict:
    """Greedy decode of ``data_dir`` with ``python -m funasr_lite.bin.infer <model_args>`` (in this
    process) into out_dir/1best_recog, scored against data_dir/text (cer.txt, per_utt, errors.txt).
    Cached in out_dir/result.json while ``stamp_path`` (the checkpoint) is unchanged."""
    from funasr_lite.bin.infer import main as infer_main
    from funasr_lite.scoring.decode_dir import score_decode_dir

    cache = os.path.join(out_dir, "result.json")
    stamp = _file_stamp(stamp_path)
    if os.path.isfile(cache):
        with open(cache, encoding="utf-8") as handle:
            cached = json.load(handle)
        if cached.get("checkpoint_stamp") == stamp and cached.get("data_dir") == os.path.abspath(data_dir):
            return cached
    os.makedirs(out_dir, exist_ok=True)
    argv = [*model_args, "--data_dir", data_dir, "--output_dir", out_dir, "--decode_mode", "greedy",
            "--no_timestamps", "--num_threads", str(threads)]
    start = time.perf_counter()
    status = infer_main(argv)
    seconds = time.perf_counter() - start
    if status:
        raise SystemExit(f"decoding failed: python -m funasr_lite.bin.infer {' '.join(argv)}")
    score = score_decode_dir(os.path.join(data_dir, "text"), os.path.join(out_dir, "1best_recog", "text"), out_dir)
    result = {"cer": score.cer_percent, "errors": score.errors, "ref_chars": score.num_ref_chars,
              "insertions": score.insertions, "deletions": score.deletions, "substitutions": score.substitutions,
              "utterances": len(score.utts), "missing_hyps": len(score.missing_hyp_utts), "decode_s": seconds,
              "command": "python -m funasr_lite.bin.infer " + " ".join(argv), "output_dir": out_dir,
              "checkpoint_stamp": stamp, "data_dir": os.path.abspath(data_dir)}
    with open(cache + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1)
    os.replace(cache + ".tmp", cache)
    return result


# ---------------------------------------------------------------- FunASR's train_ds
def funasr_model_dir(funasr_yaml: dict, state: dict, cmvn_file: str, token_list: str, out_dir: str) -> str:
    """A FunASR-layout model dir of one trainer checkpoint: config.yaml (the training config,
    file names relative), model.pt (the state_dict alone), am.mvn, tokens.txt; atomic."""
    import torch
    import yaml

    config = copy.deepcopy(funasr_yaml)
    config["frontend_conf"]["cmvn_file"] = "am.mvn"
    config["tokenizer_conf"]["token_list"] = "tokens.txt"
    tmp = out_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with open(os.path.join(tmp, "config.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, allow_unicode=True, sort_keys=False)
    torch.save(state, os.path.join(tmp, "model.pt"))
    shutil.copyfile(cmvn_file, os.path.join(tmp, "am.mvn"))
    shutil.copyfile(token_list, os.path.join(tmp, "tokens.txt"))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return out_dir


def read_jsonl_records(path: str) -> dict:
    """{epoch: record} of a JSON-lines file (the last record of an epoch wins: a resumed run)."""
    records = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    try:
                        record = json.loads(line)
                    except ValueError as e:
                        raise SystemExit(f"{path}:{number}: not JSON ({e})") from None
                    records[int(record["epoch"])] = record
    return records


def train_funasr(args, config: dict, data: dict, work: str) -> None:
    """Write the lists and funasr.yaml, and run (or resume) train_ds until --epochs are done."""
    import yaml

    exp = os.path.join(work, "exp")
    if os.path.isfile(os.path.join(exp, f"model.pt.ep{args.epochs}")):
        print(f"FunASR: {args.epochs} epochs already trained in {exp}", file=sys.stderr)
        return
    setup = funasr_setup(args, config)
    with open(os.path.join(work, "funasr.yaml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(setup, handle, allow_unicode=True, sort_keys=False)
    runs = len(glob.glob(os.path.join(work, "run*")))
    run_dir = os.path.join(work, f"run{runs + 1}")
    argv = trainer_pair.commands(args, {"dir": data["train_dir"], "train_jsonl": data["train_jsonl"],
                                        "valid_jsonl": data["dev_jsonl"]}, work, run_dir)["funasr"]
    # One output dir for every run (the benchmark gives each run its own): train_ds resumes from it.
    argv = [f"++output_dir={exp}" if arg.startswith("++output_dir=") else arg for arg in argv]
    resumed = "resuming" if os.path.isfile(os.path.join(exp, "model.pt")) else "starting"
    print(f"FunASR train_ds: {resumed}, {args.epochs} epochs, log {run_dir}/log.txt", file=sys.stderr)
    trainer_pair.launch_trainer("funasr", argv, args.threads, run_dir, args.timeout,
                                epoch_log=os.path.join(work, "epochs.jsonl"))


def checkpoint_model_dir(setup: dict, args, checkpoint: str, name, model_dir: str, out_dir: str) -> dict:
    """Make ``model_dir`` from a FunASR trainer checkpoint (unless done for this very file) and
    return what the checkpoint says of its validation (FunASR's own dev loss/acc of ``name``)."""
    from funasr_lite.models.load import extract_model_state, load_checkpoint

    meta_path = os.path.join(out_dir, "checkpoint.json")
    if os.path.isfile(meta_path) and os.path.isdir(model_dir):
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
        if meta.get("stamp") == _file_stamp(checkpoint):
            return meta
    saved = load_checkpoint(checkpoint)
    meta = {"stamp": _file_stamp(checkpoint),
            "dev_loss_funasr_log": (saved.get("val_loss_step_or_epoch") or {}).get(name),
            "dev_acc_funasr_log": (saved.get("val_acc_step_or_epoch") or {}).get(name)}
    funasr_model_dir(setup, dict(extract_model_state(saved, checkpoint)), args.cmvn_file, args.token_list, model_dir)
    os.makedirs(out_dir, exist_ok=True)
    with open(meta_path, "w", encoding="utf-8") as handle:
        json.dump(meta, handle)
    return meta


def funasr_setup(args, config: dict) -> dict:
    return trainer_pair.funasr_config(config, args, max_epoch=args.epochs, keep_nbest_models=KEEP_ALL)


def collect_funasr(args, config: dict, data: dict, work: str) -> dict:
    """Per-epoch records of FunASR's run: probe log + checkpoint metrics + our decode of each epoch."""
    exp = os.path.join(work, "exp")
    probe = read_jsonl_records(os.path.join(work, "epochs.jsonl"))
    setup = funasr_setup(args, config)
    epochs = []
    for epoch in range(1, args.epochs + 1):
        checkpoint = os.path.join(exp, f"model.pt.ep{epoch}")
        row = {"epoch": epoch, "checkpoint": checkpoint if os.path.isfile(checkpoint) else None}
        record = probe.get(epoch)
        if record:
            row.update(train_loss=record.get("train", {}).get("loss"), dev_loss=record.get("valid", {}).get("loss"),
                       dev_acc=record.get("valid", {}).get("acc"), epoch_s=record["seconds"],
                       frames=record["frames"], utterances=record["utterances"], batches=record["batches"],
                       frames_per_s=record["frames"] / record["seconds"] if record["seconds"] else None,
                       dev_utterances=record.get("valid", {}).get("utterances"))
        if row["checkpoint"]:
            out_dir = os.path.join(args.work_dir, "decode", FUNASR_RUN, f"epoch{epoch}")
            model_dir = os.path.join(work, "model_dirs", f"epoch{epoch}")
            meta = checkpoint_model_dir(setup, args, checkpoint, f"model.pt.ep{epoch}", model_dir, out_dir)
            row.update(dev_loss_funasr_log=meta["dev_loss_funasr_log"], dev_acc_funasr_log=meta["dev_acc_funasr_log"])
            decoded = decode_and_score(["--model_dir", model_dir], checkpoint, data["dev_dir"], out_dir, args.threads)
            row.update(dev_cer=decoded["cer"], cer_source="infer", decode=decoded)
        epochs.append(row)
    run = {"name": FUNASR_RUN, "kind": "funasr", "dir": exp, "seed": setup["seed"], "epochs": epochs}
    averaged = os.path.join(exp, f"model.pt.avg{setup['train_conf']['avg_nbest_model']}")
    if args.test_dir and os.path.isfile(averaged) and all(row["checkpoint"] for row in epochs):
        model_dir = os.path.join(work, "model_dirs", "avg")
        out_dir = os.path.join(args.work_dir, "decode", FUNASR_RUN, "test_avg")
        checkpoint_model_dir(setup, args, averaged, None, model_dir, out_dir)
        run["test"] = {"checkpoint": averaged, "selection": "FunASR: the avg_nbest_model best epochs by dev acc",
                       **decode_and_score(["--model_dir", model_dir], averaged, args.test_dir, out_dir, args.threads)}
    return run


# ---------------------------------------------------------------- our exp dirs
def our_records(exp_dir: str) -> tuple:
    """({epoch: {"train": {...}, "valid": {...}, "seconds": s}}, source file) from epochs.jsonl,
    else from train.log's 'epoch N validation: ...' / 'epoch N trained in S s' lines."""
    from funasr_lite.train.train_log import EPOCHS_FILE, read_epoch_records

    path = os.path.join(exp_dir, EPOCHS_FILE)
    if os.path.isfile(path):
        return {int(r["epoch"]): r for r in read_epoch_records(path)}, path
    log = os.path.join(exp_dir, "train.log")
    if not os.path.isfile(log):
        raise SystemExit(f"{exp_dir}: no {EPOCHS_FILE} or train.log (is it a training exp dir?)")
    records = {}
    with open(log, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            match = TRAIN_LOG_VALID.search(line.rstrip())
            if match:
                parts = match.group(2).split()
                values = {key: float(value) for key, value in zip(parts[::2], parts[1::2])}
                records.setdefault(int(match.group(1)), {"train": {}})["valid"] = values
            match = TRAIN_LOG_SECONDS.search(line)
            if match:
                records.setdefault(int(match.group(1)), {"train": {}, "valid": {}})["seconds"] = float(match.group(2))
    return records, log


def collect_ours(args, exp_dir: str, data: dict) -> dict:
    from funasr_lite.utils.config import load_yaml

    exp_dir = os.path.abspath(exp_dir)
    name = os.path.basename(exp_dir)
    records, source = our_records(exp_dir)
    config_path = os.path.join(exp_dir, "config.yaml")
    exp_config = load_yaml(config_path) if os.path.isfile(config_path) else {}
    run = {"name": name, "kind": "ours", "dir": os.path.abspath(exp_dir), "seed": exp_config.get("seed"),
           "records_from": source, "epochs": []}
    train_data = exp_config.get("train_data")
    if train_data and os.path.abspath(train_data) != os.path.abspath(data["train_dir"]):
        run["warning"] = f"trained on {train_data}, not {data['train_dir']}: frames/s counts the latter's frames"
        print(f"WARNING {name}: {run['warning']}", file=sys.stderr)
    for epoch in range(1, args.epochs + 1):
        record = records.get(epoch)
        checkpoint = os.path.join(exp_dir, f"epoch_{epoch}.pt")
        row = {"epoch": epoch, "checkpoint": checkpoint if os.path.isfile(checkpoint) else None}
        if record:
            seconds = record.get("seconds")
            row.update(train_loss=(record.get("train") or {}).get("loss"), dev_loss=(record.get("valid") or {}).get("loss"),
                       dev_acc=(record.get("valid") or {}).get("acc"),
                       dev_cer_in_training=(record.get("valid") or {}).get("cer"), epoch_s=seconds,
                       frames=data["train_lfr_frames"],
                       frames_per_s=data["train_lfr_frames"] / seconds if seconds else None)
        if row["checkpoint"]:
            decoded = decode_and_score(["--exp_dir", exp_dir, "--checkpoint", f"epoch_{epoch}.pt"], checkpoint,
                                       data["dev_dir"], os.path.join(args.work_dir, "decode", name, f"epoch{epoch}"),
                                       args.threads)
            row.update(dev_cer=decoded["cer"], cer_source="infer", decode=decoded)
        elif row.get("dev_cer_in_training") is not None:
            row.update(dev_cer=row["dev_cer_in_training"], cer_source="in_training (epoch checkpoint pruned)")
        if record or row["checkpoint"]:
            run["epochs"].append(row)
    averaged = sorted(glob.glob(os.path.join(exp_dir, "model.avg*.pt")))
    if args.test_dir and averaged:
        chosen = averaged[-1]
        wanted = os.path.join(exp_dir, f"model.avg{(exp_config.get('train_conf') or {}).get('avg_nbest_model')}.pt")
        if wanted in averaged:
            chosen = wanted
        run["test"] = {"checkpoint": chosen,
                       "selection": f"ours: the best epochs by {(exp_config.get('train_conf') or {}).get('best_metric')}",
                       **decode_and_score(["--exp_dir", exp_dir, "--checkpoint", os.path.basename(chosen)], chosen,
                                          args.test_dir, os.path.join(args.work_dir, "decode", name, "test_avg"),
                                          args.threads)}
    return run


# ---------------------------------------------------------------- report
def _fmt(value, digits) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown_table(runs: list, epochs: int) -> str:
    """epoch x run: 'dev CER / dev loss / train loss', then mean epoch seconds and frames/s."""
    table = []
    for epoch in range(1, epochs + 1):
        line = {"epoch": epoch}
        for run in runs:
            row = next((r for r in run["epochs"] if r["epoch"] == epoch), {})
            cer = _fmt(row.get("dev_cer"), 1) + ("*" if row.get("cer_source", "infer") != "infer" else "")
            line[run["name"]] = f"{cer} / {_fmt(row.get('dev_loss'), 3)} / {_fmt(row.get('train_loss'), 3)}"
        table.append(line)
    for title, key, digits in (("epoch s (mean)", "epoch_s", 1), ("frames/s (mean)", "frames_per_s", 0)):
        line = {"epoch": title}
        for run in runs:
            values = [r[key] for r in run["epochs"] if r.get(key)]
            line[run["name"]] = _fmt(sum(values) / len(values), digits) if values else "-"
        table.append(line)
    if any("test" in run for run in runs):
        table.append({"epoch": "test CER, averaged model",
                      **{run["name"]: _fmt(run["test"]["cer"], 1) if "test" in run else "-" for run in runs}})
    lines = ["dev CER % (greedy) / dev loss / train loss per epoch", "",
             harness.markdown_table([("epoch", "epoch")] + [(run["name"], run["name"]) for run in runs], table)]
    if any(r.get("cer_source", "infer") != "infer" for run in runs for r in run["epochs"]):
        lines.append("\n\\* our trainer's own validation CER (the epoch checkpoint was pruned)")
    return "\n".join(lines)


def plot(runs: list, path: str, title: str) -> None:
    """Dev CER, dev loss and train loss per epoch, one line per run (FunASR dashed), PNG, atomic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (("dev_cer", "dev CER (%, greedy)"), ("dev_loss", "dev loss"), ("train_loss", "train loss"))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.5), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for index, run in enumerate(runs):
            points = [(r["epoch"], r[key]) for r in run["epochs"] if r.get(key) is not None]
            if not points:
                continue
            style = dict(color="black", linestyle="--", marker="s") if run["kind"] == "funasr" else \
                dict(color=f"C{index}", linestyle="-", marker="o")
            ax.plot(*zip(*points), label=run["name"], markersize=4, **style)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path + ".tmp.png", dpi=110)
    os.replace(path + ".tmp.png", path)
    plt.close(fig)


# ---------------------------------------------------------------- main
def prepare_lists(args, config: dict, work: str) -> dict:
    """Train/dev utterances our dataset keeps, as FunASR jsonl lists (rewritten only when absent)."""
    lfr_n = int((config.get("frontend_conf") or {}).get("lfr_n", 1))
    data = {"train_dir": args.train_dir, "dev_dir": args.dev_dir}
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    for part, data_dir in (("train", args.train_dir), ("dev", args.dev_dir)):
        files, keys = trainer_pair.read_data_files(data_dir)
        kept = set(trainer_pair.kept_utterances(data_dir, config, args.token_list, args.cmvn_file))
        keys = [key for key in keys if key in kept]
        path = os.path.join(work, "data", f"{part}.jsonl")
        if not os.path.isfile(path):
            trainer_pair.write_jsonl(path + ".tmp", files, keys, lfr_n)
            os.replace(path + ".tmp", path)
        data[f"{part}_jsonl"] = path
        data[f"{part}_utterances"] = len(keys)
        data[f"{part}_lfr_frames"] = sum(trainer_pair.lfr_frames(files, key, lfr_n) for key in keys)
        data[f"{part}_audio_hours"] = sum(int(files["utt2num_frames"][key]) for key in keys) * 0.01 / 3600
    return data


def differences(config: dict) -> list:
    """What still differs between the two trainers' runs (beyond the implementation)."""
    notes = ["batching: FunASR's BatchSampler sorts each buffer shortest-first and keeps that order, ours sorts "
             "longest-first and shuffles the batches; FunASR caps a batch at 200 utterances",
             "features: FunASR computes fbank from the wavs in every epoch (dither 0), ours reads stage-1 feats.scp",
             "seed: the same config seed, but the two trainers draw different permutations and SpecAug masks"]
    if (config.get("dataset_conf") or {}).get("sortagrad"):
        notes.append("dataset_conf.sortagrad: our first epoch(s) run shortest-first; FunASR has no counterpart")
    return notes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python bench/learning_curve.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=os.path.join(harness.REPO, "egs/aishell1/conf/demo.yaml"))
    parser.add_argument("--data_root", default=os.path.join(harness.REPO, "egs/aishell1/data"),
                        help="holds the train/dev(/test) data dirs (wav.scp, feats.scp, text, utt2num_frames)")
    parser.add_argument("--train_set", default="train")
    parser.add_argument("--dev_set", default="dev")
    parser.add_argument("--test_set", default="test", help="decode the averaged models on it ('' or absent: skip)")
    parser.add_argument("--lang_dir", help="default <data_root>/lang_char (tokens.txt)")
    parser.add_argument("--cmvn_file", help="default <data_root>/<train_set>/am.mvn")
    parser.add_argument("--ours", nargs="*", default=[], help="our exp dirs (epochs.jsonl or train.log, epoch_N.pt)")
    parser.add_argument("--work_dir", default="bench_out/learning_curve",
                        help="FunASR's run (funasr/: lists, funasr.yaml, exp/, model dirs) and every decode")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of FunASR's trainer and of decoding")
    parser.add_argument("--timeout", type=float, default=12 * 3600, help="seconds for FunASR's training run")
    parser.add_argument("--skip_funasr_train", action="store_true",
                        help="do not start FunASR's trainer; collect the epochs it has finished")
    parser.add_argument("--out", help="JSON report")
    parser.add_argument("--png", help="the picture")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from funasr_lite.train.config import resolve_training_config

    if args.epochs < 1:
        raise SystemExit("--epochs must be >= 1")
    args.data_root = os.path.abspath(args.data_root)
    args.train_dir = os.path.join(args.data_root, args.train_set)
    args.dev_dir = os.path.join(args.data_root, args.dev_set)
    args.test_dir = os.path.join(args.data_root, args.test_set) if args.test_set else None
    if args.test_dir and not os.path.isfile(os.path.join(args.test_dir, "text")):
        print(f"no {args.test_dir}/text: the averaged models are not decoded", file=sys.stderr)
        args.test_dir = None
    args.token_list = os.path.abspath(os.path.join(args.lang_dir or os.path.join(args.data_root, "lang_char"),
                                                   "tokens.txt"))
    args.cmvn_file = os.path.abspath(args.cmvn_file or os.path.join(args.train_dir, "am.mvn"))
    args.config = os.path.abspath(args.config)
    args.work_dir = os.path.abspath(args.work_dir)
    for path in (args.config, args.token_list, args.cmvn_file, os.path.join(args.dev_dir, "text")):
        if not os.path.isfile(path):
            raise SystemExit(f"missing {path}")
    for exp_dir in args.ours:
        if not os.path.isdir(exp_dir):
            raise SystemExit(f"--ours {exp_dir}: no such exp dir")
    config = resolve_training_config(args.config, token_list=args.token_list, cmvn_file=args.cmvn_file)
    args.seed_value = int(config.get("seed", 0))  # trainer_pair.commands' names
    work = os.path.join(args.work_dir, "funasr")
    data = prepare_lists(args, config, work)
    print(f"train {data['train_utterances']} utterances ({data['train_audio_hours']:.2f} h), dev "
          f"{data['dev_utterances']}; work dir {args.work_dir}", file=sys.stderr)

    training_error = None
    if not args.skip_funasr_train:
        try:
            train_funasr(args, config, data, work)
        except SystemExit as e:  # harness.WorkerError too (failed, timed out): still collect the finished epochs
            training_error = str(e)
            print(f"FunASR training did not finish: {training_error}", file=sys.stderr)
    runs = [collect_ours(args, exp_dir, data) for exp_dir in args.ours]
    runs.append(collect_funasr(args, config, data, work))

    table = markdown_table(runs, args.epochs)
    print(table)
    report = {
        "tool": "learning_curve", "environment": harness.environment(args.threads),
        "config": args.config, "epochs": args.epochs,
        "data": {key: value for key, value in data.items() if not key.endswith("_jsonl")},
        "test_dir": args.test_dir,
        "funasr_config": funasr_setup(args, config),
        "measured": {
            "dev_cer": "greedy decode of the epoch checkpoint by python -m funasr_lite.bin.infer on the dev data dir, "
                       "scored by funasr_lite.scoring.cer (local/score.sh); cer_source says otherwise",
            "dev_loss/dev_acc": "utterance-weighted mean over the dev set (weight = batch size), as our trainer",
            "train_loss": "utterance-weighted mean over the epoch's training batches",
            "epoch_s": "the training epoch alone; frames_per_s = LFR frames / epoch_s",
        },
        "differences": differences(config),
        "table": table,
        "funasr_training_error": training_error,
        "runs": runs,
    }
    if args.out:
        harness.write_report(os.path.abspath(args.out), report)
    if args.png:
        plot(runs, os.path.abspath(args.png),
             f"{os.path.basename(args.config)}: our trainer vs FunASR train_ds ({data['train_audio_hours']:.2f} h train)")
        print(f"wrote {args.png}")
    return 1 if training_error else 0


if __name__ == "__main__":
    sys.exit(main())
