"""Loading FunASR / funasr_lite checkpoints (model.pt, model.pb, our own saves) into a model."""

import logging
import os
from typing import Dict, List, Tuple

import torch
from torch import nn

logger = logging.getLogger(__name__)

_WRAPPER_KEYS = ("state_dict", "model")
_SHOWN = 5  # how many offending keys an error message lists


class CheckpointError(RuntimeError):
    """A checkpoint file is unreadable or does not fit the model."""


def load_state_dict_file(path: str) -> Dict[str, torch.Tensor]:
    """Read a state dict: unwrap {"state_dict"|"model": ...}, strip DDP "module." prefixes."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, pickle garbage, forbidden globals ...
        raise CheckpointError(f"cannot read checkpoint {path} (corrupt or truncated?): {error}") from error
    while isinstance(state, dict):
        wrapper = next((key for key in _WRAPPER_KEYS if isinstance(state.get(key), dict)), None)
        if wrapper is None:
            break
        state = state[wrapper]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} holds no state dict of tensors")
    prefix = "module."
    if state and all(key.startswith(prefix) for key in state):
        state = {key[len(prefix):]: value for key, value in state.items()}
    return dict(state)


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
