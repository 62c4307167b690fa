"""Speaker model dirs (FunASR's x-vector) loaded and checked, and utterances turned into embeddings.

Two layouts load the same way (:func:`load_speaker_model_dir`):

* FunASR 0.x / ModelScope's released ``speech_xvector_sv-zh-cn-cnceleb-16k-spk3465-pytorch``:
  ``sv.yaml`` (the config, the speakers inline as ``token_list``), ``sv.pb`` (the weights, a plain
  state dict) and ``configuration.json`` (``model.model_config.sv_model_config`` /
  ``sv_model_name`` name the two);
* the FunASR 1.x layout of the other model dirs: ``config.yaml`` + ``model.pt`` (or ``model.pb``;
  ``file_path_metas.init_param`` of ``configuration.json`` may name it).

Features: the config's ``frontend_conf`` (FunASR's WavFrontend: Kaldi fbank, 80 mels, povey window
for the released model), dither 0. FunASR's sv inference builds the frontend with no CMVN file and
the released model has none; a ``cmvn_file`` named by the config or an ``am.mvn`` in the dir is
applied (FunASR 1.x's rule for model dirs). Before the weights load, the speaker count of the
config and of ``decoder.output_dense`` must agree; then the weights load strictly, any other
difference named by tensor.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import kaldiio
import numpy as np
import torch

from funasr_lite.frontend.cmvn import CmvnError
from funasr_lite.frontend.fbank import WaveformTooShortError
from funasr_lite.frontend.wav_frontend import WavFrontend
from funasr_lite.inference.model_dir import ModelDirError, load_fitting_weights, read_model_config, resolve_frontend_conf
from funasr_lite.inference.speech2text import InputItem, ItemError, item_waveform
from funasr_lite.models.load import CheckpointError, load_state_dict_file
from funasr_lite.models.speaker import EMBEDDING_NODES, XVector, build_speaker_model, is_speaker_config
from funasr_lite.models.speaker.model import DEFAULT_EMBEDDING_NODE
from funasr_lite.utils.config import ConfigError

logger = logging.getLogger(__name__)

CONFIG_NAMES = ("config.yaml", "sv.yaml")  # 1.x layout first, then the released 0.x one
WEIGHT_NAMES = ("model.pt", "model.pb", "sv.pb")
CMVN_NAME = "am.mvn"
OUTPUT_LAYER = "decoder.output_dense.weight"  # (speakers, width)
DEFAULT_BATCH_FRAMES = 20000  # padded fbank frames per batch (utterances x longest)


@dataclass
class SpeakerModelFiles:
    """The files a speaker model dir resolved to (absolute paths; cmvn None: no CMVN)."""

    model_dir: str
    config: str
    weights: str
    cmvn: Optional[str] = None


@dataclass
class LoadedSpeakerModel:
    """An x-vector model in eval mode on ``device``, with the frontend that makes its input."""

    model: XVector
    config: Dict[str, Any]
    files: SpeakerModelFiles
    speakers: List[str]  # the training speakers (token_list), one per row of output_dense
    frontend: WavFrontend
    device: torch.device

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate


def _configuration_names(model_dir: str) -> Dict[str, Optional[str]]:
    """The config and weights file names configuration.json gives (None where it gives none)."""
    path = os.path.join(model_dir, "configuration.json")
    if not os.path.isfile(path):
        return {"config": None, "weights": None}
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
        model = meta.get("model") or {}
        model_config = model.get("model_config") or {}
        weights = (meta.get("file_path_metas") or {}).get("init_param") or model_config.get("sv_model_name") \
            or model.get("sv_model_name")
        return {"config": model_config.get("sv_model_config"), "weights": weights}
    except (OSError, ValueError, AttributeError) as e:
        logger.warning("%s: unreadable (%s); ignored", path, e)
        return {"config": None, "weights": None}


def _first_file(model_dir: str, names: Sequence[Optional[str]], what: str) -> str:
    tried = []
    for name in names:
        if not name:
            continue
        path = name if os.path.isabs(name) else os.path.join(model_dir, name)
        if os.path.isfile(path):
            return os.path.abspath(path)
        tried.append(name)
    raise ModelDirError(f"{model_dir}: no {what} (tried {', '.join(dict.fromkeys(tried))})")


def resolve_speaker_files(model_dir, checkpoint: Optional[str] = None):
    """-> (SpeakerModelFiles, config as read) of a speaker model dir (module docstring)."""
    model_dir = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: no such model dir")
    named = _configuration_names(model_dir)
    config_path = _first_file(model_dir, [named["config"], *CONFIG_NAMES], "config")
    config = read_model_config(config_path)
    if not is_speaker_config(config):
        raise ModelDirError(f"{config_path}: not a speaker model config (no pooling_type, encoder "
                            f"{config.get('encoder')!r}); for ASR model dirs use SpeechRecognizer")
    if checkpoint:  # relative to the dir, else as given (absolute, or relative to the working dir)
        weights = _first_file(model_dir, [checkpoint, os.path.abspath(checkpoint)], "checkpoint")
    else:
        weights = _first_file(model_dir, [named["weights"], *WEIGHT_NAMES], "weights")
    frontend_conf = config.get("frontend_conf") or {}
    cmvn = None
    for value in (config.get("cmvn_file"), frontend_conf.get("cmvn_file"), CMVN_NAME):
        if isinstance(value, str) and value:
            path = value if os.path.isabs(value) else os.path.join(model_dir, value)
            if os.path.isfile(path):
                cmvn = os.path.abspath(path)
                break
            if value != CMVN_NAME:
                raise ModelDirError(f"{config_path}: cmvn_file {value} does not exist")
    return SpeakerModelFiles(model_dir, config_path, weights, cmvn), config


def _speakers(config: Dict[str, Any], config_path: str) -> List[str]:
    token_list = config.get("token_list")
    if isinstance(token_list, list):
        return [str(token) for token in token_list]
    size = config.get("vocab_size")
    if isinstance(size, int) and size > 0:
        return [f"speaker{index}" for index in range(size)]
    raise ModelDirError(f"{config_path}: needs token_list (the training speakers, inline) or vocab_size")


def load_speaker_model_dir(model_dir, checkpoint: Optional[str] = None, device="cpu") -> LoadedSpeakerModel:
    """Load a speaker (x-vector) model dir for embedding (see the module docstring); ModelDirError
    names what is missing or disagrees."""
    files, config = resolve_speaker_files(model_dir, checkpoint)
    speakers = _speakers(config, files.config)
    try:
        state = load_state_dict_file(files.weights)
    except CheckpointError as e:
        raise ModelDirError(str(e)) from None
    if OUTPUT_LAYER in state and int(state[OUTPUT_LAYER].shape[0]) != len(speakers):
        raise ModelDirError(f"model dir {files.model_dir} refused: {os.path.basename(files.weights)} {OUTPUT_LAYER} "
                            f"has {int(state[OUTPUT_LAYER].shape[0])} rows (speakers) but "
                            f"{os.path.basename(files.config)} lists {len(speakers)}")
    frontend_conf = resolve_frontend_conf(config, files.config)
    build_config = copy.deepcopy(config)
    build_config["token_list"], build_config["vocab_size"] = speakers, len(speakers)
    build_config["input_size"] = int(frontend_conf["n_mels"]) * int(frontend_conf["lfr_m"])
    try:
        model = build_speaker_model(build_config)
    except (ConfigError, ValueError, TypeError) as e:
        raise ModelDirError(f"{files.config}: cannot build the speaker model: {e}") from None
    load_fitting_weights(model, state, files)
    device = torch.device(device)
    model.to(device).eval()
    try:
        frontend = WavFrontend(frontend_conf, files.cmvn, source=files.config)
    except CmvnError as e:
        raise ModelDirError(str(e)) from None
    logger.info("loaded speaker model %s (weights %s, %d speakers, %s) on %s", files.model_dir,
                os.path.basename(files.weights), len(speakers), frontend, device)
    return LoadedSpeakerModel(model, config, files, speakers, frontend, device)


def item_features(frontend: WavFrontend, item: InputItem) -> torch.Tensor:
    """One input -> (T, D) model input (fbank [+ CMVN]); ItemError (naming it) when it cannot be used
    or has no frames (a speaker embedding needs at least one 25 ms window)."""
    if item.kind == "feats":
        try:
            fbank = torch.from_numpy(np.array(kaldiio.load_mat(item.value), dtype=np.float32))
        except Exception as e:  # kaldiio raises many types for bad offsets/files
            raise ItemError(item.key, item.value, "unreadable_features", f"cannot read features {item.value}: {e}") from None
        if fbank.dim() != 2 or fbank.shape[1] != frontend.n_mels:
            raise ItemError(item.key, item.value, "wrong_feature_dim",
                            f"features {item.value} have shape {tuple(fbank.shape)}, expected (T, {frontend.n_mels})")
    else:
        waveform = item_waveform(frontend, item)
        try:
            fbank = frontend.fbank(waveform)
        except WaveformTooShortError:
            fbank = torch.zeros(0, frontend.n_mels)
        except ValueError as e:
            raise ItemError(item.key, item.value, "bad_samples", str(e)) from None
    if fbank.shape[0] == 0:
        raise ItemError(item.key, item.value, "empty",
                        f"no frames: a speaker embedding needs at least {frontend.conf['frame_length']} ms of audio")
    return frontend.lfr_cmvn(fbank)


@torch.no_grad()
def embed_features(loaded: LoadedSpeakerModel, features: Sequence[torch.Tensor],
                   embedding_node: str = DEFAULT_EMBEDDING_NODE,
                   batch_frames: int = DEFAULT_BATCH_FRAMES) -> List[np.ndarray]:
    """(T_i, D) model inputs -> their (E,) float32 embeddings, in order. Utterances are sorted by
    length and batched up to ``batch_frames`` padded frames; each embedding equals its utterance's alone."""
    if embedding_node not in EMBEDDING_NODES:
        raise ValueError(f"embedding_node {embedding_node!r}: choose one of {', '.join(EMBEDDING_NODES)}")
    order = sorted(range(len(features)), key=lambda index: -features[index].shape[0])
    embeddings: List[Optional[np.ndarray]] = [None] * len(features)
    start = 0
    while start < len(order):
        longest = features[order[start]].shape[0]
        count = max(1, min(len(order) - start, batch_frames // max(longest, 1)))
        batch = order[start:start + count]
        lengths = torch.tensor([features[index].shape[0] for index in batch])
        padded = torch.nn.utils.rnn.pad_sequence([features[index] for index in batch], batch_first=True)
        vectors = loaded.model.embed(padded.to(loaded.device), lengths.to(loaded.device), embedding_node)
        for index, vector in zip(batch, vectors.float().cpu().numpy()):
            embeddings[index] = vector
        start += count
    return embeddings  # type: ignore[return-value]


def cosine_score(a: np.ndarray, b: np.ndarray, eps: float = 1e-8) -> float:
    """Cosine similarity of two embeddings (as FunASR's ``torch.cosine_similarity``, in float64)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1), np.asarray(b, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"embeddings of different sizes: {a.shape[0]} and {b.shape[0]}")
    return float(np.dot(a, b) / (max(np.linalg.norm(a), eps) * max(np.linalg.norm(b), eps)))


def funasr_similarity(score: float, threshold: float) -> float:
    """FunASR's reported ``scores`` (0-100): ``max(score - threshold, 0) / (1 - threshold) * 100``."""
    return max(score - threshold, 0.0) / (1.0 - threshold) * 100.0
