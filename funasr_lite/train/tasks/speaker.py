"""The speaker task: FunASR's x-vector trained on a data dir's speakers with AAM-softmax.

:func:`train_speaker` trains with the engine (:mod:`funasr_lite.train.engine`: resume, retention,
logs, the final ``model.avg{N}.pt``) and makes ``output_dir`` a speaker model dir that
``funasr_lite.SpeakerVerifier`` loads (the FunASR 1.x layout, docs/speaker.md):

  config.yaml    FunASR's sv.yaml keys first (model: espnet, encoder: resnet34 + encoder_conf,
                 pooling_type + pooling_type_conf, decoder: dense + decoder_conf, frontend:
                 wav_frontend + frontend_conf, input_size), then the training sections (loss,
                 loss_conf, optim, scheduler, train_conf, seed, train_data, valid_data), and
                 ``token_list`` last: the training speakers (C-locale order), one per row of
                 ``decoder.output_dense``
  model.pt       the model dir's weights: a hard link of the engine's final model.avg{N}.pt
  model.init.pt  the weights the training started from (built from ``seed``, before any
                 ``init_param``): the untrained baseline (``SpeakerVerifier(dir, checkpoint=
                 "model.init.pt")``)

Features: the stored raw fbank of ``feats.scp`` (recipe stage 1), no CMVN (the released model has
none) and no LFR; the data dir's ``fbank.json`` must match ``frontend_conf``.

Examples: each epoch every training utterance gives one crop of ``train_conf.crop_frames`` frames
from a random start (the whole utterance when it is shorter), in a random order; batches hold
``train_conf.batch_size`` crops (a single crop left over joins the batch before it: BatchNorm
needs two). The order and the crops are drawn from ``random.Random(seed * 100003 + epoch)``
(:func:`funasr_lite.train.text_batches.epoch_rng`), never from the global RNG, so a resumed run
sees the same batches.

Loss: AAM-softmax (``loss_conf``: ``scale``, ``margin``; FunASR's released model: 8 and 0.25) on
the cosines between the last hidden layer and each speaker's row of ``output_dense``
(:class:`funasr_lite.models.losses.AAMSoftmaxLoss`); ``acc`` is the argmax accuracy of the cosines.

Validation (``valid_data``, optional; the recipe holds a few utterances of every training speaker
out of training): whole utterances in padded batches (each embedded exactly as alone), then
  eer       EER of every pair of validation utterances (target: same speaker), cosine of the
            ``resnet1_dense`` embeddings (the one SpeakerVerifier returns): the default
            ``best_metric``; keep the set small (pairs grow with its square)
  loss, acc the AAM-softmax loss and accuracy over the validation utterances of training speakers.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import kaldiio
import numpy as np
import torch

from funasr_lite.data.datadir import read_kv, utt2spk_to_spk2utt
from funasr_lite.frontend.wav_frontend import check_feature_options, fbank_options
from funasr_lite.models.losses import AAMSoftmaxLoss
from funasr_lite.models.speaker import build_speaker_model
from funasr_lite.models.speaker.model import DEFAULT_EMBEDDING_NODE, SV_CONFIG_KEYS
from funasr_lite.scoring.speaker import compute_eer
from funasr_lite.train.checkpoint import link_or_copy, save_checkpoint
from funasr_lite.train.distributed import DistributedContext
from funasr_lite.train.engine import ENGINE_TRAIN_CONF, final_model_name, run_task
from funasr_lite.train.task import Task
from funasr_lite.train.text_batches import EpochBatchSampler, resolve_task_config
from funasr_lite.utils.config import resolve_frontend_conf
from funasr_lite.utils.kaldi_kv import c_locale_key

logger = logging.getLogger(__name__)

SPEAKER_TRAIN_CONF: Dict[str, Any] = {
    **ENGINE_TRAIN_CONF,
    "max_epoch": 10,
    "log_interval": 20,
    "keep_nbest_models": 2,
    "avg_nbest_model": 1,
    "best_metric": "eer",
    "crop_frames": 200,  # frames per training crop (2 s at a 10 ms shift)
    "batch_size": 64,  # crops per batch
    "valid_batch_frames": 20000,  # padded frames per validation batch
}
LOSSES = {"aam_softmax": AAMSoftmaxLoss}
DEFAULT_LOSS_CONF = {"scale": 8.0, "margin": 0.25}  # FunASR's released x-vector (docs/speaker.md)
RESUME_MUST_MATCH = ("encoder", "encoder_conf", "pooling_type", "pooling_type_conf", "decoder", "decoder_conf",
                     "frontend_conf", "token_list", "loss", "loss_conf", "optim", "optim_conf", "scheduler",
                     "scheduler_conf", "seed", "train_data")
MODEL_DIR_WEIGHTS = "model.pt"
INITIAL_WEIGHTS = "model.init.pt"


def read_speaker_data(data_dir: str) -> Tuple[List[str], Dict[str, str], Dict[str, str], Dict[str, int]]:
    """-> (utterances in C-locale order, utt2spk, feats.scp entries, frames per utterance) of a data
    dir's utterances that have features (utt2num_frames, else each matrix's shape)."""
    feats = read_kv(os.path.join(data_dir, "feats.scp"))
    utt2spk = read_kv(os.path.join(data_dir, "utt2spk"))
    missing = [utt for utt in feats if utt not in utt2spk]
    if missing:
        raise ValueError(f"{data_dir}: {len(missing)} utterance(s) of feats.scp are not in utt2spk, e.g. {missing[0]}")
    frames_path = os.path.join(data_dir, "utt2num_frames")
    if os.path.isfile(frames_path):
        frames = {utt: int(value) for utt, value in read_kv(frames_path).items() if utt in feats}
    else:
        frames = {}
    for utt in feats:
        if utt not in frames:
            frames[utt] = int(kaldiio.load_mat(feats[utt]).shape[0])
    utts = sorted((utt for utt in feats if frames[utt] > 0), key=c_locale_key)
    if not utts:
        raise ValueError(f"{data_dir}: no utterances with features")
    return utts, {u: utt2spk[u] for u in utts}, {u: feats[u] for u in utts}, {u: frames[u] for u in utts}


def resolve_speaker_config(config_path: Optional[str], overrides: Sequence[str], train_data: str,
                           valid_data: Optional[str] = None) -> Dict[str, Any]:
    """YAML (sv.yaml keys + training sections) + ``++key=value`` overrides + defaults; the training
    speakers of ``train_data`` become ``token_list``; paths made absolute."""
    config = resolve_task_config(config_path, overrides, SPEAKER_TRAIN_CONF, "speaker")
    source = config_path or "speaker config"
    for key, default in (("model", "espnet"), ("encoder", "resnet34"), ("pooling_type", "statistic"),
                         ("decoder", "dense"), ("frontend", "wav_frontend"), ("loss", "aam_softmax")):
        config.setdefault(key, default)
    for key in ("encoder_conf", "pooling_type_conf", "decoder_conf", "model_conf"):
        config[key] = dict(config.get(key) or {})
    if config["loss"] not in LOSSES:
        raise ValueError(f"{source}: loss {config['loss']!r}: valid: {', '.join(LOSSES)}")
    loss_conf = {**DEFAULT_LOSS_CONF, **(config.get("loss_conf") or {})}
    unknown = set(loss_conf) - set(DEFAULT_LOSS_CONF)
    if unknown:
        raise ValueError(f"{source}: loss_conf: unknown keys {sorted(unknown)} (known: {sorted(DEFAULT_LOSS_CONF)})")
    config["loss_conf"] = loss_conf
    for key in ("specaug", "normalize"):
        if config.get(key) not in (None, "null"):
            raise ValueError(f"{source}: {key}={config[key]!r}: the speaker task trains without it (set null)")
    frontend_conf = resolve_frontend_conf(config.get("frontend_conf"), source)
    if frontend_conf["lfr_m"] != 1 or frontend_conf["lfr_n"] != 1:
        raise ValueError(f"{source}: frontend_conf lfr_m/lfr_n must be 1: the speaker model takes the raw fbank")
    config["frontend_conf"] = frontend_conf
    config["input_size"] = int(frontend_conf["n_mels"])
    conf = config["train_conf"]
    for key in ("crop_frames", "batch_size", "valid_batch_frames"):
        if not isinstance(conf[key], int) or conf[key] < (2 if key == "batch_size" else 1):
            raise ValueError(f"{source}: train_conf.{key} must be an int >= {2 if key == 'batch_size' else 1}, "
                             f"got {conf[key]!r}")
    config["train_data"] = os.path.abspath(train_data)
    config["valid_data"] = os.path.abspath(valid_data) if valid_data else None
    speakers = sorted(set(read_kv(os.path.join(train_data, "utt2spk")).values()), key=c_locale_key)
    if len(speakers) < 2:
        raise ValueError(f"{train_data}: {len(speakers)} speaker(s); training needs at least 2")
    config["token_list"] = speakers
    config["vocab_size"] = len(speakers)
    return config


def model_dir_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The config.yaml written: sv.yaml's model keys first, the training sections, token_list last."""
    first = {key: config[key] for key in SV_CONFIG_KEYS if key in config}
    rest = {key: value for key, value in config.items() if key not in first and key not in ("token_list", "vocab_size")}
    return {**first, **rest, "vocab_size": config["vocab_size"], "token_list": config["token_list"]}


