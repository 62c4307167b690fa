"""Export a speaker model dir (FunASR 1.x layout: config.yaml + model.pt) from a speaker exp dir.

The exp dir of ``funasr_lite.bin.train_speaker`` already loads in ``SpeakerVerifier``; the exported
dir is the part a user needs: ``config.yaml`` with sv.yaml's model keys and the speakers
(``token_list``) only (no training sections, no paths of the training machine) and ``model.pt``
(a plain state dict of the chosen checkpoint, e.g. ``model.init.pt`` for the untrained baseline).
It is written under a temp name, loaded back, then renamed into place.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, Optional

import torch

from funasr_lite.export.model_dir import write_dir_whole
from funasr_lite.inference.model_dir import read_model_config
from funasr_lite.inference.speaker import CONFIG_NAMES, load_speaker_model_dir
from funasr_lite.models.speaker.model import SV_CONFIG_KEYS, is_speaker_config
from funasr_lite.utils.config import dump_config
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.pt"


def is_speaker_dir(path) -> bool:
    """Whether ``path`` holds a speaker model's config (config.yaml or sv.yaml with speaker keys)."""
    for name in CONFIG_NAMES:
        config_path = os.path.join(os.fspath(path), name)
        if os.path.isfile(config_path):
            return is_speaker_config(read_model_config(config_path))
    return False


def speaker_model_dir_config(config: Dict[str, Any], speakers) -> Dict[str, Any]:
    """sv.yaml's model keys of ``config`` (dither 0), then vocab_size and token_list."""
    out = {key: config[key] for key in SV_CONFIG_KEYS if key in config}
    if isinstance(out.get("frontend_conf"), dict):
        out["frontend_conf"] = {**out["frontend_conf"], "dither": 0.0}
    return {**out, "vocab_size": len(speakers), "token_list": list(speakers)}


def export_speaker_model_dir(exp_dir, out_dir, checkpoint: Optional[str] = None) -> str:
    """Write ``out_dir`` (module docstring) from a speaker exp or model dir; ``checkpoint``: the
    weights to take (a file in the dir; default: the dir's own, model.pt). Returns ``out_dir``."""
    loaded = load_speaker_model_dir(exp_dir, checkpoint)

    def fill(tmp_dir: str) -> None:
        with atomic_open(os.path.join(tmp_dir, CONFIG_NAME)) as f:
            f.write(dump_config(speaker_model_dir_config(loaded.config, loaded.speakers)))
        state = {key: value.detach().cpu().clone() for key, value in loaded.model.state_dict().items()}
        with atomic_open(os.path.join(tmp_dir, WEIGHTS_NAME), "wb") as f:
            torch.save(state, f)
        load_speaker_model_dir(tmp_dir)  # the new dir must load on its own

    out_dir = write_dir_whole(out_dir, fill)
    logger.info("exported speaker model %s (%s) to %s", loaded.files.model_dir, os.path.basename(loaded.files.weights),
                out_dir)
    return out_dir


__all__ = ["export_speaker_model_dir", "is_speaker_dir", "speaker_model_dir_config"]
