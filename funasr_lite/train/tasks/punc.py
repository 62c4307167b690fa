"""The punctuation task: a CT-Transformer on punctuated text lines (see funasr_lite.data.punc_text).

:func:`train_punc` trains with the engine (:mod:`funasr_lite.train.engine`: resume, retention, logs,
the final ``model.avg{N}.pt``) and makes ``output_dir`` a FunASR punctuation model dir (what
``Punctuator.from_model_dir`` and funasr's ``AutoModel`` read):

  config.yaml   FunASR layout (model: CTTransformer, model_conf, encoder, encoder_conf,
                tokenizer: CharTokenizer, tokenizer_conf) plus the training sections
                (optim, scheduler, train_conf, seed, token_min_count, train_text, valid_text)
  tokens.json   ``<blank> <s> </s>``, the training characters seen ``token_min_count`` times or
                more (most frequent first), ``<unk>``
  model.pt      the model dir's weights: a copy (hard link) of the engine's final
                ``model.avg{N}.pt`` (N = ``train_conf.avg_nbest_model``, default 1: the epoch with
                the best valid overall F1)

Examples: each punctuated line is cut into pieces of at most ``train_conf.max_len`` characters,
the cut points shifted by a (seed, epoch)-seeded offset per line from epoch 2 on, so the model
also sees sentences that start mid-window as the windowed inference gives them. Each batch holds
at most ``batch_tokens`` padded characters. The loss is FunASR's (class-weighted cross entropy per
valid token; ``<unk>`` (id 0, the ``ignore_id``) is never a target). Validation: loss per token and
per-class F1 of the argmax marks (``f1`` = overall, ``f1_<mark>``, ``f1_any_mark``).
"""

from __future__ import annotations

import collections
import logging
import os
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from funasr_lite.data.punc_text import NO_MARK, read_punctuated_lines
from funasr_lite.data.tokenizer import write_token_list
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.punc import DEFAULT_PUNC_LIST, build_ct_transformer
from funasr_lite.scoring.punctuation import punctuation_scores
from funasr_lite.train.checkpoint import link_or_copy
from funasr_lite.train.distributed import DistributedContext
from funasr_lite.train.engine import ENGINE_TRAIN_CONF, run_task
from funasr_lite.train.text_batches import (LEGACY_TRAIN_CONF_KEYS, EpochBatchSampler, TextTask, length_sorted_batches,
                                            pad_token_rows, resolve_task_config)

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<blank>", "<s>", "</s>")
UNK = "<unk>"
PUNC_TRAIN_CONF: Dict[str, Any] = {
    **ENGINE_TRAIN_CONF,
    "max_epoch": 3,
    "log_interval": 100,
    "keep_nbest_models": 2,
    "avg_nbest_model": 1,
    "best_metric": "f1",
    "max_len": 100,  # characters per training piece
    "batch_tokens": 4000,  # padded characters per batch
    "max_batch_size": 128,
}
PUNC_TRAIN_CONF_KEYS = frozenset(PUNC_TRAIN_CONF) | frozenset(LEGACY_TRAIN_CONF_KEYS)
RESUME_MUST_MATCH = ("model_conf", "encoder", "encoder_conf", "optim", "optim_conf", "scheduler",
                     "scheduler_conf", "seed", "token_min_count", "train_text")
PAD_ID = 0  # token padding (<blank>); label padding is model_conf.ignore_id
MODEL_DIR_WEIGHTS = "model.pt"  # FunASR's punctuation model dir layout


def build_token_list(lines: Sequence[Tuple[List[str], List[str]]], min_count: int) -> List[str]:
    """``<blank> <s> </s>``, characters seen ``min_count`` times or more (most frequent first,
    ties by character), ``<unk>``."""
    counts = collections.Counter(token for tokens, _ in lines for token in tokens)
    chars = sorted((c for c, n in counts.items() if n >= min_count and c not in SPECIAL_TOKENS and c != UNK),
                   key=lambda c: (-counts[c], c))
    return [*SPECIAL_TOKENS, *chars, UNK]


def resolve_punc_config(config_path: Optional[str], overrides: Sequence[str], train_text: str,
                        valid_text: Optional[str]) -> Dict[str, Any]:
    """YAML + ``++key=value`` overrides + defaults; FunASR's layout keys are filled in."""
    config = resolve_task_config(config_path, overrides, PUNC_TRAIN_CONF, "punctuation")
    config["model"] = config.get("model", "CTTransformer")
    if config["model"] != "CTTransformer":
        raise ValueError(f"{config_path}: model must be CTTransformer, got {config['model']!r}")
    config.setdefault("encoder", "SANMEncoder")
    config.setdefault("encoder_conf", {})
    model_conf = config.setdefault("model_conf", {})
    model_conf.setdefault("punc_list", list(DEFAULT_PUNC_LIST))
    model_conf.setdefault("ignore_id", 0)
    config.setdefault("tokenizer", "CharTokenizer")
    config.setdefault("tokenizer_conf", {"unk_symbol": UNK})
    config.setdefault("token_min_count", 1)
    punc_list = model_conf["punc_list"]
    if punc_list[model_conf["ignore_id"]] != UNK or NO_MARK not in punc_list:
        raise ValueError(f"model_conf: punc_list {punc_list} needs '_' and <unk> at ignore_id {model_conf['ignore_id']}")
    config["train_text"] = os.path.abspath(train_text)
    config["valid_text"] = os.path.abspath(valid_text) if valid_text else None
    return config


