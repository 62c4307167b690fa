"""Token LM training for shallow fusion, on the transcripts of a Kaldi ``text`` file.

:func:`train_lm` writes to ``output_dir``:
  config.yaml   the resolved config (what :func:`funasr_lite.models.lm.load_lm` reads)
  model.pt      weights of the epoch with the best valid perplexity (the best train perplexity
                without a validation text), a plain state dict
  train.log     text log, appended on resume
  epoch_N.pt    full state at the end of epoch N (model, optimizer, scheduler, epoch, step, RNG,
                counters, history); the last ``train_conf.keep_checkpoints`` are kept

A rerun with the same config resumes after the last finished epoch. Batches whose loss or
gradient norm is not finite are skipped and counted. Perplexity = exp(nll per token), ``</s>``
counted as a token.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from funasr_lite.data.batch_sampler import split_into_batches
from funasr_lite.data.collate import pad_sequences
from funasr_lite.data.tokenizer import EOS, SOS, build_tokenizer, read_text_file, read_token_list
from funasr_lite.models.lm import build_lm
from funasr_lite.train.checkpoint import (
    capture_rng_state,
    epoch_checkpoint_name,
    list_epoch_checkpoints,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
    save_model_state,
    seed_everything,
)
from funasr_lite.train.optim import build_optimizer
from funasr_lite.train.scheduler import build_scheduler
from funasr_lite.train.train_log import log_to_file
from funasr_lite.utils.config import apply_overrides, config_differences, load_yaml, write_config

logger = logging.getLogger(__name__)

DEFAULT_TRAIN_CONF = {
    "max_epoch": 5,
    "batch_tokens": 2000,  # per batch, counted as sentences x (longest + 1), padding included
    "max_batch_size": 256,
    "grad_clip": 5.0,
    "log_interval": 50,
    "keep_checkpoints": 2,
}
# Config entries that must not change between a run and its resumption.
RESUME_MUST_MATCH = ("lm", "lm_conf", "vocab_size", "token_list", "optim", "optim_conf", "scheduler", "scheduler_conf", "seed")
LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"
TEXT_PAD = 0  # padding id of the LM input; lengths say where each sentence ends


def read_sentences(text_path: str, tokenizer) -> List[List[int]]:
    """Token ids of every transcript in a Kaldi ``text`` file; empty ones dropped, <unk> counted."""
    before = tokenizer.num_unknown
    sentences = [ids for ids in (tokenizer.encode(text) for text in read_text_file(text_path)) if ids]
    unknown = tokenizer.num_unknown - before
    num_tokens = sum(len(s) for s in sentences)
    logger.info("%s: %d sentences, %d tokens, %d mapped to <unk>", text_path, len(sentences), num_tokens, unknown)
    if not sentences:
        raise ValueError(f"{text_path}: no usable sentences")
    return sentences


def make_batches(lengths: Sequence[int], batch_tokens: int, max_batch_size: int) -> List[List[int]]:
    """Indices grouped by similar length: each batch holds at most ``batch_tokens`` padded tokens
    (sentences x (longest + 1), the +1 for ``</s>``) and ``max_batch_size`` sentences; a longer
    sentence goes alone."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return split_into_batches(order, [length + 1 for length in lengths], batch_tokens, max_batch_size)


