"""Checkpoint averaging: the N best epochs (from ``best.json``) or listed files ->
``model.avg{N}.pt``, a plain model state dict (FunASR-style), written atomically.

``model.avg{N}.pt`` is every task's final model (the engine's rule, funasr_lite.train.engine):
:func:`final_model_name` is the one place that spells the name."""

from __future__ import annotations

import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence

import torch

from funasr_lite.train.checkpoint import CheckpointError, extract_model_state, load_checkpoint, save_checkpoint
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

BEST_FILE = "best.json"


def final_model_name(num_avg: int) -> str:
    """``model.avg{N}.pt``: the average of the N best epochs, an experiment's final model."""
    return f"model.avg{int(num_avg)}.pt"


@torch.no_grad()
def average_state_dicts(paths: Sequence[str]) -> "OrderedDict[str, torch.Tensor]":
    """Elementwise mean of the model weights in ``paths``.

    Floating tensors are averaged in float64 and cast back; integer tensors (counters such as
    BatchNorm's ``num_batches_tracked``) get the floor of the mean. All files must hold the same
    names and shapes; errors name the file.
    """
    if not paths:
        raise ValueError("no checkpoints to average")
    total: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    dtypes: Dict[str, torch.dtype] = {}
    for index, path in enumerate(paths):
        state = extract_model_state(load_checkpoint(path), os.fspath(path))
        if index == 0:
            for name, value in state.items():
                dtypes[name] = value.dtype
                total[name] = value.to(torch.float64 if value.is_floating_point() else torch.int64).clone()
            continue
        if set(state) != set(total):
            missing = sorted(set(total) - set(state))[:3]
            extra = sorted(set(state) - set(total))[:3]
            raise CheckpointError(f"{path}: parameter names differ from {paths[0]} (missing {missing}, extra {extra})")
        for name, value in state.items():
            if value.shape != total[name].shape:
                raise CheckpointError(f"{path}: {name} has shape {tuple(value.shape)}, {paths[0]} has {tuple(total[name].shape)}")
            total[name] += value.to(total[name].dtype)
    count = len(paths)
    averaged: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, value in total.items():
        if value.is_floating_point():
            averaged[name] = (value / count).to(dtypes[name])
        else:
            averaged[name] = torch.div(value, count, rounding_mode="floor").to(dtypes[name])
    return averaged


def read_best(exp_dir) -> dict:
    """``<exp>/best.json`` as written by the trainer."""
    path = os.path.join(os.fspath(exp_dir), BEST_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: not found (train first, or list checkpoints explicitly)") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None


def write_best(exp_dir, content: dict) -> None:
    with atomic_open(os.path.join(os.fspath(exp_dir), BEST_FILE)) as f:
        json.dump(content, f, indent=1)
        f.write("\n")


def best_checkpoint_paths(exp_dir, num: int) -> List[str]:
    """Paths of the ``num`` best epoch checkpoints listed in best.json that still exist."""
    best = read_best(exp_dir)
    paths = []
    for entry in best.get("ranking", []):
        path = os.path.join(os.fspath(exp_dir), entry["checkpoint"])
        if os.path.isfile(path):
            paths.append(path)
        if len(paths) == num:
            break
    return paths


def average_best_checkpoints(exp_dir, num: int, out_path: Optional[str] = None) -> str:
    """Average the ``num`` best epochs of ``exp_dir`` into ``<exp>/model.avg{num}.pt``.

    Fewer available checkpoints than ``num`` is a warning (all available are averaged).
    """
    if num < 1:
        raise ValueError(f"number of checkpoints to average must be >= 1, got {num}")
    paths = best_checkpoint_paths(exp_dir, num)
    if not paths:
        raise CheckpointError(f"{os.path.join(os.fspath(exp_dir), BEST_FILE)}: lists no existing checkpoints")
    if len(paths) < num:
        logger.warning("%s: only %d checkpoint(s) available for averaging %d", exp_dir, len(paths), num)
    out_path = out_path or os.path.join(os.fspath(exp_dir), final_model_name(num))
    return average_checkpoint_files(paths, out_path)


def average_checkpoint_files(paths: Sequence[str], out_path) -> str:
    """Average ``paths`` and write the plain state dict to ``out_path`` atomically."""
    averaged = average_state_dicts(paths)
    save_checkpoint(averaged, out_path)
    logger.info("averaged %d checkpoint(s) into %s: %s", len(paths), out_path, ", ".join(os.path.basename(p) for p in paths))
    return os.fspath(out_path)


__all__ = [
    "BEST_FILE",
    "average_best_checkpoints",
    "average_checkpoint_files",
    "average_state_dicts",
    "best_checkpoint_paths",
    "final_model_name",
    "read_best",
    "write_best",
]