def make_pieces(lines, token_to_id: Dict[str, int], label_to_id: Dict[str, int], max_len: int,
                rng: Optional[random.Random] = None) -> List[Tuple[List[int], List[int]]]:
    """(token ids, label ids) pieces of at most ``max_len``; with ``rng``, each line's cuts are
    shifted by a random offset."""
    unk = token_to_id[UNK]
    pieces = []
    for tokens, labels in lines:
        ids = [token_to_id.get(t, unk) for t in tokens]
        label_ids = [label_to_id[label] for label in labels]
        start = rng.randrange(max_len) if rng is not None and len(ids) > max_len else 0
        bounds = sorted({0, *range(start, len(ids), max_len)}) + [len(ids)]
        pieces += [(ids[a:b], label_ids[a:b]) for a, b in zip(bounds, bounds[1:])]
    return pieces


def make_piece_batches(pieces, batch_tokens: int, max_batch_size: int) -> List[List[int]]:
    return length_sorted_batches([len(p[0]) for p in pieces], batch_tokens, max_batch_size)


def funasr_layout_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The config.yaml written: FunASR's model-dir keys first, then the training sections."""
    first = ("model", "model_conf", "encoder", "encoder_conf", "tokenizer", "tokenizer_conf")
    return {**{k: config[k] for k in first}, **{k: v for k, v in config.items() if k not in first}}


