"""Token LM training for shallow fusion, on the transcripts of a Kaldi ``text`` file.

:func:`train_lm` writes to ``output_dir``:
  config.yaml   the resolved config (what :func:`funasr_lite.models.lm.load_lm` reads)
  model.pt      weights of the epoch with the best valid perplexity (the best train perplexity
                without a validation text), a plain state dict
  train.log     text log, appended on resume, with ``[progress]`` lines (epoch, batch, ETA, last
                valid perplexity) that the job runner shows on a terminal
  tensorboard/  scalars train/ppl, train/lr (every ``log_interval`` batches), valid/ppl per epoch
  epochs.jsonl  one record per epoch: train and valid ``ppl`` and ``loss`` (nll per token)
  epoch_N.pt    full state at the end of epoch N (model, optimizer, scheduler, epoch, step, every
                rank's RNG, counters, history); the last ``train_conf.keep_checkpoints`` are kept

A rerun with the same config resumes after the last finished epoch. Batches whose loss or
gradient norm is not finite (on any rank) are skipped and counted. Perplexity = exp(nll per
token), ``</s>`` counted as a token.

Device, logging, TensorBoard and DDP are the ASR trainer's (funasr_lite.train.distributed,
funasr_lite.train.train_log): one process, or ``torchrun`` processes that each train on every
world_size-th batch of the epoch's order (padded by repeating the first batches so all ranks take
the same number of steps) with gradients averaged by DDP; rank 0 writes all files.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import random
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

from funasr_lite.data.batch_sampler import split_into_batches
from funasr_lite.data.collate import pad_sequences
from funasr_lite.data.tokenizer import EOS, SOS, build_tokenizer, read_text_file, read_token_list
from funasr_lite.models.lm import build_lm
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
from funasr_lite.train.distributed import DistributedContext, init_distributed, shutdown_distributed, wrap_ddp
from funasr_lite.train.optim import build_optimizer
from funasr_lite.train.scheduler import build_scheduler
from funasr_lite.train.train_log import (
    LOG_FORMAT,
    RunProgress,
    append_epoch_record,
    experiment_logging,
    tensorboard_writer,
)
from funasr_lite.utils.config import apply_overrides, load_yaml, write_config

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


def collate(sentences: Sequence[List[int]], indices: Sequence[int],
            device: Optional[torch.device] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """-> ys (B, U) right-padded with 0, lengths (B,) (on ``device`` when given)."""
    rows = [torch.tensor(sentences[i], dtype=torch.long) for i in indices]
    lengths = torch.tensor([len(row) for row in rows], dtype=torch.long)
    ys = pad_sequences(rows, TEXT_PAD)
    if device is not None:
        ys, lengths = ys.to(device), lengths.to(device)
    return ys, lengths


def rank_share(batches: Sequence[List[int]], rank: int, world_size: int) -> List[List[int]]:
    """Every ``world_size``-th batch from ``rank`` on, after padding the list with its first
    batches to a multiple of ``world_size`` (all ranks take the same number of steps)."""
    batches = list(batches)
    if world_size <= 1 or not batches:
        return batches
    padded = batches + batches[: (-len(batches)) % world_size]
    return padded[rank::world_size]


@torch.no_grad()
def evaluate(model: torch.nn.Module, sentences: Sequence[List[int]], batches: Sequence[List[int]],
             device: Optional[torch.device] = None) -> Tuple[float, int]:
    """(summed nll, token count) over the batches, in eval mode."""
    was_training = model.training
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for indices in batches:
        nll, counts = model(*collate(sentences, indices, device))
        total_nll += float(nll.sum())
        total_tokens += int(counts.sum())
    model.train(was_training)
    return total_nll, total_tokens


def perplexity(total_nll: float, total_tokens: int) -> float:
    return math.exp(total_nll / max(total_tokens, 1)) if math.isfinite(total_nll) else float("inf")


def _all_finite(value: torch.Tensor, context: Optional[DistributedContext]) -> bool:
    """True when ``value`` is finite on every rank (one small all-reduce under DDP)."""
    bad = torch.tensor([0.0 if bool(torch.isfinite(value.detach()).all()) else 1.0], dtype=torch.float64)
    if context is not None:
        bad = context.all_reduce_sum(bad)
    return bool(bad[0] == 0)


def train_one_epoch(model, optimizer, scheduler, sentences, batches, train_conf: Dict[str, Any], epoch: int,
                    counters: Dict[str, int], context: Optional[DistributedContext] = None, writer=None,
                    on_batch: Optional[Callable[[int], None]] = None) -> Tuple[float, int]:
    """One pass over ``batches`` (this rank's share, already in this epoch's order). Returns
    (nll sum, tokens) of this rank's batches used; batches with a non-finite loss or gradient
    (on any rank) are skipped, counted in counters["skipped_batches"]. ``writer``: TensorBoard
    (rank 0); ``on_batch(batch_number)``: called after each batch (progress lines)."""
    model.train()
    device = context.device if context is not None else None
    total_nll, total_tokens = 0.0, 0
    start = time.time()
    for batch_number, indices in enumerate(batches, 1):
        if on_batch is not None and batch_number > 1:
            on_batch(batch_number - 1)
        ys, lengths = collate(sentences, indices, device)
        nll, counts = model(ys, lengths)
        num_tokens = int(counts.sum())
        loss = nll.sum() / num_tokens
        optimizer.zero_grad(set_to_none=True)
        if not _all_finite(loss, context):
            counters["skipped_batches"] += 1
            logger.warning("epoch %d batch %d: non-finite loss %s, batch skipped (%d so far)",
                           epoch, batch_number, loss.item(), counters["skipped_batches"])
            continue
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), train_conf["grad_clip"])
        if not _all_finite(grad_norm, context):
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
            lr = optimizer.param_groups[0]["lr"]
            logger.info("epoch %d batch %d/%d: train ppl %.2f, lr %.2e, %.0f tokens/s", epoch, batch_number,
                        len(batches), perplexity(total_nll, total_tokens), lr,
                        total_tokens / max(time.time() - start, 1e-9))
            if writer is not None:
                writer.add_scalar("train/ppl", perplexity(total_nll, total_tokens), counters["step"])
                writer.add_scalar("train/lr", lr, counters["step"])
    if on_batch is not None and batches:
        on_batch(len(batches))
    return total_nll, total_tokens


def _record_epoch(output_dir: str, writer, stats: Dict[str, Any], step: int, lr: float) -> None:
    """epochs.jsonl and TensorBoard for one epoch (rank 0): ppl and loss (nll per token)."""
    record: Dict[str, Any] = {"epoch": stats["epoch"], "step": step, "seconds": round(stats["seconds"], 3), "lr": lr}
    for part in ("train", "valid"):
        ppl = stats.get(f"{part}_ppl")
        record[part] = {} if ppl is None else {"ppl": ppl, "loss": math.log(ppl) if 0 < ppl < float("inf") else None}
        if writer is not None and ppl is not None and math.isfinite(ppl):
            writer.add_scalar(f"{part}/epoch_ppl" if part == "train" else "valid/ppl", ppl, stats["epoch"])
    append_epoch_record(output_dir, record)
    if writer is not None:
        writer.flush()


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
             valid_text: Optional[str] = None, overrides: Sequence[str] = (), device: str = "auto") -> Dict[str, Any]:
    """Train (or resume) an LM, logging INFO to <output_dir>/train.log (appended on resume).
    Alone or under ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK), like the ASR trainer.

    Args:
        text: Kaldi ``text`` file of the training transcripts.
        token_list: ``tokens.txt`` of the ASR model (``<s>``, ``</s>`` at ids 1, 2).
        output_dir: where the files listed in the module docstring go.
        config_path: LM YAML config (``lm``, ``lm_conf``, ``optim``, ``scheduler``, ``train_conf``,
            ``seed``); None: all defaults.
        valid_text: Kaldi ``text`` file for the validation perplexity that picks ``model.pt``.
        overrides: ``++dotted.key=value`` config overrides.
        device: ``auto`` (cuda:<local rank> when a GPU is visible), ``cpu`` or ``cuda``.

    Returns {"epochs": [per-epoch stats], "best_epoch": n, "skipped_batches": count}.
    """
    os.makedirs(output_dir, exist_ok=True)
    context = init_distributed(device)
    try:
        with experiment_logging(output_dir, context.rank, LOG_FORMAT):
            return _train(text, token_list, output_dir, config_path, valid_text, overrides, context)
    finally:
        shutdown_distributed(context)


def _restore_rng(saved: Dict[str, Any], context: DistributedContext, seed: int, path: str) -> None:
    """This rank's RNG state from a checkpoint (``rng_ranks``: one per rank of the run that wrote
    it); re-seeded, with a warning, when that run had another number of processes."""
    ranks = saved.get("rng_ranks") or [saved["rng"]]
    if len(ranks) == context.world_size:
        restore_rng_state(ranks[context.rank])
    else:
        logger.warning("%s was written by %d process(es), this run has %d: RNG streams are re-seeded",
                       path, len(ranks), context.world_size)
        seed_everything(seed + 1000 * saved["epoch"] + context.rank)


def _train(text, token_list, output_dir, config_path, valid_text, overrides, context: DistributedContext) -> Dict[str, Any]:
    config = resolve_config(config_path, overrides, token_list, text, valid_text)
    train_conf = config["train_conf"]
    tokenizer = build_tokenizer(token_list)
    train_sentences = read_sentences(text, tokenizer)
    valid_sentences = read_sentences(valid_text, tokenizer) if valid_text else None

    seed_everything(config["seed"])
    model = build_lm(config).to(context.device)  # the same initial weights on every rank
    if context.is_distributed:
        seed_everything(config["seed"] + context.rank)  # different dropout draws per rank
    optimizer = build_optimizer(model.parameters(), config.get("optim", "adam"), config.get("optim_conf"))
    scheduler = build_scheduler(optimizer, config.get("scheduler"), config.get("scheduler_conf"))
    logger.info("LM: %d parameters; config %s", sum(p.numel() for p in model.parameters()), config_path)

    state: Dict[str, Any] = {"epoch": 0, "counters": {"step": 0, "skipped_batches": 0}, "history": [], "best_epoch": None}
    resumed = resume_from_latest_epoch(output_dir, config, RESUME_MUST_MATCH, model, optimizer, scheduler)
    if resumed:
        saved, path = resumed
        _restore_rng(saved, context, config["seed"], path)
        state = {key: saved[key] for key in state}
        logger.info("resumed from %s (epoch %d, step %d)", path, state["epoch"], state["counters"]["step"])
    if context.is_main:
        write_config(config, os.path.join(output_dir, "config.yaml"))
    trained = wrap_ddp(model, context)
    writer = tensorboard_writer(output_dir, context.is_main)

    train_batches = make_batches([len(s) for s in train_sentences], train_conf["batch_tokens"], train_conf["max_batch_size"])
    valid_batches = (make_batches([len(s) for s in valid_sentences], train_conf["batch_tokens"], train_conf["max_batch_size"])
                     if valid_sentences else None)
    rank_batches = len(rank_share(train_batches, context.rank, context.world_size))
    run_progress = RunProgress()
    if context.world_size > 1:
        logger.info("%d processes: %d of the %d batches per epoch on each", context.world_size, rank_batches, len(train_batches))

    def log_progress(epoch: int, done_in_epoch: Optional[int]) -> None:
        if not context.is_main:
            return
        left = (train_conf["max_epoch"] - epoch) * rank_batches + (rank_batches - (done_in_epoch or rank_batches))
        validated = [e for e in state["history"] if e.get("valid_ppl") is not None]
        last = {"epoch": validated[-1]["epoch"], "ppl": validated[-1]["valid_ppl"]} if validated else None
        logger.info("%s", run_progress.message(epoch, train_conf["max_epoch"], left, position=done_in_epoch,
                                               epoch_batches=rank_batches, step=state["counters"]["step"],
                                               last_valid=last, metric="ppl"))

    def on_batch(epoch: int, batch_number: int) -> None:
        run_progress.batch_done()
        if batch_number % train_conf["log_interval"] == 0 or run_progress.due(60.0):
            log_progress(epoch, batch_number)

    try:
        for epoch in range(state["epoch"] + 1, train_conf["max_epoch"] + 1):
            start = time.time()
            epoch_order = copy.copy(train_batches)
            random.Random(config["seed"] * 100003 + epoch).shuffle(epoch_order)  # depends on (seed, epoch) only
            skipped_before = state["counters"]["skipped_batches"]
            my_batches = rank_share(epoch_order, context.rank, context.world_size)
            train_nll, train_tokens = train_one_epoch(
                trained, optimizer, scheduler, train_sentences, my_batches, train_conf, epoch, state["counters"],
                context, writer, lambda number, epoch=epoch: on_batch(epoch, number))
            if context.is_distributed:  # the perplexity of all ranks' batches
                totals = context.all_reduce_sum(torch.tensor([train_nll, float(train_tokens)], dtype=torch.float64))
                train_nll, train_tokens = float(totals[0]), int(totals[1])
            stats = {"epoch": epoch, "train_ppl": perplexity(train_nll, train_tokens), "seconds": time.time() - start,
                     "skipped_batches": state["counters"]["skipped_batches"] - skipped_before}
            if valid_batches:  # every rank scores the whole (small) valid set: no collective needed
                stats["valid_ppl"] = perplexity(*evaluate(model, valid_sentences, valid_batches, context.device))
            state["epoch"] = epoch
            state["history"].append(stats)
            key = "valid_ppl" if valid_batches else "train_ppl"
            best = state["best_epoch"]
            improved = best is None or stats[key] < state["history"][best - 1][key]
            if improved:
                state["best_epoch"] = epoch
            rng_ranks = context.all_gather_object(capture_rng_state())
            if context.is_main:
                if improved:
                    save_model_state(model.state_dict(), os.path.join(output_dir, "model.pt"))
                message = (f"epoch {epoch}: train ppl {stats['train_ppl']:.2f}"
                           + (f", valid ppl {stats['valid_ppl']:.2f}" if valid_batches else "")
                           + f", {stats['seconds']:.1f} s, {len(my_batches)} batches, {stats['skipped_batches']} skipped"
                           + f" (best epoch {state['best_epoch']})")
                logger.info("%s", message)
                print(message, flush=True)
                _record_epoch(output_dir, writer, stats, state["counters"]["step"], optimizer.param_groups[0]["lr"])
                save_checkpoint({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "rng": rng_ranks[0], "rng_ranks": rng_ranks,
                                 "world_size": context.world_size, "config": config, **state},
                                os.path.join(output_dir, epoch_checkpoint_name(epoch)))
                for _, old in list_epoch_checkpoints(output_dir)[: -train_conf["keep_checkpoints"]]:
                    os.unlink(old)
            log_progress(epoch, None)
        context.barrier()  # the other ranks wait for rank 0's files
    finally:
        if writer is not None:
            writer.close()
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
    "rank_share",
    "read_sentences",
    "resolve_config",
    "train_lm",
    "train_one_epoch",
]
