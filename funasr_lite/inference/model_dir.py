"""Model directories for decoding: load one, checked before use (export: :mod:`funasr_lite.export.model_dir`).

Three layouts load the same way (:func:`load_model_dir`):

* a FunASR / ModelScope model dir: ``config.yaml`` (``frontend_conf.cmvn_file`` and
  ``tokenizer_conf.token_list`` may name files relative to the dir, or be absent), ``model.pt``
  (2024+) or ``model.pb`` (2023), ``am.mvn``, ``tokens.json`` or ``tokens.txt``
  (``configuration.json`` may name the weights file in ``file_path_metas.init_param``);
* a dir exported by :func:`funasr_lite.export.model_dir.export_model_dir` (stage 8): the same layout, ``tokens.txt``;
* a training exp dir: ``config.yaml`` written by the trainer (absolute ``token_list`` and
  ``cmvn_file``) and weights chosen by ``checkpoint`` (e.g. ``model.avg10.pt``); without one,
  the only ``model.avg*.pt``, else the best epoch listed in ``best.json``.

Files are found in this order: a path named by the config (top-level ``token_list`` /
``cmvn_file`` first, then ``tokenizer_conf.token_list`` / ``frontend_conf.cmvn_file``; relative
to the dir, or absolute) if it exists, else the file in the dir (``tokens.json`` before
``tokens.txt``, as FunASR).

Before any decoding, the parts must agree, or loading is refused with every mismatch named
with its file: vocabulary size (config ``vocab_size``, the token list, the rows of
``decoder.output_layer`` and ``ctc.ctc_lo`` in the weights) and input dimension (``am.mvn``,
``frontend_conf`` n_mels * lfr_m, config ``input_size``, the encoder's first layer in the
weights). Then the model is built from the config and the weights are loaded strictly, so any
other shape difference is named by tensor.

Decoding never dithers: ``frontend_conf.dither`` is read as 0 whatever the config says.
"""

from __future__ import annotations

import copy
import glob
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import torch

from funasr_lite.decode.timestamps import TIME_SHIFT_FRAMES
from funasr_lite.data.tokenizer import CharTokenizer, TokenListError, build_tokenizer, read_token_list
from funasr_lite.frontend.cmvn import CmvnError, read_am_mvn
from funasr_lite.frontend.wav_frontend import WavFrontend
from funasr_lite.models import ConfigError, build_model
from funasr_lite.models.load import CheckpointError, compare_state_dicts, load_state_dict_file
from funasr_lite.utils.config import ConfigError as YamlConfigError
from funasr_lite.utils.config import load_yaml
from funasr_lite.utils.config import resolve_frontend_conf as resolve_frontend_block

logger = logging.getLogger(__name__)


CONFIG_NAME = "config.yaml"
WEIGHT_NAMES = ("model.pt", "model.pb")
TOKEN_NAMES = ("tokens.json", "tokens.txt")
CMVN_NAME = "am.mvn"
BPE_MODEL_NAME = "bpe.model"
EXPORTED_TOKENS_NAME = "tokens.txt"


# Sections only training uses; dropped before building a model for decoding (SpecAug has no weights).
_TRAINING_ONLY_KEYS = ("specaug", "specaug_conf")


class ModelDirError(ValueError):
    """A model dir that cannot be decoded with: missing files or parts that disagree."""


@dataclass
class ModelFiles:
    """The files a model dir resolved to (absolute paths; bpe_model may be None)."""

    model_dir: str
    config: str
    weights: str
    token_list: Optional[str]  # None: the config holds the list inline (2023 FunASR configs)
    cmvn: str
    bpe_model: Optional[str] = None