def weighted_token_nll(logits: torch.Tensor, labels: torch.Tensor, lengths: torch.Tensor, punc_weight: torch.Tensor,
                       ignore_id: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """FunASR's CT-Transformer loss from logits (B, U, C): class-weighted cross entropy summed over
    the valid tokens, and their count; the same operations as ``CTTransformer.loss``, so a DDP-wrapped
    model's forward can be used."""
    nll = F.cross_entropy(logits.reshape(-1, logits.size(-1)), labels.reshape(-1), weight=punc_weight,
                          reduction="none", ignore_index=ignore_id)
    valid = sequence_mask(lengths, logits.size(1)).reshape(-1)
    return nll.masked_fill(~valid, 0.0).sum(), valid.sum()


class PuncTask(TextTask):
    """Punctuated lines -> a CT-Transformer and a FunASR punctuation model dir (module docstring)."""

    name = "punctuation"
    METRICS = {"f1": False, "loss": True}
    ITEM_NAME = "pieces"
    UNIT = "chars"
    RESUME_MUST_MATCH = RESUME_MUST_MATCH

    def __init__(self, config: Dict[str, Any], config_source: Optional[str] = None):
        self.config = config
        self.config_source = config_source or "config"
        self.train_conf = config["train_conf"]
        self.punc_list = config["model_conf"]["punc_list"]
        self.ignore_id = config["model_conf"]["ignore_id"]
        self.label_to_id = {label: i for i, label in enumerate(self.punc_list)}
        self.device = torch.device("cpu")
        self.valid_pieces: List[Tuple[List[int], List[int]]] = []
        self.valid_batches: List[List[int]] = []

    def check_train_conf(self, train_conf: Dict[str, Any]) -> None:
        if train_conf["avg_nbest_model"] < 1:
            raise ValueError("train_conf.avg_nbest_model must be >= 1 for punctuation (its model.avg{N}.pt is "
                             "the model dir's model.pt)")

    def config_to_write(self, config: Dict[str, Any]) -> Dict[str, Any]:
        return funasr_layout_config(config)

    def setup(self, context: DistributedContext, exp_dir: str) -> None:
        self.device = context.device
        config = self.config
        self.train_lines = read_punctuated_lines(config["train_text"])
        valid_lines = read_punctuated_lines(config["valid_text"]) if config.get("valid_text") else None
        self.tokens = build_token_list(self.train_lines, int(config["token_min_count"]))
        self.token_to_id = {t: i for i, t in enumerate(self.tokens)}
        logger.info("%s: %d lines, %d characters; %d tokens (min count %d)", config["train_text"], len(self.train_lines),
                    sum(len(t) for t, _ in self.train_lines), len(self.tokens), config["token_min_count"])
        if context.is_main:
            write_token_list(os.path.join(exp_dir, "tokens.json"), self.tokens)
        if valid_lines:
            self.valid_pieces = make_pieces(valid_lines, self.token_to_id, self.label_to_id, self.train_conf["max_len"])
            self.valid_batches = make_piece_batches(self.valid_pieces, self.train_conf["batch_tokens"],
                                                    self.train_conf["max_batch_size"])

    def build_model(self) -> torch.nn.Module:
        self.model = build_ct_transformer(self.config, len(self.tokens), source=self.config_source)
        return self.model

    def _epoch_pieces(self, epoch: int, rng: random.Random):
        """The epoch's pieces (cut at shifted points from epoch 2 on) and their batches."""
        pieces = make_pieces(self.train_lines, self.token_to_id, self.label_to_id, self.train_conf["max_len"],
                             rng if epoch > 1 else None)
        return pieces, make_piece_batches(pieces, self.train_conf["batch_tokens"], self.train_conf["max_batch_size"])

    def collate(self, pieces, indices) -> Dict[str, Any]:
        """-> token ids (B, U) padded with 0, lengths (B,), labels (B, U) padded with ignore_id."""
        ids, lengths = pad_token_rows([pieces[i][0] for i in indices], PAD_ID)
        labels, _ = pad_token_rows([pieces[i][1] for i in indices], self.ignore_id)
        return {"ids": ids, "lengths": lengths, "labels": labels, "indices": list(indices)}

    def train_batches(self, context: DistributedContext):
        sampler = EpochBatchSampler(self._epoch_pieces, self.collate, int(self.config["seed"]), context.rank,
                                    context.world_size)
        return sampler, sampler

    def _loss(self, model, batch):
        ids, lengths, labels = (batch[key].to(self.device) for key in ("ids", "lengths", "labels"))
        logits = model(ids, lengths)
        loss_sum, tokens = weighted_token_nll(logits, labels, lengths, self.model.punc_weight, self.ignore_id)
        return logits, loss_sum, tokens

    def compute_loss(self, model, batch):
        _, loss_sum, tokens = self._loss(model, batch)
        loss = loss_sum / tokens.clamp(min=1)
        return loss, {"loss": loss.detach()}, int(tokens)

    def batch_ids(self, batch) -> List[str]:
        return [f"#{i + 1}" for i in batch["indices"]]

    def batch_units(self, batch) -> float:
        return float(batch["lengths"].sum())

    def describe_data(self) -> str:
        return f"{len(self.train_lines)} lines ({sum(len(t) for t, _ in self.train_lines)} characters)"

    def probe_batches(self, sampler) -> List[Dict[str, Any]]:
        """The batch with the most padded characters."""
        pieces, batches = sampler.items(), sampler.rank_batches()
        largest = max(batches, key=lambda b: len(b) * max(len(pieces[i][0]) for i in b))
        return [self.collate(pieces, largest)]

    def describe_batch(self, batch) -> str:
        if batch is None:
            return "no batch"
        return f"batch of {batch['ids'].shape[0]} pieces x {batch['ids'].shape[1]} characters"

    def validate(self, model, autocast) -> Dict[str, float]:
        """Loss per token and per-class F1 of the argmax marks (pieces labelled whole)."""
        total, count, pairs = 0.0, 0, []
        for indices in self.valid_batches:
            batch = self.collate(self.valid_pieces, indices)
            with autocast():
                logits, loss_sum, tokens = self._loss(model, batch)
            total, count = total + float(loss_sum), count + int(tokens)
            predicted = logits.argmax(-1).cpu()
            for b, length in enumerate(batch["lengths"].tolist()):
                pairs.append(([self.punc_list[i] for i in batch["labels"][b, :length].tolist()],
                              [self.punc_list[i] for i in predicted[b, :length].tolist()]))
        scores = punctuation_scores(pairs)
        metrics = {"loss": total / max(count, 1), "f1": scores["overall"]["f1"]}
        metrics.update({f"f1_{name}": s["f1"] for name, s in scores.items() if name != "overall"})
        return metrics

    def export(self, exp_dir: str, final_model: Optional[str]) -> None:
        """model.pt of the FunASR model dir = the final model."""
        if final_model is not None:
            link_or_copy(final_model, os.path.join(exp_dir, MODEL_DIR_WEIGHTS))
            logger.info("punctuation model dir %s: %s is %s", exp_dir, MODEL_DIR_WEIGHTS, os.path.basename(final_model))


def train_punc(train_text: str, output_dir: str, config_path: Optional[str] = None, valid_text: Optional[str] = None,
               overrides: Sequence[str] = (), device: str = "auto") -> Dict[str, Any]:
    """Train (or resume) a CT-Transformer on punctuated lines into a FunASR punctuation model dir
    (module docstring). Returns {"epochs": epochs.jsonl records, "best_epoch": n,
    "nonfinite_updates": count}."""
    config = resolve_punc_config(config_path, overrides, train_text, valid_text)
    result = run_task(PuncTask(config, config_path), config, output_dir, device=device)
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "nonfinite_updates": result.nonfinite_updates}


__all__ = [
    "PUNC_TRAIN_CONF",
    "PUNC_TRAIN_CONF_KEYS",
    "PuncTask",
    "RESUME_MUST_MATCH",
    "build_token_list",
    "funasr_layout_config",
    "make_pieces",
    "resolve_punc_config",
    "train_punc",
    "weighted_token_nll",
]
