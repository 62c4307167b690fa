"""CT-Transformer punctuation training on punctuated text lines (see funasr_lite.data.punc_text).

:func:`train_punc` writes a FunASR punctuation model dir into ``output_dir`` (what
``Punctuator.from_model_dir`` and funasr's ``AutoModel`` read) plus the training files:

  config.yaml   FunASR layout (model: CTTransformer, model_conf, encoder, encoder_conf,
                tokenizer: CharTokenizer, tokenizer_conf) plus the training sections
                (optim, scheduler, train_conf, seed, token_min_count, train_text, valid_text)
  tokens.json   ``<blank> <s> </s>``, the training characters seen ``token_min_count`` times or
                more (most frequent first), ``<unk>``
  model.pt      weights of the epoch with the best valid overall F1 (plain state dict)
  train.log     text log (appended on resume);  epochs.jsonl  one record per epoch (train loss,
                valid loss, valid per-class F1)
  epoch_N.pt    full state after epoch N (model, optimizer, scheduler, RNG, history); the last
                ``train_conf.keep_checkpoints`` are kept; a rerun with the same config resumes

Examples: each punctuated line is cut into pieces of at most ``train_conf.max_len`` characters,
the cut points shifted by a (seed, epoch)-seeded offset per line from epoch 2 on, so the model
also sees sentences that start mid-window as the windowed inference gives them. Each batch holds
at most ``batch_tokens`` padded characters. The loss is FunASR's (class-weighted cross entropy per
valid token; ``<unk>`` (id 0, the ``ignore_id``) is never a target). One process, CPU or GPU.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import random
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from funasr_lite.data.batch_sampler import split_into_batches
from funasr_lite.data.collate import pad_sequences
from funasr_lite.data.punc_text import NO_MARK, read_punctuated_lines
from funasr_lite.data.tokenizer import write_token_list
from funasr_lite.scoring.punctuation import punctuation_scores
from funasr_lite.models.punc import DEFAULT_PUNC_LIST, build_ct_transformer
from funasr_lite.train.checkpoint import (
    capture_rng_state,
    epoch_checkpoint_name,
    list_epoch_checkpoints,
    restore_rng_state,
    resume_from_latest_epoch,
    save_checkpoint,
    save_model_state,
    seed_everything,
)
from funasr_lite.train.optim import build_optimizer
from funasr_lite.train.scheduler import build_scheduler
from funasr_lite.train.train_log import LOG_FORMAT, append_epoch_record, experiment_logging
from funasr_lite.utils.config import apply_overrides, load_yaml, write_config

logger = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<blank>", "<s>", "</s>")
UNK = "<unk>"
DEFAULT_TRAIN_CONF = {
    "max_epoch": 3,
    "max_len": 100,  # characters per training piece
    "batch_tokens": 4000,  # padded characters per batch
    "max_batch_size": 128,
    "grad_clip": 5.0,
    "log_interval": 100,
    "keep_checkpoints": 2,
}
RESUME_MUST_MATCH = ("model_conf", "encoder", "encoder_conf", "optim", "optim_conf", "scheduler",
                     "scheduler_conf", "seed", "token_min_count", "train_text")
PAD_ID = 0  # token padding (<blank>); label padding is model_conf.ignore_id


def build_token_list(lines: Sequence[Tuple[List[str], List[str]]], min_count: int) -> List[str]:
    """``<blank> <s> </s>``, characters seen ``min_count`` times or more (most frequent first,
    ties by character), ``<unk>``."""
    counts = collections.Counter(token for tokens, _ in lines for token in tokens)
    chars = sorted((c for c, n in counts.items() if n >= min_count and c not in SPECIAL_TOKENS and c != UNK),
                   key=lambda c: (-counts[c], c))
    return [*SPECIAL_TOKENS, *chars, UNK]


def resolve_config(config_path: Optional[str], overrides: Sequence[str], train_text: str,
                   valid_text: Optional[str]) -> Dict[str, Any]:
    """YAML + ``++key=value`` overrides + defaults; FunASR's layout keys are filled in."""
    config = load_yaml(config_path) if config_path else {}
    config = apply_overrides(config, overrides)
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
    config.setdefault("seed", 0)
    config.setdefault("optim", "adam")
    config["train_conf"] = {**DEFAULT_TRAIN_CONF, **(config.get("train_conf") or {})}
    unknown = set(config["train_conf"]) - set(DEFAULT_TRAIN_CONF)
    if unknown:
        raise ValueError(f"unknown train_conf keys for punctuation training: {sorted(unknown)} "
                         f"(known: {sorted(DEFAULT_TRAIN_CONF)})")
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


