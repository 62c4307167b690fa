#!/usr/bin/env python3
"""Kill drills: ``kill -9`` the trainer at random moments (and once inside a checkpoint write),
rerun after each kill, and check that it resumes, that no checkpoint is ever corrupt and that the
final weights equal an uninterrupted run's; a full disk during a checkpoint write; an fbank job
and a decode job killed mid-way and rerun.

    python tests/drills/kill_drill.py [--kills 10] [--seed 0] [--work DIR] [--json kill_drill.json]

Prints a table and writes JSON. tests/drills/test_kill_drills.py runs a small version in CI
(3 random kills). The model and data are tiny (tests/train/train_testkit.py's experiment).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import drill_kit as kit  # noqa: E402

sys.path.insert(0, os.path.join(kit.REPO_ROOT, "tests", "train"))
import train_testkit  # noqa: E402

HOOKED_TRAIN = os.path.join(HERE, "train_with_hooks.py")
HOOKED_DECODE = os.path.join(HERE, "decode_with_hooks.py")
# Mid-epoch checkpoints every 2 updates: kills land between, and inside, frequent checkpoint writes.
OVERRIDES = ["++train_conf.save_every_steps=2", "++train_conf.max_epoch=2", "++train_conf.validate_cer=false",
             "++dataset_conf.num_workers=0", "++dataset_conf.batch_bins=50", "++train_conf.log_interval=1"]


def make_training(root: str, num_train: int = 16) -> Dict[str, str]:
    paths = train_testkit.make_experiment(root)
    train_testkit.write_data_dir(paths["train_data"], train_testkit.random_utterances(num_train, 11, "tr"),
                                 n_mels=4, seed=5)
    return paths


def train_command(paths: Dict[str, str], output_dir: str) -> List[str]:
    return [sys.executable, HOOKED_TRAIN, *train_testkit.cli_args(paths, output_dir), "--device", "cpu", *OVERRIDES]


def start(command: List[str], log_path: str, env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen(command, cwd=kit.REPO_ROOT, env=kit.subprocess_env(env), stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def kill9(proc: subprocess.Popen) -> bool:
    """SIGKILL ``proc``; True if it was still running (so the kill cut it short)."""
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def checkpoint_report(exp_dir: str) -> Dict[str, object]:
    """Load every ``*.pt`` of ``exp_dir`` (weights_only); temp files left by killed writes are counted."""
    from funasr_lite.models.load import CheckpointError, load_checkpoint

    corrupt, loaded = [], 0
    for path in sorted(glob.glob(os.path.join(exp_dir, "*.pt"))):
        try:
            load_checkpoint(path)
            loaded += 1
        except CheckpointError as e:
            corrupt.append(str(e))
    temps = [os.path.basename(p) for p in glob.glob(os.path.join(exp_dir, ".*.tmp"))]
    return {"loaded": loaded, "corrupt": corrupt, "temp_files": temps}


def final_weights(exp_dir: str, epoch: int = 2) -> Dict[str, torch.Tensor]:
    return torch.load(os.path.join(exp_dir, f"epoch_{epoch}.pt"), map_location="cpu", weights_only=True)["model"]


def weights_equal(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def reference_run(paths: Dict[str, str], root: str) -> Dict[str, object]:
    exp = os.path.join(root, "exp_reference")
    begin = time.monotonic()
    proc = start(train_command(paths, exp), os.path.join(root, "reference.log"))
    # the moment training starts: the trainer writes config.yaml into the exp dir first
    while proc.poll() is None and not os.path.exists(os.path.join(exp, "config.yaml")):
        time.sleep(0.05)
    started = time.monotonic()
    rc = proc.wait()
    if rc != 0:
        raise RuntimeError(f"the uninterrupted training failed (exit {rc}); see {root}/reference.log")
    return {"exp": exp, "startup_s": started - begin, "train_s": time.monotonic() - started}


def _latest_step(exp: str) -> Optional[int]:
    latest = os.path.join(exp, "checkpoint_latest.pt")
    if not os.path.exists(latest):
        return None
    return int(torch.load(latest, map_location="cpu", weights_only=True)["step"])


def _held_at_step(flag: str) -> Optional[int]:
    """The update the trainer held at (train_with_hooks.py writes it into the flag), None if it never held."""
    if not os.path.exists(flag):
        return None
    with open(flag, encoding="utf-8") as f:
        return int(f.read())


def killed_training(paths: Dict[str, str], root: str, kills: int, total_steps: int, rng: random.Random,
                    kill_in_checkpoint_write: bool = True) -> Dict[str, object]:
    """Kill -9 the trainer ``kills`` times, rerun after each, finish; check every checkpoint after
    every kill. The first kill lands inside a checkpoint write; the others right after a random
    update still to do has been logged, before that update's checkpoint save. The trainer itself
    stops there and waits to be killed (train_with_hooks.py, DRILL_HOLD_AT_STEP): the run's progress,
    not wall time, picks the moment, so however busy the machine the kill comes before the end. What
    survives a kill -9 is the files on disk, and they change only at checkpoint writes, so a kill
    anywhere between two writes leaves what this one leaves; inside a write is the first kill."""
    exp = os.path.join(root, "exp_killed")
    events, logs = [], []
    for index in range(kills + 1):
        in_write = kill_in_checkpoint_write and index == 0
        log = os.path.join(root, f"killed_run{index + 1}.log")
        logs.append(log)
        done = _latest_step(exp) or 0
        if index == kills:  # the last run goes to the end
            proc = start(train_command(paths, exp), log)
            events.append({"run": index + 1, "killed": False, "where": "to the end", "exit": proc.wait()})
            break
        if in_write:
            flag = os.path.join(root, f"in_checkpoint_write.{index}")
            env = {"DRILL_SAVE_FLAG": flag, "DRILL_SLOW_SAVE": "600"}
            where = "inside a checkpoint write (half written)"
        else:
            # this kill lands in its share of the updates left, leaving room for the kills to come
            still_to_kill = kills - index
            target = rng.randint(done + 1, max(done + 1, done + (total_steps - done) // still_to_kill))
            flag = os.path.join(root, f"held_at_step.{index}")
            env = {"DRILL_HOLD_AT_STEP": str(target), "DRILL_HOLD_FLAG": flag}
            where = f"update {target} logged, before its checkpoint save"
        proc = start(train_command(paths, exp), log, env)
        # the trainer creates the flag when it reaches the moment and then waits there
        while proc.poll() is None and not os.path.exists(flag):
            time.sleep(0.02)
        cut_short = kill9(proc)
        report = checkpoint_report(exp)
        events.append({"run": index + 1, "killed": cut_short, "where": where, "resumed_at_step": done,
                       "held_at_step": _held_at_step(flag) if not in_write else None,
                       "target_step": None if in_write else target,
                       "latest_step": _latest_step(exp), "checkpoints_loaded": report["loaded"],
                       "corrupt": report["corrupt"], "temp_files_left": len(report["temp_files"])})
        if not cut_short:
            events[-1]["exit"] = proc.returncode
            break
    text = ""
    for log in logs:
        with open(log, encoding="utf-8", errors="replace") as f:
            text += f.read()
    return {"exp": exp, "events": events, "resumes": text.count("resumed from"),
            "tracebacks": text.count(kit.TRACEBACK), "final": checkpoint_report(exp)}


def disk_full_drill(paths: Dict[str, str], root: str) -> Dict[str, object]:
    """The 3rd checkpoint write fails with ENOSPC: the run stops with an error naming the file,
    the checkpoints written before still load, and a rerun (disk freed) resumes from them."""
    exp = os.path.join(root, "exp_disk_full")
    log = os.path.join(root, "disk_full.log")
    proc = start(train_command(paths, exp), log, {"DRILL_ENOSPC_AFTER": "2"})
    rc = proc.wait()
    with open(log, encoding="utf-8", errors="replace") as f:
        text = f.read()
    error_lines = [line for line in text.splitlines() if "cannot write checkpoint" in line]
    report = checkpoint_report(exp)
    latest_step = _latest_step(exp)
    rerun = start(train_command(paths, exp), log).wait()
    with open(log, encoding="utf-8", errors="replace") as f:
        after = f.read()[len(text):]
    return {"exit": rc, "error": error_lines[0] if error_lines else None, "traceback": kit.TRACEBACK in text,
            "checkpoints_loaded": report["loaded"], "corrupt": report["corrupt"],
            "temp_files_left": report["temp_files"], "latest_step": latest_step, "rerun_exit": rerun,
            "rerun_resumed": "resumed from" in after, "exp": exp}


# ---------------------------------------------------------------- fbank and decode jobs


def many_wavs(root: str, count: int, seconds: float = 1.0) -> str:
    wav_dir = os.path.join(root, "wavs")
    os.makedirs(wav_dir, exist_ok=True)
    scp = os.path.join(root, "wav.scp")
    with open(scp, "w", encoding="utf-8") as f:
        for i in range(count):
            path = os.path.join(wav_dir, f"u{i:04d}.wav")
            if not os.path.exists(path):
                kit.write_wav(path, kit.synth_wave(seconds, seed=i))
            f.write(f"u{i:04d} {path}\n")
    return scp


def _run_to_end(args: List[str]) -> kit.ToolRun:
    return kit.run_tool(args, timeout=900)


def kill_and_rerun(args_of, root: str, name: str, output_of, working=None,
                   hooked_script: Optional[str] = None) -> Dict[str, object]:
    """Run once uninterrupted, once killed mid-way, then rerun. Mid-way is set by the job's own
    progress, never by the clock: with ``hooked_script`` (a wrapper of the entry point that holds
    once it has done part of the work, creating a flag file), the kill comes while it holds;
    else once ``working(dir)`` is true (the job has started writing), killing at once."""
    reference = _run_to_end(args_of(os.path.join(root, f"{name}_reference")))
    killed_dir = os.path.join(root, f"{name}_killed")
    env = None
    if hooked_script is not None:
        flag = os.path.join(root, f"{name}_held")
        env = {"DRILL_HOLD_AFTER_BATCHES": "1", "DRILL_HOLD_FLAG": flag}
        command = [sys.executable, hooked_script, *args_of(killed_dir)[1:]]
        working = lambda _: os.path.exists(flag)  # noqa: E731
    else:
        command = [sys.executable, "-m", f"funasr_lite.bin.{args_of(killed_dir)[0]}", *args_of(killed_dir)[1:]]
    proc = subprocess.Popen(command, cwd=kit.REPO_ROOT, env=kit.subprocess_env(env), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    while proc.poll() is None and not working(killed_dir):
        time.sleep(0.01)
    # kill at once: on an idle machine the job can finish within a fraction of a second
    cut_short = kill9(proc)
    partial = output_of(killed_dir)
    rerun = _run_to_end(args_of(killed_dir))
    return {"reference_exit": reference.returncode, "killed_mid_way": cut_short,
            "complete_after_kill": partial == output_of(os.path.join(root, f"{name}_reference")),
            "rerun_exit": rerun.returncode, "rerun_traceback": rerun.has_traceback,
            "rerun_equals_reference": output_of(killed_dir) == output_of(os.path.join(root, f"{name}_reference")),
            "rerun_seconds": round(rerun.seconds, 2), "reference_seconds": round(reference.seconds, 2),
            "rerun_log_tail": rerun.stderr.strip().splitlines()[-1:] if rerun.stderr.strip() else []}


def fbank_drill(root: str, count: int = 60) -> Dict[str, object]:
    scp = many_wavs(root, count)

    def args_of(directory):
        os.makedirs(directory, exist_ok=True)
        return ["compute_fbank", "--wav_scp", scp, "--out_ark", os.path.join(directory, "raw_fbank.ark"),
                "--out_scp", os.path.join(directory, "raw_fbank.scp"),
                "--out_utt2num_frames", os.path.join(directory, "utt2num_frames")]

    def output_of(directory):
        import kaldiio

        scp_path = os.path.join(directory, "raw_fbank.scp")
        if not os.path.exists(scp_path):
            return None
        try:
            return {k: v.tobytes() for k, v in kaldiio.load_scp(scp_path).items()}
        except Exception as e:  # a half-written ark: report what it is
            return f"unreadable: {type(e).__name__}"

    def working(directory):  # the ark's temp file (atomic_open) holds its first utterances
        return any(os.path.getsize(p) > 0 for p in glob.glob(os.path.join(directory, ".raw_fbank.ark.*.tmp")))

    return kill_and_rerun(args_of, root, "fbank", output_of, working)


def decode_drill(root: str, model_dir: str, count: int = 60) -> Dict[str, object]:
    scp = many_wavs(root, count)

    def args_of(directory):
        return ["infer", "--model_dir", model_dir, "--wav_scp", scp, "--output_dir", directory, "--no_timestamps"]

    def output_of(directory):
        text = os.path.join(directory, "1best_recog", "text")
        if not os.path.exists(text):
            return None
        with open(text, encoding="utf-8") as f:
            return f.read()

    # the decoder writes nothing until the end: it holds after its first batch (decode_with_hooks.py)
    return kill_and_rerun(args_of, root, "decode", output_of, hooked_script=HOOKED_DECODE)


# ---------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=10, help="random kills of the trainer (one inside a checkpoint write)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", help="work dir (default: a temp dir, removed afterwards)")
    parser.add_argument("--json", default="kill_drill.json")
    parser.add_argument("--skip_jobs", action="store_true", help="only the trainer drills")
    args = parser.parse_args(argv)
    root = args.work or tempfile.mkdtemp(prefix="kill_drill_")
    rng = random.Random(args.seed)
    try:
        paths = make_training(os.path.join(root, "train"))
        reference = reference_run(paths, root)
        total_steps = _latest_step(reference["exp"])
        killed = killed_training(paths, root, args.kills, total_steps, rng)
        finished = os.path.exists(os.path.join(killed["exp"], "epoch_2.pt"))
        equal = finished and weights_equal(final_weights(reference["exp"]), final_weights(killed["exp"]))
        if not finished:
            print(f"the killed-and-rerun training did not finish: see {root}/killed_run*.log "
                  f"(use --work DIR to keep them)", file=sys.stderr)
        disk = disk_full_drill(paths, root)
        jobs = {}
        if not args.skip_jobs:
            model_dir = kit.write_model_dir(os.path.join(root, "model"))
            jobs = {"fbank": fbank_drill(os.path.join(root, "fbank")),
                    "decode": decode_drill(os.path.join(root, "decode"), model_dir)}
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    print(f"uninterrupted training: {reference['train_s']:.1f} s (+{reference['startup_s']:.1f} s start-up)")
    print("| run | resumed at step | killed | where | checkpoint_latest step after | checkpoints loaded | corrupt | "
          "temp files left |")
    print("|---|---|---|---|---|---|---|---|")
    for e in killed["events"]:
        print(f"| {e['run']} | {e.get('resumed_at_step', '-')} | {e['killed']} | {e['where']} | "
              f"{e.get('latest_step', '-')} | {e.get('checkpoints_loaded', '-')} | {len(e.get('corrupt', []))} | "
              f"{e.get('temp_files_left', '-')} |")
    kills_done = sum(1 for e in killed["events"] if e["killed"])
    corrupt = sum(len(e.get("corrupt", [])) for e in killed["events"]) + len(killed["final"]["corrupt"])
    print(f"\nkills: {kills_done}, resumes: {killed['resumes']}, corrupt checkpoints: {corrupt}, "
          f"tracebacks: {killed['tracebacks']}, final weights equal to the uninterrupted run's: {equal}")
    print(f"disk full (3rd checkpoint write, ENOSPC): exit {disk['exit']}, error: {disk['error']}, "
          f"earlier checkpoints load: {disk['checkpoints_loaded']} (corrupt {len(disk['corrupt'])}), "
          f"rerun exit {disk['rerun_exit']}, resumed: {disk['rerun_resumed']}")
    for name, r in jobs.items():
        print(f"{name} job killed mid-way: {r['killed_mid_way']}, rerun exit {r['rerun_exit']}, rerun output equals "
              f"the uninterrupted run's: {r['rerun_equals_reference']}, rerun {r['rerun_seconds']} s vs "
              f"{r['reference_seconds']} s uninterrupted (it redoes every item)")
    result = {"kills": kills_done, "events": killed["events"], "resumes": killed["resumes"],
              "tracebacks": killed["tracebacks"], "corrupt_checkpoints": corrupt, "final_weights_equal": equal,
              "reference": {k: v for k, v in reference.items() if k != "exp"},
              "disk_full": {k: v for k, v in disk.items() if k != "exp"}, "jobs": jobs}
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    ok = equal and corrupt == 0 and killed["tracebacks"] == 0 and disk["error"] and disk["rerun_exit"] == 0 \
        and all(r["rerun_exit"] == 0 and r["rerun_equals_reference"] for r in jobs.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
