"""Token language models for shallow fusion: building from a config and loading trained ones.

An LM config is a FunASR-style mapping: ``lm: transformer`` + ``lm_conf: {...}`` (the
constructor's keyword arguments) + ``vocab_size`` (derived from the token list). Training
(``python -m funasr_lite.bin.train_lm``) writes ``<exp>/config.yaml`` and ``<exp>/model.avg{N}.pt`` (the
training engine's final model; docs/training_engine.md); :func:`load_lm` reads those (the weights file
named by its caller, ``model.pt`` by default), and also FunASR LM checkpoints (keys prefixed ``lm.``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

import torch

from funasr_lite.data.tokenizer import vocab_size_of
from funasr_lite.models.lm.transformer_lm import TransformerLM, strip_lm_prefix
from funasr_lite.models.load import load_state_dict_file

logger = logging.getLogger(__name__)

LANGUAGE_MODELS = {"transformer": TransformerLM, "TransformerLM": TransformerLM}


def build_lm(config: Dict[str, Any]) -> torch.nn.Module:
    """``{"lm": name, "lm_conf": {...}, "vocab_size": V}`` -> an untrained LM."""
    name = config.get("lm", "transformer")
    if name not in LANGUAGE_MODELS:
        raise ValueError(f"unknown lm {name!r} (expected one of {', '.join(LANGUAGE_MODELS)})")
    if not isinstance(config.get("vocab_size"), int):
        raise ValueError("LM config needs an integer vocab_size (the size of the token list)")
    conf = dict(config.get("lm_conf") or {})
    try:
        return LANGUAGE_MODELS[name](vocab_size=config["vocab_size"], **conf)
    except TypeError as e:
        raise ValueError(f"lm_conf for {name}: {e}") from None


def load_lm(config_path, model_path: Optional[str] = None, device: str = "cpu") -> torch.nn.Module:
    """Build the LM of ``config_path`` and load ``model_path`` (default: model.pt beside it); eval mode.

    Accepts this toolkit's model.pt (a state dict, or a training checkpoint with a "model"
    entry) and FunASR LM checkpoints (keys prefixed ``lm.``). Missing or unexpected keys fail.
    """
    from funasr_lite.utils.config import load_yaml

    config = load_yaml(config_path)
    model_path = model_path or os.path.join(os.path.dirname(os.fspath(config_path)), "model.pt")
    if config.get("vocab_size") is None and config.get("token_list") is not None:
        config["vocab_size"] = vocab_size_of(config)
    model = build_lm(config)
    state = load_state_dict_file(model_path)
    model.load_state_dict(strip_lm_prefix(state), strict=True)
    logger.info("loaded %s LM from %s (%d parameters)", config.get("lm", "transformer"), model_path,
                sum(p.numel() for p in model.parameters()))
    return model.to(device).eval()


__all__ = ["LANGUAGE_MODELS", "TransformerLM", "build_lm", "load_lm", "strip_lm_prefix"]