@dataclass
class LoadedModel:
    """A model ready for decoding, with what turns audio into its input and ids into text.

    model: the Paraformer in eval mode on ``device``; config: the config.yaml as read;
    frontend_conf: resolved (defaults filled, dither 0); cmvn_shift / cmvn_scale: (D,) float32;
    encoder_frame_ms: duration of one encoder (predictor) frame;
    timestamp_frame_ms: duration of one frame of the signals timestamps are read from: the encoder
    frame, or a third of it for BiCifParaformer's x3 upsampled head (docs/spec.md §9);
    timestamp_shift_frames: the fire delay (frames added to every fire): FunASR's -1.5, or the
    config's ``timestamp_conf.time_shift_frames`` (``bin/calibrate_timestamps``; docs/timestamps.md);
    frontend: the :class:`WavFrontend` of frontend_conf + am.mvn (audio or raw fbank -> model input).
    """

    model: torch.nn.Module
    config: Dict[str, Any]
    files: ModelFiles
    token_list: List[str]
    tokenizer: CharTokenizer
    frontend_conf: Dict[str, Any]
    cmvn_shift: np.ndarray
    cmvn_scale: np.ndarray
    encoder_frame_ms: float
    timestamp_frame_ms: float
    device: torch.device
    frontend: WavFrontend
    timestamp_shift_frames: float = TIME_SHIFT_FRAMES

    @property
    def sample_rate(self) -> int:
        return int(self.frontend_conf["fs"])

    @property
    def n_mels(self) -> int:
        return int(self.frontend_conf["n_mels"])

    @property
    def input_size(self) -> int:
        return int(self.frontend_conf["n_mels"]) * int(self.frontend_conf["lfr_m"])


# ---------------------------------------------------------------- finding the files


def read_model_config(path: str) -> Dict[str, Any]:
    """A model dir's config.yaml as a mapping; ModelDirError names the file otherwise."""
    try:
        config = load_yaml(path)
    except YamlConfigError as e:
        raise ModelDirError(str(e)) from None
    if not isinstance(config, dict):
        raise ModelDirError(f"{path}: not a YAML mapping")
    return config


def _named_path(model_dir: str, value: Any) -> Optional[str]:
    """A config-named file: absolute, or relative to the model dir; None if it does not exist."""
    if not isinstance(value, str) or not value:
        return None
    path = value if os.path.isabs(value) else os.path.join(model_dir, value)
    return os.path.abspath(path) if os.path.isfile(path) else None


def _find_file(model_dir: str, named: List[Tuple[str, Any]], own_names: Tuple[str, ...], what: str) -> str:
    """First existing of: config-named paths (key, value), then own_names inside the dir."""
    tried = []
    for key, value in named:
        if value is None:
            continue
        path = _named_path(model_dir, value)
        if path:
            return path
        if isinstance(value, str):
            tried.append(f"{key}={value}")
            logger.warning("%s: %s names %s, which does not exist; looking in the dir", model_dir, key, value)
    for name in own_names:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return os.path.abspath(path)
        tried.append(name)
    raise ModelDirError(f"{model_dir}: no {what} (tried {', '.join(tried)})")


def _checkpoint_path(model_dir: str, checkpoint: str) -> str:
    candidates = [checkpoint] if os.path.isabs(checkpoint) else [os.path.join(model_dir, checkpoint), checkpoint]
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    raise ModelDirError(f"checkpoint {checkpoint} not found (tried {', '.join(dict.fromkeys(candidates))})")


def _default_weights(model_dir: str) -> str:
    """model dir: configuration.json's init_param, model.pt, model.pb; exp dir: model.avg*.pt, best.json."""
    configuration = os.path.join(model_dir, "configuration.json")
    if os.path.isfile(configuration):
        try:
            with open(configuration, encoding="utf-8") as f:
                metas = json.load(f).get("file_path_metas") or {}
        except (OSError, ValueError, AttributeError) as e:
            logger.warning("%s: unreadable (%s); ignored", configuration, e)
            metas = {}
        path = _named_path(model_dir, metas.get("init_param"))
        if path:
            return path
    for name in WEIGHT_NAMES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            return os.path.abspath(path)
    averaged = sorted(glob.glob(os.path.join(model_dir, "model.avg*.pt")))
    if len(averaged) == 1:
        return os.path.abspath(averaged[0])
    if len(averaged) > 1:
        names = ", ".join(os.path.basename(p) for p in averaged)
        raise ModelDirError(f"{model_dir}: several averaged models ({names}); choose one with --checkpoint")
    best = os.path.join(model_dir, "best.json")
    if os.path.isfile(best):
        try:
            with open(best, encoding="utf-8") as f:
                ranking = json.load(f).get("ranking") or []
        except (OSError, ValueError, AttributeError) as e:
            raise ModelDirError(f"{best}: unreadable ({e})") from None
        for entry in ranking:
            path = os.path.join(model_dir, str(entry.get("checkpoint", "")))
            if os.path.isfile(path):
                logger.info("%s: using the best epoch checkpoint %s (best.json)", model_dir, path)
                return os.path.abspath(path)
    raise ModelDirError(
        f"{model_dir}: no weights (looked for {', '.join(WEIGHT_NAMES)}, model.avg*.pt, best.json); "
        "pass --checkpoint"
    )


