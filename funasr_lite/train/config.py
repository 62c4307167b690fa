"""The training config: a YAML file (FunASR ``config.yaml`` schema) + ``++key=value`` overrides +
command-line paths -> the validated, resolved config that training writes to ``<exp>/config.yaml``.

Validation (key names, types, ``train_conf``/``dataset_conf``/``frontend_conf`` defaults) and
YAML/override handling are :mod:`funasr_lite.utils.config`'s; this module adds what needs the
layers above utils: the derived sizes ``input_size = frontend_conf.n_mels * frontend_conf.lfr_m``
and ``vocab_size = len(token list)`` (counted by :func:`funasr_lite.data.tokenizer.token_list_size`,
the one vocabulary-size computation). Decoding reads only ``<exp>/config.yaml``, so the resolved
config carries the absolute ``token_list`` and ``cmvn_file`` paths, ``frontend_conf`` and every
model part.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Sequence

from funasr_lite.data.tokenizer import token_list_size
from funasr_lite.utils.config import PRETRAINING_MODELS, ConfigError, apply_overrides, load_yaml, validate_config


def _absolute(path: Optional[str]) -> Optional[str]:
    return os.path.abspath(path) if path else path


def derive_sizes(config: Dict[str, Any], source: str = "config") -> Dict[str, Any]:
    """Set ``input_size`` (n_mels * lfr_m) and ``vocab_size`` (token list length) in place.

    A value already in the config that disagrees is an error (the model would not match).
    """
    frontend_conf = config["frontend_conf"]
    input_size = int(frontend_conf["n_mels"]) * int(frontend_conf["lfr_m"])
    if config.get("input_size") not in (None, input_size):
        raise ConfigError(
            f"{source}: input_size {config['input_size']} disagrees with frontend_conf "
            f"n_mels * lfr_m = {frontend_conf['n_mels']} * {frontend_conf['lfr_m']} = {input_size}"
        )
    config["input_size"] = input_size
    token_list = config.get("token_list")
    if token_list is None and config.get("model") in PRETRAINING_MODELS:
        return config  # self-supervised pretraining: no vocabulary
    if token_list is None:
        raise ConfigError(f"{source}: no token_list (give --token_list)")
    try:
        vocab_size = token_list_size(token_list)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    if config.get("vocab_size") not in (None, vocab_size):
        raise ConfigError(
            f"{source}: vocab_size {config['vocab_size']} disagrees with the token list {token_list} "
            f"({vocab_size} tokens)"
        )
    config["vocab_size"] = vocab_size
    if config.get("specaug") == "SpecAugLFR":
        specaug_conf = config.get("specaug_conf") or {}
        sub_frames = specaug_conf.get("lfr_m", int(specaug_conf.get("lfr_rate", 0)) + 1)
        if sub_frames != frontend_conf["lfr_m"]:
            raise ConfigError(
                f"{source}: SpecAugLFR stacks {sub_frames} sub-frames (specaug_conf lfr_rate + 1 or lfr_m) "
                f"but frontend_conf.lfr_m is {frontend_conf['lfr_m']}"
            )
    return config


def resolve_training_config(
    config_path,
    overrides: Sequence[str] = (),
    *,
    token_list: Optional[str] = None,
    cmvn_file: Optional[str] = None,
    train_data: Optional[str] = None,
    valid_data: Optional[str] = None,
    output_dir: Optional[str] = None,
    init_param: Optional[str] = None,
    init_encoder: Optional[str] = None,
) -> Dict[str, Any]:
    """YAML file + overrides + command-line paths -> the validated, resolved config.

    Command-line paths win over the YAML; FunASR's ``frontend_conf.cmvn_file`` and
    ``tokenizer_conf.token_list`` are used when nothing else gives them. Paths become absolute.
    A pretraining model (``model: data2vec``) needs no token list (it is left out when not given).
    """
    source = os.fspath(config_path)
    raw = apply_overrides(load_yaml(config_path), overrides)
    config = validate_config(raw, source)
    given = {
        "token_list": token_list,
        "cmvn_file": cmvn_file,
        "train_data": train_data,
        "valid_data": valid_data,
        "output_dir": output_dir,
        "init_param": init_param,
        "init_encoder": init_encoder,
    }
    for key, value in given.items():
        if value is not None:
            config[key] = value
    if config.get("cmvn_file") is None and (config["frontend_conf"].get("cmvn_file")):
        config["cmvn_file"] = config["frontend_conf"]["cmvn_file"]
    if config.get("token_list") is None and (config.get("tokenizer_conf") or {}).get("token_list"):
        config["token_list"] = config["tokenizer_conf"]["token_list"]
    for key in ("token_list", "cmvn_file", "train_data", "valid_data", "output_dir", "init_param", "init_encoder"):
        if isinstance(config.get(key), str):
            config[key] = _absolute(config[key])
    tokenizer_conf = config.get("tokenizer_conf") or {}
    if isinstance(tokenizer_conf.get("bpemodel"), str):
        tokenizer_conf["bpemodel"] = _absolute(tokenizer_conf["bpemodel"])
    if config.get("cmvn_file") is None:
        raise ConfigError(f"{source}: no cmvn_file (give --cmvn_file)")
    return derive_sizes(config, source)


__all__ = ["derive_sizes", "resolve_training_config"]