def collate(sentences: Sequence[List[int]], indices: Sequence[int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """-> ys (B, U) right-padded with 0, lengths (B,)."""
    rows = [torch.tensor(sentences[i], dtype=torch.long) for i in indices]
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
    return pad_sequences(rows, TEXT_PAD), lengths


@torch.no_grad()
def evaluate(model: torch.nn.Module, sentences: Sequence[List[int]], batches: Sequence[List[int]]) -> Tuple[float, int]:
    """(summed nll, token count) over the batches, in eval mode."""
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for indices in batches:
        nll, counts = model(*collate(sentences, indices))
        total_nll += float(nll.sum())
        total_tokens += int(counts.sum())
    model.train(was_training)
    return total_nll, total_tokens


def perplexity(total_nll: float, total_tokens: int) -> float:
    return math.exp(total_nll / max(total_tokens, 1)) if math.isfinite(total_nll) else float("inf")


def train_one_epoch(model, optimizer, scheduler, sentences, batches, train_conf: Dict[str, Any], epoch: int, counters: Dict[str, int]) -> Tuple[float, int]:
    """One pass over ``batches`` (already in this epoch's order). Returns (nll sum, tokens) of
    the batches used; batches with a non-finite loss or gradient are skipped, counted in
    counters["skipped_batches"]."""
    model.train()
    total_nll, total_tokens = 0.0, 0
    start = time.time()
    for batch_number, indices in enumerate(batches, 1):
        ys, lengths = collate(sentences, indices)
        nll, counts = model(ys, lengths)
        num_tokens = int(counts.sum())
        loss = nll.sum() / num_tokens
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            counters["skipped_batches"] += 1
            logger.warning("epoch %d batch %d: non-finite loss %s, batch skipped (%d so far)",
                           epoch, batch_number, loss.item(), counters["skipped_batches"])
            continue
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_conf["grad_clip"])
        if not torch.isfinite(grad_norm):
            counters["skipped_batches"] += 1
            optimizer.zero_grad(set_to_none=True)
            logger.warning("epoch %d batch %d: non-finite gradient norm, batch skipped (%d so far)",
                           epoch, batch_number, counters["skipped_batches"])
            continue
        optimizer.step()
        scheduler.step()
        counters["step"] += 1
        total_nll += float(nll.detach().sum())
        total_tokens += num_tokens
        if batch_number % train_conf["log_interval"] == 0:
            logger.info("epoch %d batch %d/%d: train ppl %.2f, lr %.2e, %.0f tokens/s", epoch, batch_number,
                        len(batches), perplexity(total_nll, total_tokens), optimizer.param_groups[0]["lr"],
                        total_tokens / max(time.time() - start, 1e-9))
    return total_nll, total_tokens


def resolve_config(config_path: Optional[str], overrides: Sequence[str], token_list_path: str, text: str, valid_text: Optional[str]) -> Dict[str, Any]:
    """YAML + ``++key=value`` overrides + derived vocab_size and absolute paths."""
    config = load_yaml(config_path) if config_path else {}
    config = apply_overrides(config, overrides)
    config.setdefault("lm", "transformer")
    config.setdefault("seed", 0)
    config["train_conf"] = {**DEFAULT_TRAIN_CONF, **(config.get("train_conf") or {})}
    unknown = set(config["train_conf"]) - set(DEFAULT_TRAIN_CONF)
    if unknown:
        raise ValueError(f"unknown train_conf keys for LM training: {sorted(unknown)} (known: {sorted(DEFAULT_TRAIN_CONF)})")
    tokens = read_token_list(token_list_path)
    if tokens[1:3] != [SOS, EOS]:
        raise ValueError(f"{token_list_path}: expected {SOS} and {EOS} at ids 1 and 2, got {tokens[1:3]}")
    config["token_list"] = os.path.abspath(token_list_path)
    config["vocab_size"] = len(tokens)
    config["train_text"] = os.path.abspath(text)
    config["valid_text"] = os.path.abspath(valid_text) if valid_text else None
    return config


def train_lm(text: str, token_list: str, output_dir: str, config_path: Optional[str] = None,
             valid_text: Optional[str] = None, overrides: Sequence[str] = ()) -> Dict[str, Any]:
    """Train (or resume) an LM, logging INFO to <output_dir>/train.log (appended on resume).

    Args:
        text: Kaldi ``text`` file of the training transcripts.
        token_list: ``tokens.txt`` of the ASR model (``<s>``, ``</s>`` at ids 1, 2).
        output_dir: where the files listed in the module docstring go.
        config_path: LM YAML config (``lm``, ``lm_conf``, ``optim``, ``scheduler``, ``train_conf``,
            ``seed``); None: all defaults.
        valid_text: Kaldi ``text`` file for the validation perplexity that picks ``model.pt``.
        overrides: ``++dotted.key=value`` config overrides.

    Returns {"epochs": [per-epoch stats], "best_epoch": n, "skipped_batches": count}.
    """
    os.makedirs(output_dir, exist_ok=True)
    with log_to_file(os.path.join(output_dir, "train.log"), LOG_FORMAT):
        return _train(text, token_list, output_dir, config_path, valid_text, overrides)


def _train(text, token_list, output_dir, config_path, valid_text, overrides) -> Dict[str, Any]:
    config = resolve_config(config_path, overrides, token_list, text, valid_text)
    train_conf = config["train_conf"]
    tokenizer = build_tokenizer(token_list)
    train_sentences = read_sentences(text, tokenizer)
    valid_sentences = read_sentences(valid_text, tokenizer) if valid_text else None

    seed_everything(config["seed"])
    model = build_lm(config)
    optimizer = build_optimizer(model.parameters(), config.get("optim", "adam"), config.get("optim_conf"))
    scheduler = build_scheduler(optimizer, config.get("scheduler"), config.get("scheduler_conf"))
    logger.info("LM: %d parameters; config %s", sum(p.numel() for p in model.parameters()), config_path)

    state: Dict[str, Any] = {"epoch": 0, "counters": {"step": 0, "skipped_batches": 0}, "history": [], "best_epoch": None}
    checkpoints = list_epoch_checkpoints(output_dir)
    if checkpoints:
        epoch, path = checkpoints[-1]
        saved = load_checkpoint(path)
        changed = config_differences(saved["config"], config, RESUME_MUST_MATCH)
        if changed:
            raise ValueError(f"{path} was trained with a different {', '.join(changed)}; use a new --output_dir")
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        restore_rng_state(saved["rng"])
        state = {key: saved[key] for key in state}
        logger.info("resumed from %s (epoch %d, step %d)", path, state["epoch"], state["counters"]["step"])
    write_config(config, os.path.join(output_dir, "config.yaml"))

    train_batches = make_batches([len(s) for s in train_sentences], train_conf["batch_tokens"], train_conf["max_batch_size"])
    valid_batches = (make_batches([len(s) for s in valid_sentences], train_conf["batch_tokens"], train_conf["max_batch_size"])
                     if valid_sentences else None)
    for epoch in range(state["epoch"] + 1, train_conf["max_epoch"] + 1):
        start = time.time()
        epoch_order = copy.copy(train_batches)
        random.Random(config["seed"] * 100003 + epoch).shuffle(epoch_order)  # depends on (seed, epoch) only
        skipped_before = state["counters"]["skipped_batches"]
        train_nll, train_tokens = train_one_epoch(model, optimizer, scheduler, train_sentences, epoch_order, train_conf, epoch, state["counters"])
        stats = {"epoch": epoch, "train_ppl": perplexity(train_nll, train_tokens), "seconds": time.time() - start,
                 "skipped_batches": state["counters"]["skipped_batches"] - skipped_before}
        if valid_batches:
            stats["valid_ppl"] = perplexity(*evaluate(model, valid_sentences, valid_batches))
        state["epoch"] = epoch
        state["history"].append(stats)
        key = "valid_ppl" if valid_batches else "train_ppl"
        best = state["best_epoch"]
        if best is None or stats[key] < state["history"][best - 1][key]:
            state["best_epoch"] = epoch
            save_model_state(model.state_dict(), os.path.join(output_dir, "model.pt"))
        message = (f"epoch {epoch}: train ppl {stats['train_ppl']:.2f}"
                   + (f", valid ppl {stats['valid_ppl']:.2f}" if valid_batches else "")
                   + f", {stats['seconds']:.1f} s, {len(epoch_order)} batches, {stats['skipped_batches']} skipped"
                   + f" (best epoch {state['best_epoch']})")
        logger.info("%s", message)
        print(message, flush=True)
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "rng": capture_rng_state(), "config": config, **state},
                        os.path.join(output_dir, epoch_checkpoint_name(epoch)))
        for _, old in list_epoch_checkpoints(output_dir)[: -train_conf["keep_checkpoints"]]:
            os.unlink(old)
    if state["counters"]["skipped_batches"]:
        logger.warning("%d batches skipped for a non-finite loss or gradient", state["counters"]["skipped_batches"])
    logger.info("done: %d epochs, model.pt from epoch %s", state["epoch"], state["best_epoch"])
    return {"epochs": state["history"], "best_epoch": state["best_epoch"], "skipped_batches": state["counters"]["skipped_batches"]}


__all__ = [
    "DEFAULT_TRAIN_CONF",
    "RESUME_MUST_MATCH",
    "collate",
    "evaluate",
    "make_batches",
    "perplexity",
    "read_sentences",
    "resolve_config",
    "train_lm",
    "train_one_epoch",
]
