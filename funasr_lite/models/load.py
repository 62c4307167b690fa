"""Reading checkpoint files: the one ``torch.load`` of the package and the one ``CheckpointError``.

:func:`load_checkpoint` reads any checkpoint (ours, FunASR's ``model.pt``/``model.pb``, an LM
``model.pt``) on the CPU with ``weights_only=True``; :func:`extract_model_state` finds the model
weights inside; :func:`load_state_dict_file` is the two together. Training (resume, averaging,
``init_param``), model dirs and LM loading all read through these. Writing is
:mod:`funasr_lite.train.checkpoint`'s (atomic, temp file + rename).
"""

import logging
import os
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Tuple

import torch
from torch import nn

logger = logging.getLogger(__name__)

# Keys under which model weights are found in checkpoints of this toolkit and of FunASR.
MODEL_STATE_KEYS = ("model", "state_dict", "model_state_dict")
_SHOWN = 5  # how many offending keys an error message lists


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or used; the message names the file."""


def load_checkpoint(path) -> Dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``; errors name the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, pickle errors, disallowed globals, ...
        raise CheckpointError(f"{path}: cannot load checkpoint (corrupt or not a torch file?): {type(e).__name__}: {e}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict, got {type(state).__name__}")
    return state


def extract_model_state(checkpoint: Mapping[str, Any], path: str = "checkpoint") -> "OrderedDict[str, torch.Tensor]":
    """The model state dict inside a checkpoint (ours, FunASR's ``model.pt``/``model.pb``, or a
    plain state dict); a ``module.`` prefix (DDP) is removed."""
    state: Any = checkpoint
    for _ in range(2):  # FunASR nests at most {"state_dict": {"model": ...}}
        for key in MODEL_STATE_KEYS:
            if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not state:
        raise CheckpointError(f"{path}: no model weights found")
    out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor (not a model state dict?)")
        out[name[len("module."):] if name.startswith("module.") else name] = value
    return out


def load_state_dict_file(path) -> Dict[str, torch.Tensor]:
    """The model weights of a checkpoint file (:func:`load_checkpoint` + :func:`extract_model_state`)."""
    path = os.fspath(path)
    return dict(extract_model_state(load_checkpoint(path), path))


def _listing(title: str, items: List[str]) -> str:
    shown = ", ".join(items[:_SHOWN])
    more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"  {len(items)} {title}: {shown}{more}"


def compare_state_dicts(
    model_state: Dict[str, torch.Tensor], checkpoint_state: Dict[str, torch.Tensor]
) -> Tuple[List[str], List[str], List[str]]:
    """-> (missing keys, unexpected keys, 'key: checkpoint shape vs model shape' mismatches)."""
    missing = sorted(set(model_state) - set(checkpoint_state))
    unexpected = sorted(set(checkpoint_state) - set(model_state))
    mismatched = [
        f"{key}: checkpoint {tuple(checkpoint_state[key].shape)} vs model {tuple(model_state[key].shape)}"
        for key in sorted(set(model_state) & set(checkpoint_state))
        if checkpoint_state[key].shape != model_state[key].shape
    ]
    return missing, unexpected, mismatched


def load_model_weights(model: nn.Module, path: str, strict: bool = True) -> Tuple[List[str], List[str]]:
    """Load `path` into `model`. Returns (missing, unexpected) keys (empty when strict).

    Shape mismatches always fail; missing/unexpected keys fail when strict. The error names the file
    and lists the first few offending keys with counts.
    """
    state = load_state_dict_file(path)
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), state)
    problems = [(mismatched, "shape mismatches")]
    if strict:
        problems += [(missing, "missing keys"), (unexpected, "unexpected keys")]
    lines = [_listing(title, items) for items, title in problems if items]
    if lines:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}:\n" + "\n".join(lines))
    model.load_state_dict(state, strict=strict)
    if missing or unexpected:
        logger.warning("loaded %s non-strictly: %d missing, %d unexpected keys", path, len(missing), len(unexpected))
    return missing, unexpected