def resolve_model_files(model_dir, checkpoint: Optional[str] = None) -> Tuple[ModelFiles, Dict[str, Any]]:
    """Find config, weights, token list, am.mvn (and bpe.model) of a model or exp dir.

    Returns (files, config as read).
    """
    model_dir = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: no such model dir")
    config_path = os.path.join(model_dir, CONFIG_NAME)
    if not os.path.isfile(config_path):
        raise ModelDirError(f"{model_dir}: no {CONFIG_NAME}")
    config = read_model_config(config_path)
    weights = _checkpoint_path(model_dir, checkpoint) if checkpoint else _default_weights(model_dir)
    frontend_conf = config.get("frontend_conf") or {}
    tokenizer_conf = config.get("tokenizer_conf") or {}
    token_list = config.get("token_list")
    # A trainer's resolved config sets the top-level paths, which win over the FunASR-style ones.
    token_list_named = [
        ("token_list", token_list if isinstance(token_list, str) else None),
        ("tokenizer_conf.token_list", tokenizer_conf.get("token_list")),
    ]
    if isinstance(token_list, list) and not any(os.path.isfile(os.path.join(model_dir, n)) for n in TOKEN_NAMES):
        tokens_path = None
    else:
        tokens_path = _find_file(model_dir, token_list_named, TOKEN_NAMES, "token list")
    cmvn_path = _find_file(
        model_dir,
        [("cmvn_file", config.get("cmvn_file")), ("frontend_conf.cmvn_file", frontend_conf.get("cmvn_file"))],
        (CMVN_NAME,),
        "CMVN file (am.mvn)",
    )
    bpe_model = _named_path(model_dir, tokenizer_conf.get("bpemodel"))
    if bpe_model is None and os.path.isfile(os.path.join(model_dir, BPE_MODEL_NAME)):
        bpe_model = os.path.join(model_dir, BPE_MODEL_NAME)
    files = ModelFiles(model_dir, config_path, weights, tokens_path, cmvn_path, bpe_model)
    return files, config


# ---------------------------------------------------------------- consistency


def resolve_frontend_conf(config: Dict[str, Any], source: str = CONFIG_NAME) -> Dict[str, Any]:
    """frontend_conf of ``config`` with FunASR's defaults filled in (``utils.config``) and dither
    forced to 0 (decoding); a bad value is a ModelDirError naming the key."""
    given = dict(config.get("frontend_conf") or {})
    if float(given.get("dither", 0.0) or 0.0) != 0.0:
        logger.info("%s: frontend_conf.dither=%s ignored: decoding uses dither 0", source, given["dither"])
    given["dither"] = 0.0
    try:
        return resolve_frontend_block(given, source)
    except YamlConfigError as e:
        raise ModelDirError(str(e)) from None


def _conv_subsampled_features(num_features: int, stages) -> int:
    for kernel, stride in stages:
        num_features = (num_features - kernel) // stride + 1
    return num_features


def _encoder_input_problem(state: Dict[str, torch.Tensor], input_size: int, encoder_name: str) -> Optional[str]:
    """How the encoder's first layer in the weights disagrees with input_size (None: agrees/unknown)."""
    key = "encoder.encoders0.0.self_attn.linear_q_k_v.weight"  # SAN-M
    if key in state:
        found = int(state[key].shape[1])
        return None if found == input_size else f"{key} takes {found}-dim input"
    key = "encoder.embed.0.weight"  # linear input layer
    if key in state and state[key].dim() == 2:
        found = int(state[key].shape[1])
        return None if found == input_size else f"{key} takes {found}-dim input"
    key = "encoder.embed.out.0.weight"  # conv2d subsampling: Linear(channels * F', d)
    if key in state:
        from funasr_lite.models.modules.subsampling import SUBSAMPLINGS

        channels = int(state[key].shape[0])
        for cls in SUBSAMPLINGS.values():
            if channels * _conv_subsampled_features(input_size, cls.stages) == int(state[key].shape[1]):
                return None
        return f"{key} has {int(state[key].shape[1])} inputs, which no conv subsampling of {input_size}-dim features gives"
    logger.debug("encoder %s: no known input layer in the weights; the strict load checks it", encoder_name)
    return None


