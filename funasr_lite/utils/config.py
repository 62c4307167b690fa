"""Config files: YAML (FunASR ``config.yaml`` schema), ``++key=value`` overrides, validation, and
the one ``ConfigError``. The training config is resolved from these by
:func:`funasr_lite.train.config.resolve_training_config` (derived sizes need the token list, a
data-layer file, so that step lives above utils).

Overrides have ONE form: ``++dotted.key=value``, e.g. ``++train_conf.max_epoch=20``,
``++optim_conf.lr=1e-3``, ``++specaug=null``. The value is read as YAML (so ``5`` is an int,
``1e-3`` a float, ``[0, 30]`` a list, ``null`` None, ``true`` a bool); missing intermediate
dicts are created. Top-level keys must be known (an unknown key is an error with a close-match
suggestion); ``train_conf`` and ``dataset_conf`` keys are checked too, since the trainer reads
them; the other ``*_conf`` blocks belong to the model and pass through unchanged.
"""

from __future__ import annotations

import copy
import difflib
import logging
import os
import re
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

OVERRIDE_PREFIX = "++"


class ConfigError(ValueError):
    """A bad config file, override or value; the message names the key (and file)."""


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` / ``5E4`` as floats (YAML 1.2; PyYAML's 1.1 needs a dot)."""


_ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml_value(text: str) -> Any:
    """One YAML scalar/flow value, typed as in a config file (``5`` -> 5, ``1e-3`` -> 0.001)."""
    try:
        return yaml.load(text, Loader=_ConfigLoader) if text.strip() else ""
    # ValueError: a date that does not exist (2001-02-30); RecursionError: absurdly deep nesting.
    except (yaml.YAMLError, ValueError, RecursionError) as e:
        raise ConfigError(f"cannot read {text!r} as a YAML value: {e}") from None


def load_yaml(path) -> Dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            content = yaml.load(f, Loader=_ConfigLoader)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not valid UTF-8 ({e.reason} at byte {e.start})") from None
    except (yaml.YAMLError, ValueError, RecursionError) as e:  # ValueError: e.g. the date 2001-02-30
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {type(content).__name__}")
    return content


# ---------------------------------------------------------------- schema

_NONE = type(None)
_NUMBER = (int, float)

# Top-level keys and their allowed types. ``*_conf`` blocks are mappings (or null).
TOP_LEVEL_TYPES: Dict[str, Tuple[type, ...]] = {
    "model": (str,),
    "model_conf": (dict, _NONE),
    "encoder": (str,),
    "encoder_conf": (dict, _NONE),
    "decoder": (str,),
    "decoder_conf": (dict, _NONE),
    "predictor": (str,),
    "predictor_conf": (dict, _NONE),
    "ctc_conf": (dict, _NONE),
    "specaug": (str, _NONE),
    "specaug_conf": (dict, _NONE),
    "frontend": (str, _NONE),
    "frontend_conf": (dict,),
    "normalize": (str, _NONE),
    "normalize_conf": (dict, _NONE),
    "tokenizer": (str, _NONE),
    "tokenizer_conf": (dict, _NONE),
    "optim": (str,),
    "optim_conf": (dict, _NONE),
    "scheduler": (str, _NONE),
    "scheduler_conf": (dict, _NONE),
    "train_conf": (dict, _NONE),
    "dataset_conf": (dict, _NONE),
    "input_size": (int, _NONE),
    "vocab_size": (int, _NONE),
    "token_list": (str, list, _NONE),
    "cmvn_file": (str, _NONE),
    "seed": (int,),
    "init_param": (str, _NONE),
    "freeze_param": (str, list, _NONE),
    "timestamp_conf": (dict, _NONE),  # {time_shift_frames: x}: a calibrated fire delay (docs/timestamps.md)  # FunASR's: parameter-name prefixes (comma-separated or a list) not trained
    "seaco_decoder": (str, _NONE),  # SeacoParaformer's second decoder (FunASR keeps it at the top level)
    "seaco_decoder_conf": (dict, _NONE),
    # UniASR's second pass (FunASR keeps its sections at the top level)
    "encoder2": (str, _NONE),
    "encoder2_conf": (dict, _NONE),
    "decoder2": (str, _NONE),
    "decoder2_conf": (dict, _NONE),
    "predictor2": (str, _NONE),
    "predictor2_conf": (dict, _NONE),
    "stride_conv": (str, _NONE),
    "stride_conv_conf": (dict, _NONE),
    "train_data": (str, _NONE),
    "valid_data": (str, _NONE),
    "output_dir": (str, _NONE),
}

# Keys found in FunASR configs that this toolkit does not use: accepted, dropped, logged.
FUNASR_IGNORED_TOP_LEVEL = frozenset(
    {
        "dataset", "index_ds", "batch_size", "model_path", "model_revision", "hub", "ngpu", "ncpu",
        "device", "disable_update", "train_data_set_list", "valid_data_set_list", "debug", "log_level",
        "use_fp16", "use_bf16", "enable_tf32", "cudnn_enabled", "cudnn_benchmark", "cudnn_deterministic",
        "model_file", "config", "is_training", "use_ddp", "use_fsdp", "use_deepspeed", "deepspeed_config",
        "backend", "excludes", "scope_map", "unified_model_training", "lora_only", "lora_bias",
        "model_dir", "ncpu", "tokenizer_conf_path", "data_type",
    }
)

# train_conf: default, allowed types, meaning (docs/training.md repeats these).
TRAIN_CONF_SCHEMA: Dict[str, Tuple[Any, Tuple[type, ...]]] = {
    "max_epoch": (100, (int,)),  # epochs to train
    "max_steps": (0, (int,)),  # stop after this many optimizer steps in all (0 = no limit)
    "accum_grad": (1, (int,)),  # batches per optimizer step
    "grad_clip": (5.0, _NUMBER + (_NONE,)),  # max global grad norm (null or <= 0: no clipping)
    "grad_clip_type": (2.0, _NUMBER),  # norm type of the clipping
    "log_interval": (50, (int,)),  # log a line every N optimizer steps
    "save_every_steps": (0, (int,)),  # write checkpoint_latest.pt every N steps (0: epoch ends only)
    "keep_nbest_models": (10, (int,)),  # epoch checkpoints kept (best by best_metric, plus the latest)
    "best_metric": ("cer", (str,)),  # cer | loss | acc (validation)
    "avg_nbest_model": (10, (int,)),  # at the end, average this many best epochs into model.avg{N}.pt (0: no)
    "precision": ("fp32", (str,)),  # fp32 | bf16 | fp16 (bf16/fp16 only on GPU)
    "max_consecutive_nonfinite": (20, (int,)),  # abort after this many non-finite losses in a row
    "oom_check": (True, (bool,)),  # run the largest batches once before training
    "validate_cer": (True, (bool,)),  # greedy-decode the valid set for CER each epoch
    "find_unused_parameters": (False, (bool,)),  # DDP option
}
FUNASR_IGNORED_TRAIN_CONF = frozenset(
    {
        "validate_interval", "save_checkpoint_interval", "avg_keep_nbest_models_type", "use_fp16", "use_bf16",
        "reset_gpu_cache", "resume", "effective_save_name_excludes", "use_wandb", "wandb_project",
        "wandb_team", "wandb_exp_name", "wandb_token", "use_ddp", "use_fsdp", "use_deepspeed",
        "deepspeed_config", "log_interval_steps", "reset_optimizer", "val_scheduler_criterion",
        "best_model_criterion", "avg_nbest_model_num", "validation_interval", "start_step", "step_in_epoch",
        "data_split_i", "data_split_num", "train_acc_avg", "train_loss_avg", "excludes",
    }
)

DATASET_CONF_SCHEMA: Dict[str, Tuple[Any, Tuple[type, ...]]] = {
    "batch_bins": (20000, (int,)),  # max padded model-input frames (after LFR) per batch
    "bucket_size": (1024, (int,)),  # utterances per shuffled bucket sorted by length
    "shuffle": (True, (bool,)),
    "sortagrad": (0, (int,)),  # first N epochs: batches shortest first (SortaGrad), then shuffled
    "min_frames": (1, (int,)),  # drop utterances shorter than this (model-input frames)
    "max_frames": (3000, (int,)),  # drop utterances longer than this (model-input frames)
    "min_tokens": (1, (int,)),  # drop utterances with fewer tokens (0-token ones always go)
    "max_tokens": (200, (int,)),  # drop utterances with more tokens
    "num_workers": (2, (int,)),  # DataLoader worker processes
    "valid_batch_bins": (0, (int,)),  # batch_bins for validation (0: same as batch_bins)
    # ParaformerBert: a file of each data dir (embeds.scp: utt -> L x D matrix, one row per token)
    "embeds": (None, (str, type(None))),
}
FUNASR_IGNORED_DATASET_CONF = frozenset(
    {
        "index_ds", "batch_sampler", "batch_type", "batch_size", "max_token_length", "min_token_length",
        "buffer_size", "preprocessor_speech", "preprocessor_speech_conf", "preprocessor_text",
        "preprocessor_text_conf", "sort_size", "data_split_num", "max_source_length", "max_target_length",
        "audio_adaptor", "prompt", "pin_memory", "data_split_num_valid", "batch_size_sample_max",
        "data_type_list", "length_scale_source", "min_source_length", "min_target_length", "persistent_workers",
        "prefetch_factor", "rank_split", "scp_file_list", "jsonl_file_out", "jsonl_file_out_dir", "shuffle_conf",
    }
)

# frontend_conf: FunASR WavFrontend's keys and defaults, except dither (0: see frontend/fbank.py).
# fs, window, n_mels, frame_length, frame_shift fix the fbank features; lfr_m / lfr_n stack them
# for the model. Other keys (cmvn_file, FunASR-only options) pass through unchanged.
# funasr_lite.frontend.wav_frontend builds the one frontend from the resolved block.
FRONTEND_DEFAULTS: Dict[str, Any] = {
    "fs": 16000, "window": "hamming", "n_mels": 80, "frame_length": 25, "frame_shift": 10,
    "lfr_m": 1, "lfr_n": 1, "dither": 0.0,
}
WINDOW_TYPES = ("hamming", "hanning", "povey", "rectangular", "blackman")  # Kaldi's (torchaudio's)
BEST_METRICS = ("cer", "loss", "acc")
PRECISIONS = ("fp32", "bf16", "fp16")


def _type_names(types: Tuple[type, ...]) -> str:
    names = {int: "int", float: "float", str: "string", bool: "bool", dict: "mapping", list: "list", _NONE: "null"}
    return " or ".join(names.get(t, t.__name__) for t in types)


def _is_instance(value: Any, types: Tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in types  # bool is an int subclass: True must not pass as an int
    return isinstance(value, types)


def _unknown_key_error(key: str, known: Iterable[str], where: str) -> ConfigError:
    suggestion = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = f"; did you mean {suggestion[0]!r}?" if suggestion else ""
    return ConfigError(f"unknown key {key!r} in {where}{hint}")


def _check_block(
    block: Dict[str, Any],
    schema: Dict[str, Tuple[Any, Tuple[type, ...]]],
    ignored: frozenset,
    name: str,
) -> Dict[str, Any]:
    """Fill defaults, check key names and scalar types of a trainer-owned ``*_conf`` block."""
    out: Dict[str, Any] = {}
    for key, value in block.items():
        if key in ignored:
            logger.warning("config: %s.%s is a FunASR option this toolkit does not use; ignored", name, key)
            continue
        if key not in schema:
            raise _unknown_key_error(key, schema, name)
        types = schema[key][1]
        if not _is_instance(value, types):
            raise ConfigError(f"{name}.{key} must be {_type_names(types)}, got {value!r}")
        out[key] = float(value) if float in types and isinstance(value, int) and not isinstance(value, bool) else value
    for key, (default, _) in schema.items():
        out.setdefault(key, default)
    return out


def validate_config(config: Dict[str, Any], source: str = "config") -> Dict[str, Any]:
    """Check top-level keys and types, fill ``train_conf``/``dataset_conf`` defaults.

    Returns a new dict; raises ConfigError naming the key (and ``source``).
    """
    out: Dict[str, Any] = {}
    for key, value in config.items():
        if key in FUNASR_IGNORED_TOP_LEVEL:
            logger.warning("config %s: %s is a FunASR option this toolkit does not use; ignored", source, key)
            continue
        if key not in TOP_LEVEL_TYPES:
            raise _unknown_key_error(key, TOP_LEVEL_TYPES, f"{source} (top level)")
        types = TOP_LEVEL_TYPES[key]
        if not _is_instance(value, types):
            raise ConfigError(f"{source}: {key} must be {_type_names(types)}, got {value!r}")
        out[key] = copy.deepcopy(value)
    # An attention encoder-decoder (models.aed: FunASR's Conformer model class) has no predictor.
    needs_predictor = out.get("model") not in ("Conformer", "conformer")
    for required in ("model", "encoder", "decoder", "predictor", "frontend_conf"):
        if required not in out and (required != "predictor" or needs_predictor):
            raise ConfigError(f"{source}: missing required key {required!r}")
    out.setdefault("seed", 0)
    out.setdefault("optim", "adam")
    out.setdefault("optim_conf", {"lr": 0.0005})
    out.setdefault("scheduler", "warmuplr")
    out.setdefault("scheduler_conf", {"warmup_steps": 25000})
    try:
        out["train_conf"] = _check_block(out.get("train_conf") or {}, TRAIN_CONF_SCHEMA, FUNASR_IGNORED_TRAIN_CONF, "train_conf")
        out["dataset_conf"] = _check_block(
            out.get("dataset_conf") or {}, DATASET_CONF_SCHEMA, FUNASR_IGNORED_DATASET_CONF, "dataset_conf"
        )
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None
    train_conf, dataset_conf = out["train_conf"], out["dataset_conf"]
    if train_conf["best_metric"] not in BEST_METRICS:
        raise ConfigError(f"{source}: train_conf.best_metric must be one of {BEST_METRICS}, got {train_conf['best_metric']!r}")
    if train_conf["precision"] not in PRECISIONS:
        raise ConfigError(f"{source}: train_conf.precision must be one of {PRECISIONS}, got {train_conf['precision']!r}")
    for key in ("max_epoch", "accum_grad", "log_interval"):
        if train_conf[key] < 1:
            raise ConfigError(f"{source}: train_conf.{key} must be >= 1, got {train_conf[key]}")
    for key in ("batch_bins", "bucket_size", "max_frames"):
        if dataset_conf[key] < 1:
            raise ConfigError(f"{source}: dataset_conf.{key} must be >= 1, got {dataset_conf[key]}")
    if dataset_conf["sortagrad"] < 0:
        raise ConfigError(f"{source}: dataset_conf.sortagrad must be >= 0, got {dataset_conf['sortagrad']}")
    out["frontend_conf"] = resolve_frontend_conf(out["frontend_conf"], source)
    return out


def resolve_frontend_conf(frontend_conf: Optional[Dict[str, Any]], source: str = "config") -> Dict[str, Any]:
    """``frontend_conf`` with :data:`FRONTEND_DEFAULTS` filled in and its known keys checked.

    Returns a new dict; raises ConfigError naming the key (and ``source``).
    """
    conf = dict(FRONTEND_DEFAULTS)
    conf.update(frontend_conf or {})
    for key in ("fs", "n_mels", "lfr_m", "lfr_n"):
        if not _is_instance(conf[key], (int,)) or conf[key] < 1:
            raise ConfigError(f"{source}: frontend_conf.{key} must be a positive int, got {conf[key]!r}")
    for key in ("frame_length", "frame_shift"):
        if not _is_instance(conf[key], _NUMBER) or conf[key] <= 0:
            raise ConfigError(f"{source}: frontend_conf.{key} must be a positive number (ms), got {conf[key]!r}")
    if conf["window"] not in WINDOW_TYPES:
        raise ConfigError(f"{source}: frontend_conf.window must be one of {', '.join(WINDOW_TYPES)}, got {conf['window']!r}")
    if not _is_instance(conf["dither"], _NUMBER) or conf["dither"] < 0:
        raise ConfigError(f"{source}: frontend_conf.dither must be a number >= 0, got {conf['dither']!r}")
    if not conf.get("upsacle_samples", True):  # FunASR's spelling
        raise ConfigError(f"{source}: frontend_conf.upsacle_samples=false is not supported")
    return conf


# ---------------------------------------------------------------- overrides


def parse_override(text: str) -> Tuple[List[str], Any]:
    """``++a.b.c=value`` -> (["a", "b", "c"], typed value)."""
    if not text.startswith(OVERRIDE_PREFIX) or "=" not in text:
        raise ConfigError(f"bad override {text!r}: expected {OVERRIDE_PREFIX}key.sub=value")
    dotted, value_text = text[len(OVERRIDE_PREFIX):].split("=", 1)
    keys = dotted.split(".")
    if not all(keys):
        raise ConfigError(f"bad override {text!r}: empty key in {dotted!r}")
    return keys, parse_yaml_value(value_text)


def apply_overrides(config: Dict[str, Any], overrides: Sequence[str]) -> Dict[str, Any]:
    """Return a copy of ``config`` with each ``++dotted.key=value`` applied in order."""
    out = copy.deepcopy(config)
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                path = ".".join(keys[: depth + 1])
                raise ConfigError(f"override {text!r}: {path} is {child!r}, not a mapping")
            node = child
        node[keys[-1]] = value
    return out


# ---------------------------------------------------------------- files


def _plain(value: Any) -> Any:
    """Tuples -> lists, recursively, so the YAML has no Python-specific tags."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def dump_config(config: Dict[str, Any]) -> str:
    return yaml.safe_dump(_plain(config), allow_unicode=True, sort_keys=False, default_flow_style=False)


def write_config(config: Dict[str, Any], path) -> None:
    """Write the resolved config atomically (temp file + rename)."""
    with atomic_open(path) as f:
        f.write(dump_config(config))


def read_config(path) -> Dict[str, Any]:
    """Read a resolved ``<exp>/config.yaml`` (what decoding uses)."""
    return load_yaml(path)


def config_differences(old: Dict[str, Any], new: Dict[str, Any], keys: Optional[Sequence[str]] = None) -> List[str]:
    """Top-level keys whose values differ between two configs (a missing key counts as None):
    those of ``keys`` in the given order, or else all keys of either config, sorted."""
    if keys is None:
        keys = sorted(set(old) | set(new))
    return [key for key in keys if old.get(key) != new.get(key)]


__all__ = [
    "ConfigError",
    "OVERRIDE_PREFIX",
    "apply_overrides",
    "config_differences",
    "dump_config",
    "load_yaml",
    "parse_override",
    "parse_yaml_value",
    "read_config",
    "resolve_frontend_conf",
    "validate_config",
    "write_config",
]
