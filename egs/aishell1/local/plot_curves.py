#!/usr/bin/env python3
"""Draw an experiment's training curves per epoch: loss, CER, accuracy (perplexity for an LM).

    python egs/aishell1/local/plot_curves.py exp/demo                 # -> exp/demo/curves.png
    python egs/aishell1/local/plot_curves.py exp/demo exp/demo_mwer exp/lm
    python egs/aishell1/local/plot_curves.py exp/demo --out demo.png --metrics loss cer

Reads ``<exp>/epochs.jsonl`` (one record per epoch, written by the ASR and LM trainers; see
funasr_lite/train/train_log.py): one panel per metric, the training average over the epoch and
the validation value after it. An experiment trained before epochs.jsonl existed is drawn from
``best.json``'s validation history (no training curve). Live curves per step: ``tensorboard
--logdir exp``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from funasr_lite.train.train_log import EPOCHS_FILE, read_epoch_records  # noqa: E402

# Panels in this order when present; their y-axis labels.
METRICS = {"loss": "loss", "cer": "CER (%)", "acc": "accuracy", "ppl": "perplexity"}
PARTS = ("train", "valid")
CURVES_FILE = "curves.png"

Series = Dict[str, Dict[str, List[Tuple[int, float]]]]


def load_records(exp_dir: str) -> List[Dict[str, Any]]:
    """The per-epoch records of ``exp_dir`` (epochs.jsonl, else best.json's validation history)."""
    path = os.path.join(exp_dir, EPOCHS_FILE)
    if os.path.exists(path):
        return read_epoch_records(path)
    best = os.path.join(exp_dir, "best.json")
    if os.path.exists(best):
        with open(best, encoding="utf-8") as f:
            history = json.load(f).get("history") or []
        return [{"epoch": entry["epoch"], "train": {},
                 "valid": {k: v for k, v in entry.items() if k not in ("epoch", "step")}} for entry in history]
    raise FileNotFoundError(f"{exp_dir}: no {EPOCHS_FILE} or best.json (is it a training experiment dir?)")


def curve_series(records: Sequence[Dict[str, Any]], metrics: Sequence[str] = tuple(METRICS)) -> Series:
    """{metric: {"train"|"valid": [(epoch, value), ...]}} for the metrics that have any value
    (null values, e.g. a non-finite loss, are left out)."""
    series: Series = {}
    for metric in metrics:
        lines = {part: [(int(r["epoch"]), float(r[part][metric])) for r in records
                        if isinstance(r.get(part), dict) and r[part].get(metric) is not None]
                 for part in PARTS}
        if any(lines.values()):
            series[metric] = lines
    return series


def plot_curves(series: Series, out_path: str, title: str = ""):
    """One panel per metric, train and valid lines, epochs on x; written to ``out_path`` (PNG,
    atomically). Returns the matplotlib Figure."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display needed
    import matplotlib.pyplot as plt

    if not series:
        raise ValueError("nothing to plot: no epoch has a value of the chosen metrics")
    fig, axes = plt.subplots(1, len(series), figsize=(4.2 * len(series), 3.4), squeeze=False)
    for ax, (metric, lines) in zip(axes[0], series.items()):
        for part, style, color in zip(PARTS, ("o-", "s--"), ("C0", "C1")):
            if lines[part]:
                epochs, values = zip(*lines[part])
                ax.plot(epochs, values, style, color=color, label=part, markersize=4)
        ax.set_title(metric)
        ax.set_xlabel("epoch")
        ax.set_ylabel(METRICS.get(metric, metric))
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = out_path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, out_path)
    plt.close(fig)
    return fig


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python egs/aishell1/local/plot_curves.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exp_dirs", nargs="+", help="experiment dirs (with epochs.jsonl)")
    parser.add_argument("--out", default=None,
                        help=f"output PNG (only with one exp dir; default: <exp>/{CURVES_FILE})")
    parser.add_argument("--metrics", nargs="+", default=list(METRICS),
                        help=f"metrics to draw when present (default: {' '.join(METRICS)})")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out and len(args.exp_dirs) > 1:
        parser.error("--out needs exactly one exp dir")
    failed = 0
    for exp_dir in args.exp_dirs:
        out = args.out or os.path.join(exp_dir, CURVES_FILE)
        try:
            series = curve_series(load_records(exp_dir), args.metrics)
            plot_curves(series, out, title=os.path.basename(os.path.normpath(exp_dir)))
        except (OSError, ValueError) as e:
            print(f"plot_curves.py: {e}", file=sys.stderr)
            failed += 1
            continue
        print(f"plot_curves.py: {out} ({', '.join(series)})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
