"""Export a FunASR-layout model dir (stage 8) from a training exp dir or another model dir.

The exported dir loads in FunASR's AutoModel and in :func:`funasr_lite.inference.model_dir.load_model_dir`:
``config.yaml`` with FunASR's class names and relative file names, ``model.pt`` (a plain state dict),
``am.mvn``, ``tokens.txt`` (and ``bpe.model`` for BPE).
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, Optional

import torch

from funasr_lite.data.hotwords import SEG_DICT_NAME, write_vocabulary_seg_dict
from funasr_lite.data.tokenizer import write_token_list
from funasr_lite.inference.model_dir import (
    BPE_MODEL_NAME,
    CMVN_NAME,
    CONFIG_NAME,
    EXPORTED_TOKENS_NAME,
    WEIGHT_NAMES,
    LoadedModel,
    load_model_dir,
)
from funasr_lite.models import DECODERS, ENCODERS, MODELS, PREDICTORS, SPECAUGS
from funasr_lite.utils.config import dump_config
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)


# Top-level keys of a training config that name files on the training machine.
_MACHINE_PATH_KEYS = ("token_list", "cmvn_file", "train_data", "valid_data", "output_dir", "init_param", "init_encoder")


def _class_name(registry: Dict[str, Any], name: Optional[str]) -> Optional[str]:
    """A registry alias ("sanm") -> the class name FunASR's registry knows ("SANMEncoder")."""
    if name not in registry:
        return name
    entry = registry[name]
    return entry.split(":")[1] if isinstance(entry, str) else entry.__name__


def exported_config(loaded: LoadedModel) -> Dict[str, Any]:
    """The config.yaml of an exported dir: FunASR names, relative file names, no machine paths."""
    config = copy.deepcopy(loaded.config)
    for key in _MACHINE_PATH_KEYS:
        config.pop(key, None)
    # specaug too: FunASR's AutoModel builds it from the config even to decode, and knows only
    # the class name (SpecAugLFR), not this toolkit's alias (specaug_lfr).
    for key, registry in (("model", MODELS), ("encoder", ENCODERS), ("decoder", DECODERS), ("predictor", PREDICTORS),
                          ("specaug", SPECAUGS), ("seaco_decoder", DECODERS)):
        if key in config:
            config[key] = _class_name(registry, config[key])
    config["frontend"] = config.get("frontend") or "WavFrontend"
    if getattr(loaded.model, "streaming", False) and config["frontend"] in ("wav_frontend", "WavFrontend"):
        config["frontend"] = "WavFrontendOnline"  # a streaming model's, as FunASR's generate(cache=...) needs
    frontend_conf = dict(loaded.frontend_conf)
    frontend_conf["cmvn_file"] = CMVN_NAME
    frontend_conf["dither"] = 0.0  # deterministic features when FunASR decodes this dir too
    config["frontend_conf"] = frontend_conf
    config["tokenizer"] = config.get("tokenizer") or "CharTokenizer"
    tokenizer_conf = dict(config.get("tokenizer_conf") or {})
    tokenizer_conf["token_list"] = EXPORTED_TOKENS_NAME
    tokenizer_conf.setdefault("unk_symbol", "<unk>")
    if loaded.files.bpe_model:
        tokenizer_conf["bpemodel"] = BPE_MODEL_NAME
    else:
        tokenizer_conf.pop("bpemodel", None)
    config["tokenizer_conf"] = tokenizer_conf
    config["input_size"] = loaded.input_size
    config["vocab_size"] = len(loaded.token_list)
    return config


def _replace_dir(tmp_dir: str, out_dir: str) -> None:
    """Move the finished tmp_dir to out_dir, replacing an older out_dir (rename, then delete it)."""
    old = None
    if os.path.lexists(out_dir):
        old = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + ".old.", dir=os.path.dirname(out_dir))
        os.rmdir(old)
        os.replace(out_dir, old)
    os.replace(tmp_dir, out_dir)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def write_seg_dict(loaded: LoadedModel, path: str) -> None:
    """A hotword model's seg_dict (FunASR reads hotwords through it, beside am.mvn): the one beside
    the source's am.mvn, else the source dir's own (a training exp dir's), else every token but the
    special ones mapped to itself (right for a character vocabulary; without one AutoModel reads a
    hotword of several characters as <unk>)."""
    source = os.path.join(os.path.dirname(loaded.files.cmvn), SEG_DICT_NAME)
    if os.path.isfile(source):
        shutil.copyfile(source, path)
    elif os.path.isfile(os.path.join(loaded.files.model_dir, SEG_DICT_NAME)):  # a training exp dir's
        shutil.copyfile(os.path.join(loaded.files.model_dir, SEG_DICT_NAME), path)
    elif hasattr(loaded.model, "hotword_context"):
        write_vocabulary_seg_dict(path, loaded.token_list)


def write_dir_whole(out_dir, fill) -> str:
    """``fill(tmp_dir)`` writes a dir beside ``out_dir`` under a temp name, then it replaces
    ``out_dir``: ``out_dir`` is either the old dir or the complete new one (a failure removes the
    temp dir and re-raises). Returns the absolute ``out_dir``."""
    out_dir = os.path.abspath(os.fspath(out_dir))
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    tmp_dir = tempfile.mkdtemp(prefix="." + os.path.basename(out_dir) + ".tmp.", dir=parent)
    try:
        fill(tmp_dir)
        _replace_dir(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return out_dir


def export_model_dir(exp_dir, out_dir, checkpoint: Optional[str] = None) -> str:
    """Write a FunASR-layout model dir from a training exp dir (or another model dir).

    ``out_dir`` gets config.yaml (relative file names), model.pt (a plain state dict), am.mvn,
    tokens.txt (and bpe.model for BPE). The exp dir is loaded and checked first; the new dir is
    written beside ``out_dir`` under a temp name, loaded back as a check, then renamed into
    place, so ``out_dir`` is either the old one or the complete new one. Returns ``out_dir``.
    """
    loaded = load_model_dir(exp_dir, checkpoint)

    def fill(tmp_dir: str) -> None:
        with atomic_open(os.path.join(tmp_dir, CONFIG_NAME)) as f:
            f.write(dump_config(exported_config(loaded)))
        state = {key: value.detach().cpu().clone() for key, value in loaded.model.state_dict().items()}
        with atomic_open(os.path.join(tmp_dir, WEIGHT_NAMES[0]), "wb") as f:
            torch.save(state, f)
        shutil.copyfile(loaded.files.cmvn, os.path.join(tmp_dir, CMVN_NAME))
        write_token_list(os.path.join(tmp_dir, EXPORTED_TOKENS_NAME), loaded.token_list)
        if loaded.files.bpe_model:
            shutil.copyfile(loaded.files.bpe_model, os.path.join(tmp_dir, BPE_MODEL_NAME))
        write_seg_dict(loaded, os.path.join(tmp_dir, SEG_DICT_NAME))
        load_model_dir(tmp_dir)  # the new dir must load on its own

    out_dir = write_dir_whole(out_dir, fill)
    logger.info("exported %s (%s) to %s", loaded.files.model_dir, os.path.basename(loaded.files.weights), out_dir)
    return out_dir

