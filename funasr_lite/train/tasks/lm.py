"""The LM task: a token LM for shallow fusion, trained on the transcripts of a Kaldi ``text`` file.

:func:`train_lm` trains with the engine (:mod:`funasr_lite.train.engine`: outputs, resume,
retention, logs) into ``output_dir``; the files a decoder reads:
  config.yaml        the resolved config (what ``funasr_lite.models.lm.load_lm`` builds the LM from)
  model.avg{N}.pt    the final model (N = ``train_conf.avg_nbest_model``, default 1: the weights of
                     the epoch with the best valid perplexity); ``funasr_lite.inference.speech2text.
                     load_lm_dir`` finds it from the N in config.yaml

Batches: sentences sorted by length, at most ``train_conf.batch_tokens`` padded tokens (sentences
x (longest + 1), the +1 for ``</s>``) and ``max_batch_size`` sentences each, shuffled per epoch
(funasr_lite.train.text_batches). Loss: the summed nll of the batch over its token count.
Validation: perplexity = exp(nll per token) over the whole valid text, ``</s>`` counted as a token
(every rank scores it all: it is small).
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Dict, List, Optional, Sequence

import torch

from funasr_lite.data.tokenizer import EOS, SOS, build_tokenizer, read_text_file, read_token_list
from funasr_lite.models.lm import build_lm
from funasr_lite.train.distributed import DistributedContext
from funasr_lite.train.engine import ENGINE_TRAIN_CONF, final_model_name, run_task
from funasr_lite.train.text_batches import (LEGACY_TRAIN_CONF_KEYS, EpochBatchSampler, TextTask, length_sorted_batches,
                                            pad_token_rows, resolve_task_config)

logger = logging.getLogger(__name__)

LM_TRAIN_CONF: Dict[str, Any] = {
    **ENGINE_TRAIN_CONF,
    "max_epoch": 5,
    "log_interval": 50,
    "keep_nbest_models": 2,
    "avg_nbest_model": 1,
    "best_metric": "ppl",
    "batch_tokens": 2000,  # per batch, counted as sentences x (longest + 1), padding included
    "max_batch_size": 256,
}
# Every train_conf key an LM config may hold (the old names included).
LM_TRAIN_CONF_KEYS = frozenset(LM_TRAIN_CONF) | frozenset(LEGACY_TRAIN_CONF_KEYS)
# Config entries that must not change between a run and its resumption.
RESUME_MUST_MATCH = ("lm", "lm_conf", "vocab_size", "token_list", "optim", "optim_conf", "scheduler", "scheduler_conf", "seed")
TEXT_PAD = 0  # padding id of the LM input; lengths say where each sentence ends


def encode_transcripts(text_path: str, tokenizer) -> List[List[int]]:
    """Token ids of every transcript in a Kaldi ``text`` file; empty ones dropped, <unk> counted."""
    before = tokenizer.num_unknown
    sentences = [ids for ids in (tokenizer.encode(text) for text in read_text_file(text_path)) if ids]
    unknown = tokenizer.num_unknown - before
    num_tokens = sum(len(s) for s in sentences)
    logger.info("%s: %d sentences, %d tokens, %d mapped to <unk>", text_path, len(sentences), num_tokens, unknown)
    if not sentences:
        raise ValueError(f"{text_path}: no usable sentences")
    return sentences


def make_lm_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int) -> List[List[int]]:
    """Indices grouped by similar length: each batch holds at most ``batch_tokens`` padded tokens
    (sentences x (longest + 1), the +1 for ``</s>``) and ``max_batch_size`` sentences; a longer
    sentence goes alone."""
    return length_sorted_batches(lengths, batch_tokens, max_batch_size, extra_tokens=1)


def collate_sentences(sentences: Sequence[List[int]], indices: Sequence[int]) -> Dict[str, Any]:
    """-> {"ys": (B, U) right-padded with 0, "lengths": (B,), "indices": the sentence numbers}."""
    ys, lengths = pad_token_rows([sentences[i] for i in indices], TEXT_PAD)
    return {"ys": ys, "lengths": lengths, "indices": list(indices)}


def perplexity(total_nll: float, total_tokens: int) -> float:
    return math.exp(total_nll / max(total_tokens, 1)) if math.isfinite(total_nll) else float("inf")


def resolve_lm_config(config_path: Optional[str], overrides: Sequence[str], token_list_path: str, text: str,
                      valid_text: Optional[str]) -> Dict[str, Any]:
    """YAML + ``++key=value`` overrides + derived vocab_size and absolute paths."""
    config = resolve_task_config(config_path, overrides, LM_TRAIN_CONF, "LM")
    config.setdefault("lm", "transformer")
    tokens = read_token_list(token_list_path)
    if tokens[1:3] != [SOS, EOS]:
        raise ValueError(f"{token_list_path}: expected {SOS} and {EOS} at ids 1 and 2, got {tokens[1:3]}")
    config["token_list"] = os.path.abspath(token_list_path)
    config["vocab_size"] = len(tokens)
    config["train_text"] = os.path.abspath(text)
    config["valid_text"] = os.path.abspath(valid_text) if valid_text else None
    return config


class LmTask(TextTask):
    """Transcripts -> a token LM (module docstring)."""

    name = "LM"
    METRICS = {"ppl": True, "loss": True}
    ITEM_NAME = "sentences"
    UNIT = "tokens"
    RESUME_MUST_MATCH = RESUME_MUST_MATCH

    def __init__(self, config: Dict[str, Any]):
        self.config = config
        self.train_conf = config["train_conf"]
        self.device = torch.device("cpu")
        self.valid_sentences: Optional[List[List[int]]] = None
        self.valid_batches: List[List[int]] = []

    def check_train_conf(self, train_conf: Dict[str, Any]) -> None:
        if train_conf["avg_nbest_model"] < 1:
            raise ValueError("train_conf.avg_nbest_model must be >= 1 for an LM (its model.avg{N}.pt is the LM)")

    def setup(self, context: DistributedContext, exp_dir: str) -> None:
        self.device = context.device
        tokenizer = build_tokenizer(self.config["token_list"])
        self.sentences = encode_transcripts(self.config["train_text"], tokenizer)
        if self.config.get("valid_text"):
            self.valid_sentences = encode_transcripts(self.config["valid_text"], tokenizer)
        conf = self.train_conf
        self.batches = make_lm_batches([len(s) for s in self.sentences], conf["batch_tokens"], conf["max_batch_size"])
        if self.valid_sentences:
            self.valid_batches = make_lm_batches([len(s) for s in self.valid_sentences], conf["batch_tokens"],
                                                 conf["max_batch_size"])
        if context.world_size > 1:
            per_rank = -(-len(self.batches) // context.world_size)
            logger.info("%d processes: %d of the %d batches per epoch on each", context.world_size, per_rank,
                        len(self.batches))

    def build_model(self) -> torch.nn.Module:
        return build_lm(self.config)

    def train_batches(self, context: DistributedContext):
        sampler = EpochBatchSampler(lambda epoch, rng: (self.sentences, list(self.batches)), collate_sentences,
                                    int(self.config["seed"]), context.rank, context.world_size)
        return sampler, sampler

    def compute_loss(self, model, batch):
        nll, counts = model(batch["ys"].to(self.device), batch["lengths"].to(self.device))
        num_tokens = int(counts.sum())
        loss = nll.sum() / num_tokens
        return loss, {"loss": loss.detach()}, num_tokens

    def batch_ids(self, batch) -> List[str]:
        return [f"#{i + 1}" for i in batch["indices"]]

    def batch_units(self, batch) -> float:
        return float(batch["lengths"].sum() + len(batch["indices"]))  # tokens + </s>

    def derived_metrics(self, averages: Dict[str, float]) -> Dict[str, float]:
        if "loss" in averages:
            averages = {**averages, "ppl": math.exp(averages["loss"])}
        return averages

    def describe_data(self) -> str:
        return f"{len(self.sentences)} sentences ({sum(len(s) for s in self.sentences)} tokens)"

    def probe_batches(self, sampler) -> List[Dict[str, Any]]:
        """The batch with the most padded tokens."""
        batches = sampler.rank_batches()
        largest = max(batches, key=lambda b: len(b) * (1 + max(len(self.sentences[i]) for i in b)))
        return [collate_sentences(self.sentences, largest)]

    def describe_batch(self, batch) -> str:
        if batch is None:
            return "no batch"
        return f"batch of {batch['ys'].shape[0]} sentences x {batch['ys'].shape[1]} tokens"

    def validate(self, model, autocast) -> Dict[str, float]:
        total_nll, total_tokens = 0.0, 0
        for indices in self.valid_batches:
            batch = collate_sentences(self.valid_sentences, indices)
            with autocast():
                nll, counts = model(batch["ys"].to(self.device), batch["lengths"].to(self.device))
            total_nll += float(nll.sum())
            total_tokens += int(counts.sum())
        ppl = perplexity(total_nll, total_tokens)
        return {"loss": total_nll / max(total_tokens, 1), "ppl": ppl}


def train_lm(text: str, token_list: str, output_dir: str, config_path: Optional[str] = None,
             valid_text: Optional[str] = None, overrides: Sequence[str] = (), device: str = "auto") -> Dict[str, Any]:
    """Train (or resume) an LM into ``output_dir``; alone or under ``torchrun``.

    Args:
        text: Kaldi ``text`` file of the training transcripts.
        token_list: ``tokens.txt`` of the ASR model (``<s>``, ``</s>`` at ids 1, 2).
        output_dir: the experiment dir (module docstring; the engine's outputs).
        config_path: LM YAML config (``lm``, ``lm_conf``, ``optim``, ``scheduler``, ``train_conf``,
            ``seed``); None: all defaults.
        valid_text: Kaldi ``text`` file for the validation perplexity that ranks the epochs.
        overrides: ``++dotted.key=value`` config overrides.
        device: ``auto`` (cuda:<local rank> when a GPU is visible), ``cpu`` or ``cuda``.

    Returns {"epochs": epochs.jsonl records (rank 0), "best_epoch": n, "nonfinite_updates": count,
    "is_main": bool, "model": path of the final model}.
    """
    config = resolve_lm_config(config_path, overrides, token_list, text, valid_text)
    result = run_task(LmTask(config), config, output_dir, device=device)
    return {"epochs": result.epochs, "best_epoch": result.best_epoch, "nonfinite_updates": result.nonfinite_updates,
            "is_main": result.is_main,
            "model": os.path.join(output_dir, final_model_name(config["train_conf"]["avg_nbest_model"]))}


def epoch_summary(record: Dict[str, Any]) -> str:
    """``epoch N: train ppl X, valid ppl Y, S s, K skipped`` for one epochs.jsonl record."""
    valid = record.get("valid") or {}
    text = f"epoch {record['epoch']}: train ppl {(record.get('train') or {}).get('ppl', float('nan')):.2f}"
    if valid.get("ppl") is not None:
        text += f", valid ppl {valid['ppl']:.2f}"
    return text + f", {record.get('seconds', 0.0):.1f} s, {record.get('skipped_updates', 0)} skipped"


__all__ = [
    "LM_TRAIN_CONF",
    "LM_TRAIN_CONF_KEYS",
    "LmTask",
    "RESUME_MUST_MATCH",
    "collate_sentences",
    "encode_transcripts",
    "epoch_summary",
    "make_lm_batches",
    "perplexity",
    "resolve_lm_config",
    "train_lm",
]