def make_batches(pieces, batch_tokens: int, max_batch_size: int) -> List[List[int]]:
    order = sorted(range(len(pieces)), key=lambda i: (len(pieces[i][0]), i))
    return split_into_batches(order, [len(p[0]) for p in pieces], batch_tokens, max_batch_size)


def collate(pieces, indices, ignore_id: int, device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> token ids (B, U) padded with 0, lengths (B,), labels (B, U) padded with ignore_id."""
    ids = pad_sequences([torch.tensor(pieces[i][0], dtype=torch.long) for i in indices], PAD_ID)
    labels = pad_sequences([torch.tensor(pieces[i][1], dtype=torch.long) for i in indices], ignore_id)
    lengths = torch.tensor([len(pieces[i][0]) for i in indices], dtype=torch.long)
    return ids.to(device), lengths.to(device), labels.to(device)


@torch.no_grad()
def evaluate(model, pieces, batches, punc_list: Sequence[str], ignore_id: int, device) -> Dict[str, Any]:
    """Valid loss per token and per-class scores of the argmax labels (pieces labelled whole)."""
    was_training = model.training
    model.eval()
    total, count, pairs = 0.0, 0, []
    for indices in batches:
        ids, lengths, labels = collate(pieces, indices, ignore_id, device)
        logits = model(ids, lengths)
        loss_sum, tokens = model.loss(ids, lengths, labels)
        total, count = total + float(loss_sum), count + int(tokens)
        predicted = logits.argmax(-1).cpu()
        for b, length in enumerate(lengths.tolist()):
            pairs.append(([punc_list[i] for i in labels[b, :length].tolist()],
                          [punc_list[i] for i in predicted[b, :length].tolist()]))
    model.train(was_training)
    return {"loss": total / max(count, 1), "scores": punctuation_scores(pairs)}


def funasr_layout_config(config: Dict[str, Any]) -> Dict[str, Any]:
    """The config.yaml written: FunASR's model-dir keys first, then the training sections."""
    first = ("model", "model_conf", "encoder", "encoder_conf", "tokenizer", "tokenizer_conf")
    return {**{k: config[k] for k in first}, **{k: v for k, v in config.items() if k not in first}}


def train_punc(train_text: str, output_dir: str, config_path: Optional[str] = None, valid_text: Optional[str] = None,
               overrides: Sequence[str] = (), device: str = "auto") -> Dict[str, Any]:
    """Train (or resume) a CT-Transformer on punctuated lines; see the module docstring.

    Returns {"epochs": [per-epoch stats], "best_epoch": n}.
    """
    os.makedirs(output_dir, exist_ok=True)
    with experiment_logging(output_dir, 0, LOG_FORMAT):
        return _train(train_text, output_dir, config_path, valid_text, overrides, device)


def _train(train_text, output_dir, config_path, valid_text, overrides, device_name) -> Dict[str, Any]:
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    config = resolve_config(config_path, overrides, train_text, valid_text)
    train_conf = config["train_conf"]
    punc_list = config["model_conf"]["punc_list"]
    ignore_id = config["model_conf"]["ignore_id"]
    label_to_id = {label: i for i, label in enumerate(punc_list)}
    train_lines = read_punctuated_lines(train_text)
    valid_lines = read_punctuated_lines(valid_text) if valid_text else None
    tokens = build_token_list(train_lines, int(config["token_min_count"]))
    token_to_id = {t: i for i, t in enumerate(tokens)}
    logger.info("%s: %d lines, %d characters; %d tokens (min count %d)", train_text, len(train_lines),
                sum(len(t) for t, _ in train_lines), len(tokens), config["token_min_count"])

    seed_everything(config["seed"])
    model = build_ct_transformer(config, len(tokens), source=config_path or "config").to(device)
    optimizer = build_optimizer(model.parameters(), config["optim"], config.get("optim_conf"))
    scheduler = build_scheduler(optimizer, config.get("scheduler"), config.get("scheduler_conf"))
    logger.info("CT-Transformer: %d parameters", sum(p.numel() for p in model.parameters()))

    state: Dict[str, Any] = {"epoch": 0, "step": 0, "history": [], "best_epoch": None}
    resumed = resume_from_latest_epoch(output_dir, config, RESUME_MUST_MATCH, model, optimizer, scheduler)
    if resumed:
        saved, path = resumed
        restore_rng_state(saved["rng"])
        state = {key: saved[key] for key in state}
        logger.info("resumed from %s (epoch %d, step %d)", path, state["epoch"], state["step"])
    write_token_list(os.path.join(output_dir, "tokens.json"), tokens)
    write_config(funasr_layout_config(config), os.path.join(output_dir, "config.yaml"))

    valid_pieces = make_pieces(valid_lines, token_to_id, label_to_id, train_conf["max_len"]) if valid_lines else None
    valid_batches = (make_batches(valid_pieces, train_conf["batch_tokens"], train_conf["max_batch_size"])
                     if valid_pieces else None)
    for epoch in range(state["epoch"] + 1, train_conf["max_epoch"] + 1):
        start = time.time()
        rng = random.Random(config["seed"] * 100003 + epoch)
        pieces = make_pieces(train_lines, token_to_id, label_to_id, train_conf["max_len"], rng if epoch > 1 else None)
        batches = make_batches(pieces, train_conf["batch_tokens"], train_conf["max_batch_size"])
        rng.shuffle(batches)
        train_loss = _train_one_epoch(model, optimizer, scheduler, pieces, batches, train_conf, ignore_id, device,
                                      epoch, state)
        stats: Dict[str, Any] = {"epoch": epoch, "train_loss": train_loss, "seconds": round(time.time() - start, 1)}
        if valid_batches:
            result = evaluate(model, valid_pieces, valid_batches, punc_list, ignore_id, device)
            stats["valid_loss"] = result["loss"]
            stats["valid_f1"] = {name: round(s["f1"], 4) for name, s in result["scores"].items()}
        key = ("valid_f1", "overall") if valid_batches else None
        best = state["best_epoch"]
        improved = best is None or (
            stats[key[0]][key[1]] > state["history"][best - 1][key[0]][key[1]] if key
            else stats["train_loss"] < state["history"][best - 1]["train_loss"])
        state["epoch"] = epoch
        state["history"].append(stats)
        if improved:
            state["best_epoch"] = epoch
            save_model_state(model.state_dict(), os.path.join(output_dir, "model.pt"))
        logger.info("epoch %d: train loss %.4f%s, %.1f s (best epoch %d)", epoch, train_loss,
                    (f", valid loss {stats['valid_loss']:.4f}, valid F1 {stats['valid_f1']}" if valid_batches else ""),
                    stats["seconds"], state["best_epoch"])
        append_epoch_record(output_dir, {**stats, "step": state["step"], "lr": optimizer.param_groups[0]["lr"]})
        save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "rng": capture_rng_state(), "config": config, **state},
                        os.path.join(output_dir, epoch_checkpoint_name(epoch)))
        for _, old in list_epoch_checkpoints(output_dir)[: -train_conf["keep_checkpoints"]]:
            os.unlink(old)
    logger.info("done: %d epochs, model.pt from epoch %s", state["epoch"], state["best_epoch"])
    return {"epochs": state["history"], "best_epoch": state["best_epoch"]}