def pad_crops(crops: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
    """(T_i, F) tensors -> (B, T_max, F) zero-padded, (B,) lengths."""
    lengths = torch.tensor([crop.shape[0] for crop in crops], dtype=torch.long)
    return torch.nn.utils.rnn.pad_sequence(list(crops), batch_first=True), lengths


def crop_batches(count: int, batch_size: int) -> List[List[int]]:
    """Consecutive index batches of ``batch_size``; a single leftover index joins the batch before."""
    batches = [list(range(start, min(start + batch_size, count))) for start in range(0, count, batch_size)]
    if len(batches) > 1 and len(batches[-1]) == 1:
        leftover = batches.pop()
        batches[-1] = batches[-1] + leftover
    return batches


class SpeakerTask(Task):
    """A data dir's speakers -> an x-vector speaker model dir (module docstring)."""

    name = "speaker"
    METRICS = {"eer": True, "loss": True, "acc": False}
    ITEM_NAME = "utterances"
    UNIT = "frames"
    RESUME_MUST_MATCH = RESUME_MUST_MATCH

    def __init__(self, config: Dict[str, Any], config_source: Optional[str] = None):
        self.config = config
        self.config_source = config_source or "config"
        self.train_conf = config["train_conf"]
        self.device = torch.device("cpu")
        self.exp_dir: Optional[str] = None
        self.is_main = True
        self.criterion = LOSSES[config["loss"]](**config["loss_conf"])
        self.speaker_index = {speaker: i for i, speaker in enumerate(config["token_list"])}
        self.valid_utts: List[str] = []
        self.valid_batches: List[List[int]] = []

    def check_train_conf(self, train_conf: Dict[str, Any]) -> None:
        if train_conf["avg_nbest_model"] < 1:
            raise ValueError("train_conf.avg_nbest_model must be >= 1 for a speaker model (its model.avg{N}.pt is "
                             "the model dir's model.pt)")

    def config_to_write(self, config: Dict[str, Any]) -> Dict[str, Any]:
        return model_dir_config(config)

    # ---------------------------------------------------------------- data

    def _check_features(self, data_dir: str, feats: Dict[str, str]) -> None:
        expected = fbank_options(self.config["frontend_conf"])
        check_feature_options(data_dir, expected, self.config_source)
        first = next(iter(feats.values()))
        dim = int(kaldiio.load_mat(first).shape[1])
        if dim != expected["n_mels"]:
            raise ValueError(f"{data_dir}: features have {dim} dims, frontend_conf.n_mels is {expected['n_mels']}")

    def setup(self, context: DistributedContext, exp_dir: str) -> None:
        self.device, self.exp_dir, self.is_main = context.device, exp_dir, context.is_main
        train_data = self.config["train_data"]
        self.utts, utt2spk, self.feats, frames = read_speaker_data(train_data)
        self._check_features(train_data, self.feats)
        unknown = sorted({spk for spk in utt2spk.values() if spk not in self.speaker_index})
        if unknown:
            raise ValueError(f"{train_data}: speakers not in token_list: {', '.join(unknown[:5])}")
        self.labels = [self.speaker_index[utt2spk[utt]] for utt in self.utts]
        self.frames = [frames[utt] for utt in self.utts]
        logger.info("%s: %d utterances of %d speakers, %.1f h", train_data, len(self.utts),
                    len(set(self.labels)), sum(self.frames) * self.config["frontend_conf"]["frame_shift"] / 3.6e6)
        valid_data = self.config.get("valid_data")
        if valid_data:
            utts, utt2spk, feats, frames = read_speaker_data(valid_data)
            self._check_features(valid_data, feats)
            if len(set(utt2spk.values())) < 2:
                raise ValueError(f"{valid_data}: validation needs utterances of at least 2 speakers")
            self.valid_utts = utts
            self.valid_speakers = [utt2spk[utt] for utt in utts]
            self.valid_features = [torch.from_numpy(np.array(kaldiio.load_mat(feats[utt]), dtype=np.float32))
                                   for utt in utts]
            order = sorted(range(len(utts)), key=lambda i: (-frames[utts[i]], i))
            batch, longest = [], 0
            for index in order:
                longest = max(longest, frames[utts[index]])
                if batch and longest * (len(batch) + 1) > self.train_conf["valid_batch_frames"]:
                    self.valid_batches.append(batch)
                    batch, longest = [], frames[utts[index]]
                batch.append(index)
            self.valid_batches.append(batch)
            seen = sum(1 for spk in self.valid_speakers if spk in self.speaker_index)
            logger.info("%s: %d validation utterances of %d speakers (%d of training speakers)", valid_data,
                        len(utts), len(set(self.valid_speakers)), seen)

    def build_model(self) -> torch.nn.Module:
        self.model = build_speaker_model(self.config)
        if self.is_main and self.exp_dir and not os.path.exists(os.path.join(self.exp_dir, INITIAL_WEIGHTS)):
            save_checkpoint(self.model.state_dict(), os.path.join(self.exp_dir, INITIAL_WEIGHTS))
        return self.model

    # ---------------------------------------------------------------- batches

    def _epoch_crops(self, epoch: int, rng) -> Tuple[List[Tuple[int, int, int]], List[List[int]]]:
        """The epoch's crops (utterance index, start, frames) in a random order, and their batches."""
        order = list(range(len(self.utts)))
        rng.shuffle(order)
        size = self.train_conf["crop_frames"]
        crops = []
        for index in order:
            frames = self.frames[index]
            start = rng.randrange(frames - size + 1) if frames > size else 0
            crops.append((index, start, min(frames, size)))
        return crops, crop_batches(len(crops), self.train_conf["batch_size"])

    def collate(self, crops: Sequence[Tuple[int, int, int]], indices: Sequence[int]) -> Dict[str, Any]:
        """-> feats (B, T, F) zero-padded, lengths (B,), labels (B,), utts."""
        chosen = [crops[i] for i in indices]
        pieces = [torch.from_numpy(np.array(kaldiio.load_mat(self.feats[self.utts[u]])[s:s + n], dtype=np.float32))
                  for u, s, n in chosen]
        feats, lengths = pad_crops(pieces)
        return {"feats": feats, "lengths": lengths, "labels": torch.tensor([self.labels[u] for u, _, _ in chosen]),
                "utts": [self.utts[u] for u, _, _ in chosen]}

    def train_batches(self, context: DistributedContext):
        sampler = EpochBatchSampler(self._epoch_crops, self.collate, int(self.config["seed"]), context.rank,
                                    context.world_size)
        return sampler, sampler

    def compute_loss(self, model, batch):
        cosine, _ = model(batch["feats"].to(self.device), batch["lengths"].to(self.device), cosine=True)
        loss, accuracy = self.criterion(cosine, batch["labels"].to(self.device))
        return loss, {"loss": loss.detach(), "acc": accuracy}, len(batch["utts"])

    def batch_ids(self, batch) -> List[str]:
        return list(batch["utts"])

    def batch_units(self, batch) -> float:
        return float(batch["lengths"].sum())

    def describe_data(self) -> str:
        return f"{len(self.utts)} utterances of {len(set(self.labels))} speakers"

    def probe_batches(self, sampler) -> List[Dict[str, Any]]:
        """The batch with the most frames."""
        crops, batches = sampler.items(), sampler.rank_batches()
        largest = max(batches, key=lambda b: len(b) * max(crops[i][2] for i in b))
        return [self.collate(crops, largest)]

    def describe_batch(self, batch) -> str:
        if batch is None:
            return "no batch"
        return f"batch of {batch['feats'].shape[0]} crops x {batch['feats'].shape[1]} frames"

    def batch_size_advice(self) -> str:
        return f"lower train_conf.batch_size (now {self.train_conf['batch_size']}) or train_conf.crop_frames"

    # ---------------------------------------------------------------- validation

    def has_validation(self) -> bool:
        return bool(self.valid_batches)

    def validate(self, model, autocast) -> Dict[str, float]:
        """EER over every pair of validation utterances; loss/acc over those of training speakers."""
        embeddings: List[Optional[np.ndarray]] = [None] * len(self.valid_utts)
        loss_sum, correct, seen = 0.0, 0.0, 0
        for indices in self.valid_batches:
            feats, lengths = pad_crops([self.valid_features[i] for i in indices])
            with autocast():
                cosine, nodes = model(feats.to(self.device), lengths.to(self.device), cosine=True)
            for row, vector in zip(indices, nodes[DEFAULT_EMBEDDING_NODE].float().cpu().numpy()):
                embeddings[row] = vector
            known = [k for k, i in enumerate(indices) if self.valid_speakers[i] in self.speaker_index]
            if known:
                labels = torch.tensor([self.speaker_index[self.valid_speakers[indices[k]]] for k in known],
                                      device=cosine.device)
                loss, accuracy = self.criterion(cosine[known], labels)
                loss_sum += float(loss) * len(known)
                correct += float(accuracy) * len(known)
                seen += len(known)
        matrix = np.stack(embeddings).astype(np.float64)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-8)
        first, second = np.triu_indices(len(matrix), k=1)
        scores = np.einsum("ij,ij->i", matrix[first], matrix[second])
        speakers = np.array(self.valid_speakers)
        labels = (speakers[first] == speakers[second]).astype(int)
        metrics = {"eer": compute_eer(scores, labels)[0]} if 0 < labels.sum() < len(labels) else {}
        if seen:
            metrics.update({"loss": loss_sum / seen, "acc": correct / seen})
        return metrics

    # ---------------------------------------------------------------- outputs

    def export(self, exp_dir: str, final_model: Optional[str]) -> None:
        """model.pt of the speaker model dir = the final model."""
        if final_model is not None:
            link_or_copy(final_model, os.path.join(exp_dir, MODEL_DIR_WEIGHTS))
            logger.info("speaker model dir %s: %s is %s", exp_dir, MODEL_DIR_WEIGHTS, os.path.basename(final_model))


def train_speaker(train_data: str, output_dir: str, config_path: Optional[str] = None,
                  valid_data: Optional[str] = None, overrides: Sequence[str] = (),
                  device: str = "auto") -> Dict[str, Any]:
    """Train (or resume) an x-vector on the speakers of ``train_data`` into a speaker model dir
    (module docstring); alone or under ``torchrun``. Returns {"epochs": epochs.jsonl records,
    "best_epoch": n, "nonfinite_updates": count, "model": path of the final model}."""
    config = resolve_speaker_config(config_path, overrides, train_data, valid_data)
    result = run_task(SpeakerTask(copy.deepcopy(config), config_path), config, output_dir, device=device)
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "nonfinite_updates": result.nonfinite_updates,
            "model": os.path.join(output_dir, final_model_name(config["train_conf"]["avg_nbest_model"]))}


__all__ = [
    "DEFAULT_LOSS_CONF",
    "INITIAL_WEIGHTS",
    "RESUME_MUST_MATCH",
    "SPEAKER_TRAIN_CONF",
    "SpeakerTask",
    "crop_batches",
    "model_dir_config",
    "read_speaker_data",
    "resolve_speaker_config",
    "train_speaker",
]