def check_consistency(
    files: ModelFiles,
    config: Dict[str, Any],
    token_list: List[str],
    cmvn_dim: int,
    state: Dict[str, torch.Tensor],
) -> None:
    """Raise ModelDirError naming every disagreement of vocabulary size or input dimension."""
    def shown(path: Optional[str]) -> str:
        if path is None:
            return f"the token_list inside {os.path.basename(files.config)}"
        return os.path.relpath(path, files.model_dir) if path.startswith(files.model_dir + os.sep) else path

    config_name, weights_name = shown(files.config), shown(files.weights)
    tokens_name, cmvn_name = shown(files.token_list), shown(files.cmvn)
    problems: List[str] = []

    vocab = len(token_list)
    vocab_size = config.get("vocab_size")
    if isinstance(vocab_size, int) and vocab_size not in (-1, vocab):
        problems.append(f"vocab size: {config_name} vocab_size={vocab_size} but {tokens_name} has {vocab} tokens")
    for key in ("decoder.output_layer.weight", "ctc.ctc_lo.weight"):
        if key in state and int(state[key].shape[0]) != vocab:
            problems.append(
                f"vocab size: {weights_name} {key} has {int(state[key].shape[0])} rows "
                f"but {tokens_name} has {vocab} tokens"
            )

    frontend_conf = resolve_frontend_conf(config, config_name)
    n_mels, lfr_m = int(frontend_conf["n_mels"]), int(frontend_conf["lfr_m"])
    input_size = n_mels * lfr_m
    if cmvn_dim != input_size:
        problems.append(
            f"input dim: {cmvn_name} has {cmvn_dim} dims but {config_name} frontend_conf gives "
            f"n_mels * lfr_m = {n_mels} * {lfr_m} = {input_size}"
        )
    if isinstance(config.get("input_size"), int) and config["input_size"] != input_size:
        problems.append(
            f"input dim: {config_name} input_size={config['input_size']} but frontend_conf gives "
            f"n_mels * lfr_m = {n_mels} * {lfr_m} = {input_size}"
        )
    encoder_problem = _encoder_input_problem(state, input_size, str(config.get("encoder")))
    if encoder_problem:
        problems.append(f"input dim: {weights_name} {encoder_problem} but {config_name} frontend_conf gives "
                        f"n_mels * lfr_m = {n_mels} * {lfr_m} = {input_size}")
    if problems:
        raise ModelDirError(
            f"model dir {files.model_dir} refused, its parts disagree:\n  " + "\n  ".join(problems)
        )


# timestamp_conf keys: the delay of the model's own timestamp signal, and of its CIF fires when
# they are another signal (a BiCifParaformer decoded with timestamp_source cif).
SHIFT_KEYS = {"model": "time_shift_frames", "cif": "cif_time_shift_frames"}


def timestamp_shift_frames(config: Dict[str, Any], source: str, timestamp_source: str = "model") -> float:
    """``timestamp_conf.time_shift_frames`` (``cif_time_shift_frames`` for the CIF of a BiCif model)
    of a config, a number; else FunASR's -1.5."""
    conf = config.get("timestamp_conf") or {}
    if not isinstance(conf, dict):
        raise ModelDirError(f"{source}: timestamp_conf must be a mapping, got {conf!r}")
    key = SHIFT_KEYS[timestamp_source]
    value = conf.get(key, TIME_SHIFT_FRAMES)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ModelDirError(f"{source}: timestamp_conf.{key} must be a number, got {value!r}")
    return float(value)


