"""Checkpoints: atomic writes, RNG state, initialising a model from matching weights.

A training checkpoint is a dict of tensors and plain Python values only (RNG states are
converted to tensors/lists), so ``torch.load(..., weights_only=True)`` reads it. Reading is
:mod:`funasr_lite.models.load`'s (``load_checkpoint``, ``extract_model_state``,
``CheckpointError``: one reader for training, model dirs and LMs), re-exported here.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import random
import shutil
from typing import Any, Dict, List, Mapping

import numpy as np
import torch

from funasr_lite.models.load import CheckpointError, extract_model_state, load_checkpoint
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

def remove_stale_checkpoint_temps(exp_dir: str) -> List[str]:
    """Delete the temp files (``.<name>.pt.<random>.tmp``, see utils.fileio.atomic_open) that a
    checkpoint write killed half-way left in ``exp_dir``; returns their paths. Call it only when
    no other process writes checkpoints there (the trainer's main process, before training)."""
    removed = []
    for path in glob.glob(os.path.join(glob.escape(exp_dir), ".*.pt.*.tmp")):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
            removed.append(path)
    return sorted(removed)


def save_checkpoint(state: Mapping[str, Any], path) -> None:
    """``torch.save`` to a temp file beside ``path``, then rename: never a half-written file.

    A failed write (a full disk: ENOSPC, which torch may wrap in a RuntimeError) leaves the
    previous file at ``path`` as it was and raises CheckpointError naming ``path``."""
    try:
        with atomic_open(path, "wb") as f:
            torch.save(dict(state), f)
    except (OSError, RuntimeError) as e:
        directory = os.path.dirname(os.path.abspath(path))
        try:  # torch turns ENOSPC into "unexpected pos ...": say how full the disk is
            free = f"; {shutil.disk_usage(directory).free / 2**20:.0f} MiB free there"
        except OSError:
            free = ""
        raise CheckpointError(f"{os.fspath(path)}: cannot write checkpoint ({e}{free}); "
                              "the checkpoints written before are unchanged") from None


def epoch_checkpoint_name(epoch: int) -> str:
    """``epoch_N.pt``: the full state saved at the end of epoch N."""
    return f"epoch_{epoch}.pt"


def link_or_copy(src, dst) -> None:
    """Make ``dst`` the same content as ``src`` atomically (hard link if possible, else copy)."""
    src, dst = os.fspath(src), os.fspath(dst)
    tmp = f"{dst}.tmp.{os.getpid()}"
    if os.path.lexists(tmp):
        os.unlink(tmp)
    try:
        os.link(src, tmp)
    except OSError:
        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


# ---------------------------------------------------------------- model weights


def load_matching_weights(model: torch.nn.Module, path, strict: bool = False) -> Dict[str, list]:
    """Initialise ``model`` from the weights in ``path`` that match it (fine-tuning, ``init_param``).

    Parameters present in both with equal shapes are loaded (unlike
    :func:`funasr_lite.models.load.load_model_weights`, which loads a whole model file or fails). With ``strict=False`` missing,
    unexpected and shape-mismatched names are logged (a few examples each); loading nothing at
    all is an error. Returns ``{"loaded", "missing", "unexpected", "mismatched"}`` name lists.
    """
    path = os.fspath(path)
    source = extract_model_state(load_checkpoint(path), path)
    target = model.state_dict()
    loaded, mismatched = [], []
    for name, value in source.items():
        if name in target:
            if tuple(target[name].shape) == tuple(value.shape):
                target[name] = value.to(dtype=target[name].dtype)
                loaded.append(name)
            else:
                mismatched.append(f"{name} {tuple(value.shape)} vs model {tuple(target[name].shape)}")
    missing = [name for name in target if name not in source]
    unexpected = [name for name in source if name not in target]
    report = {"loaded": loaded, "missing": missing, "unexpected": unexpected, "mismatched": mismatched}
    problems = {k: v for k, v in report.items() if k != "loaded" and v}
    if strict and problems:
        details = "; ".join(f"{k}: {len(v)} (e.g. {', '.join(v[:3])})" for k, v in problems.items())
        raise CheckpointError(f"{path}: weights do not match the model: {details}")
    if not loaded:
        raise CheckpointError(f"{path}: none of its {len(source)} tensors matches a model parameter")
    model.load_state_dict(target)
    logger.info("init_param %s: loaded %d of %d model tensors", path, len(loaded), len(target))
    for kind, names in problems.items():
        logger.warning("init_param %s: %d %s (e.g. %s)", path, len(names), kind, ", ".join(names[:3]))
    return report


ENCODER_PREFIX = "encoder."


def load_encoder_weights(model: torch.nn.Module, path) -> Dict[str, list]:
    """Initialise ``model``'s encoder from a pretrained model (``init_encoder``: fine-tuning from
    data2vec pretraining, whose weights are ``encoder.*`` as FunASR names them).

    Only ``encoder.*`` tensors are read, and of them not the encoder's pretraining-only parameters
    (its class's ``PRETRAINING_ONLY_PARAMETERS``: data2vec's ``final_proj``, ``mask_emb``); the EMA
    teacher is never in a model's weights (a training checkpoint keeps it apart, under ``task``).
    Names and shapes must match; mismatches, encoder parameters the file lacks and the file's other
    tensors are logged. Returns ``{"loaded", "skipped", "missing", "mismatched", "ignored"}`` name
    lists. No encoder tensor loaded: CheckpointError.
    """
    path = os.fspath(path)
    source = extract_model_state(load_checkpoint(path), path)
    target = model.state_dict()
    encoder = getattr(model, "encoder", None)
    pretraining_only = tuple(ENCODER_PREFIX + p for p in getattr(encoder, "PRETRAINING_ONLY_PARAMETERS", ()))
    loaded, skipped, mismatched = [], [], []
    ignored = [name for name in source if not name.startswith(ENCODER_PREFIX)]
    for name, value in source.items():
        if not name.startswith(ENCODER_PREFIX):
            continue
        if name.startswith(pretraining_only):
            skipped.append(name)
        elif name in target and tuple(target[name].shape) == tuple(value.shape):
            target[name] = value.to(dtype=target[name].dtype)
            loaded.append(name)
        elif name in target:
            mismatched.append(f"{name} {tuple(value.shape)} vs model {tuple(target[name].shape)}")
        else:
            ignored.append(name)
    missing = [name for name in target if name.startswith(ENCODER_PREFIX) and name not in source
               and not name.startswith(pretraining_only)]
    if not loaded:
        encoder_names = [name for name in source if name.startswith(ENCODER_PREFIX)]
        why = (f"its {len(encoder_names)} encoder tensors match none of the model's (e.g. "
               f"{', '.join((mismatched or encoder_names)[:3])})" if encoder_names
               else f"it has no encoder.* tensor among its {len(source)} (e.g. {', '.join(list(source)[:3])})")
        raise CheckpointError(f"{path}: init_encoder: {why}; is it a pretrained model of this encoder "
                              f"({type(encoder).__name__})?")
    model.load_state_dict(target)
    num_encoder = sum(1 for name in target if name.startswith(ENCODER_PREFIX))
    logger.info("init_encoder %s: loaded %d of the model's %d encoder tensors", path, len(loaded), num_encoder)
    if skipped:
        logger.info("init_encoder %s: skipped %d pretraining-only tensors: %s (the EMA teacher is never a model "
                    "weight)", path, len(skipped), ", ".join(skipped))
    report = {"loaded": loaded, "skipped": skipped, "missing": missing, "mismatched": mismatched, "ignored": ignored}
    for kind in ("missing", "mismatched", "ignored"):
        if report[kind]:
            logger.warning("init_encoder %s: %d %s (e.g. %s)", path, len(report[kind]), kind,
                           ", ".join(report[kind][:3]))
    return report


# ---------------------------------------------------------------- RNG state


def capture_rng_state() -> Dict[str, Any]:
    """Python, numpy and torch (CPU, CUDA) RNG states as tensors/lists (weights_only-safe)."""
    version, internal, gauss_next = random.getstate()
    np_state = np.random.get_state()
    state: Dict[str, Any] = {
        "python": {"version": int(version), "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next},
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    python = state["python"]
    random.setstate((python["version"], tuple(int(v) for v in python["internal"].tolist()), python["gauss_next"]))
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            int(numpy_state["pos"]),
            int(numpy_state["has_gauss"]),
            float(numpy_state["cached_gaussian"]),
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


__all__ = [
    "CheckpointError",
    "remove_stale_checkpoint_temps",
    "capture_rng_state",
    "epoch_checkpoint_name",
    "extract_model_state",
    "link_or_copy",
    "load_checkpoint",
    "load_encoder_weights",
    "load_matching_weights",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
]