def _train_one_epoch(model, optimizer, scheduler, pieces, batches, train_conf, ignore_id, device, epoch,
                     state) -> float:
    """One pass; returns the mean loss per token. Batches with a non-finite loss or gradient are skipped."""
    model.train()
    total, count, skipped = 0.0, 0, 0
    start = time.time()
    for number, indices in enumerate(batches, 1):
        ids, lengths, labels = collate(pieces, indices, ignore_id, device)
        loss_sum, tokens = model.loss(ids, lengths, labels)
        loss = loss_sum / tokens.clamp(min=1)
        optimizer.zero_grad(set_to_none=True)
        if not torch.isfinite(loss):
            skipped += 1
            logger.warning("epoch %d batch %d: non-finite loss, batch skipped", epoch, number)
            continue
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_conf["grad_clip"])
        if not torch.isfinite(grad_norm):
            skipped += 1
            optimizer.zero_grad(set_to_none=True)
            logger.warning("epoch %d batch %d: non-finite gradient norm, batch skipped", epoch, number)
            continue
        optimizer.step()
        scheduler.step()
        state["step"] += 1
        total, count = total + float(loss_sum.detach()), count + int(tokens)
        if number % train_conf["log_interval"] == 0:
            elapsed = time.time() - start
            logger.info("[progress] epoch %d batch %d/%d: train loss %.4f, lr %.2e, %.0f chars/s, epoch ETA %.0f s",
                        epoch, number, len(batches), total / max(count, 1), optimizer.param_groups[0]["lr"],
                        count / max(elapsed, 1e-9), elapsed / number * (len(batches) - number))
    if skipped:
        logger.warning("epoch %d: %d batches skipped", epoch, skipped)
    return total / max(count, 1) if count else math.inf


__all__ = ["DEFAULT_TRAIN_CONF", "build_token_list", "evaluate", "make_pieces", "resolve_config", "train_punc"]