def load_fitting_weights(model: torch.nn.Module, state, files) -> None:
    """Load ``state`` into ``model`` strictly, or raise ModelDirError listing what does not fit
    (shape mismatches, missing and unexpected keys, five of each) with the dir's file names."""
    missing, unexpected, mismatched = compare_state_dicts(model.state_dict(), state)
    if missing or unexpected or mismatched:
        lines = []
        for title, items in (("shape mismatches", mismatched), ("missing keys", missing), ("unexpected keys", unexpected)):
            if items:
                more = f" ... ({len(items) - 5} more)" if len(items) > 5 else ""
                lines.append(f"{len(items)} {title}: {', '.join(items[:5])}{more}")
        raise ModelDirError(f"weights {files.weights} do not fit the model of {files.config}:\n  " + "\n  ".join(lines))
    model.load_state_dict(state, strict=True)


def _encoder_frame_ms(model: torch.nn.Module, frontend_conf: Dict[str, Any]) -> float:
    """Feature shift x LFR hop x the encoder's time subsampling (conv2d input layers, data2vec's
    conv feature extractor)."""
    input_layer = getattr(model.encoder, "embed", None)
    if input_layer is None:
        input_layer = getattr(model.encoder, "feature_extractor", None)
    stages = getattr(input_layer, "stages", None) or []
    subsampling = math.prod(stride for _, stride in stages) if stages else 1
    return float(frontend_conf["frame_shift"]) * int(frontend_conf["lfr_n"]) * subsampling


# ---------------------------------------------------------------- loading


def _read_tokens(files: ModelFiles, config: Dict[str, Any]) -> Tuple[List[str], CharTokenizer]:
    try:
        if files.token_list is None:
            token_list = [str(token) for token in config["token_list"]]
            return token_list, CharTokenizer(token_list)
        return read_token_list(files.token_list), build_tokenizer(files.token_list, files.bpe_model)
    except (TokenListError, OSError, ImportError) as e:
        raise ModelDirError(f"{files.token_list or files.config}: {e}") from None


def load_model_dir(model_dir, checkpoint: Optional[str] = None, device="cpu") -> LoadedModel:
    """Load a FunASR / exported model dir or a training exp dir for decoding (see module docstring).

    Raises ModelDirError (missing files, disagreeing parts, weights that do not fit).
    """
    files, config = resolve_model_files(model_dir, checkpoint)
    token_list, tokenizer = _read_tokens(files, config)
    try:
        cmvn_shift, cmvn_scale = read_am_mvn(files.cmvn)
    except CmvnError as e:
        raise ModelDirError(str(e)) from None
    try:
        state = load_state_dict_file(files.weights)
    except CheckpointError as e:
        raise ModelDirError(str(e)) from None
    check_consistency(files, config, token_list, int(cmvn_shift.shape[0]), state)

    frontend_conf = resolve_frontend_conf(config)
    build_config = {key: copy.deepcopy(value) for key, value in config.items() if key not in _TRAINING_ONLY_KEYS}
    build_config["input_size"] = int(frontend_conf["n_mels"]) * int(frontend_conf["lfr_m"])
    build_config["vocab_size"] = len(token_list)
    try:
        model = build_model(build_config)
    except (ConfigError, ValueError, TypeError) as e:
        raise ModelDirError(f"{files.config}: cannot build the model: {e}") from None
    load_fitting_weights(model, state, files)
    device = torch.device(device)
    model.to(device).eval()
    encoder_frame_ms = _encoder_frame_ms(model, frontend_conf)
    loaded = LoadedModel(
        model=model, config=config, files=files, token_list=token_list, tokenizer=tokenizer,
        frontend_conf=frontend_conf, cmvn_shift=cmvn_shift, cmvn_scale=cmvn_scale,
        encoder_frame_ms=encoder_frame_ms,
        timestamp_frame_ms=encoder_frame_ms / getattr(model, "timestamp_upsample", 1), device=device,
        frontend=WavFrontend(frontend_conf, files.cmvn, cmvn=(cmvn_shift, cmvn_scale), source=files.config),
        timestamp_shift_frames=timestamp_shift_frames(config, files.config),
    )
    logger.info(
        "loaded %s (weights %s, %d tokens, %d-dim input, %d parameters) on %s", files.model_dir,
        os.path.basename(files.weights), len(token_list), loaded.input_size,
        sum(p.numel() for p in model.parameters()), device,
    )
    return loaded

