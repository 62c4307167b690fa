"""The ASR task: a Paraformer (or any ``funasr_lite.models`` ASR model) on Kaldi data dirs or tar shards.

:func:`run_training` trains the experiment a resolved config describes
(:func:`funasr_lite.train.config.resolve_training_config`) with the engine
(:mod:`funasr_lite.train.engine`: outputs, final ``model.avg{N}.pt``, resume, retention).

Batches: ``FrameBatchSampler`` over ``AsrDataset`` (padded model-input frames per batch, length
buckets, per-(seed, epoch) order) through a DataLoader, or ``StreamLoader`` over tar shards
(``train_data`` a shards.list file). Loss: the model's (``model(speech, speech_lengths, text,
text_lengths) -> (loss, stats, weight)``). Validation: the model's loss/acc and, with
``train_conf.validate_cer``, the greedy-decoding CER in % (the scoring alignment,
funasr_lite.scoring.cer), summed over all ranks.
"""

from __future__ import annotations

import logging
import random
import os
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader

from funasr_lite.data.batch_sampler import FrameBatchSampler
from funasr_lite.data.collate import collate_batch
from funasr_lite.data.hotword_sampling import sample_hotword_batch
from funasr_lite.data.dataset import build_dataset
from funasr_lite.scoring.cer import char_errors  # validation CER: the scoring alignment
from funasr_lite.train.distributed import DistributedContext
from funasr_lite.train.engine import StatsAccumulator, StepCallback, run_task, stat_value
from funasr_lite.train.task import Task
from funasr_lite.utils.progress import progress

logger = logging.getLogger(__name__)

BATCH_KEYS = ("speech", "speech_lengths", "text", "text_lengths")


class AsrTask(Task):
    """Speech + transcripts -> an ASR model (module docstring).

    Args:
        config: the resolved training config.
        model_builder: ``config -> model`` (default: ``funasr_lite.models.build_model``).
    """

    name = "ASR"
    METRICS = {"cer": True, "loss": True, "acc": False}
    ITEM_NAME = "utterances"
    UNIT = "frames"

    def __init__(self, config: Dict[str, Any], model_builder: Optional[Callable[[Dict[str, Any]], torch.nn.Module]] = None):
        self.config = config
        self.model_builder = model_builder
        self.dataset_conf = config["dataset_conf"]
        frontend_conf = config["frontend_conf"]
        # Seconds of audio per model-input frame (for the real-time factor of training).
        self.seconds_per_frame = float(frontend_conf.get("frame_shift", 10)) / 1000.0 * int(frontend_conf.get("lfr_n", 1))
        self.device = torch.device("cpu")
        self.train_set = None
        self.valid_set = None
        self.valid_loader = None
        self.valid_texts: Optional[Dict[str, str]] = None  # filled lazily: utt id -> reference transcript

    def check_train_conf(self, train_conf: Dict[str, Any]) -> None:
        if train_conf["best_metric"] == "cer" and not train_conf["validate_cer"]:
            raise ValueError("train_conf.best_metric is 'cer' but validate_cer is false; choose loss or acc")

    # ---------------------------------------------------------------- data and model

    def setup(self, context: DistributedContext, exp_dir: str) -> None:
        from funasr_lite.data.tokenizer import build_tokenizer

        config = self.config
        self.device = context.device
        self.exp_dir, self.is_main = exp_dir, context.is_main
        tokenizer_conf = config.get("tokenizer_conf") or {}
        self.tokenizer = build_tokenizer(config["token_list"], tokenizer_conf.get("bpemodel"))
        frontend_conf = config["frontend_conf"]
        if os.path.isfile(config["train_data"]):  # a shards.list: the streaming path (batch_bins in ms)
            from funasr_lite.data.shards import build_shard_stream

            if self.dataset_conf.get("embeds"):
                raise ValueError("dataset_conf.embeds (ParaformerBert's embeddings) needs a data dir, not tar shards")
            self.train_set = build_shard_stream(config["train_data"], self.tokenizer, config["cmvn_file"], frontend_conf,
                                                self.dataset_conf, seed=int(config["seed"]), rank=context.rank,
                                                world_size=context.world_size)
        else:
            self.train_set = build_dataset(config["train_data"], self.tokenizer, config["cmvn_file"], frontend_conf,
                                           self.dataset_conf)
        if config.get("valid_data"):
            self.valid_set = build_dataset(config["valid_data"], self.tokenizer, config["cmvn_file"], frontend_conf,
                                           self.dataset_conf)

    def build_model(self) -> torch.nn.Module:
        if self.model_builder is not None:
            model = self.model_builder(self.config)
        else:
            from funasr_lite.models import build_model

            model = build_model(self.config)
        # Hotword models (SeACo, Contextual) train on hotwords sampled from each batch's transcripts.
        self.hotwords = None
        if hasattr(model, "hotword_embeddings"):
            self.hotwords = {"sos_id": int(model.sos), "seaco_id": getattr(model, "NO_BIAS", None)}
            exp_dir = getattr(self, "exp_dir", None)
            if exp_dir and getattr(self, "is_main", True):
                # The exp dir decodes with hotwords: its seg_dict splits a Chinese hotword into characters.
                from funasr_lite.data.hotwords import SEG_DICT_NAME, write_vocabulary_seg_dict

                write_vocabulary_seg_dict(os.path.join(exp_dir, SEG_DICT_NAME), self.tokenizer.token_list)
        return model

    @property
    def streaming(self) -> bool:
        return bool(getattr(self.train_set, "is_stream", False))

    def train_batches(self, context: DistributedContext):
        dataset_conf = self.dataset_conf
        num_workers = dataset_conf["num_workers"]
        if self.streaming:  # tar shards (data/shards.py): a stream with its own position
            from funasr_lite.data.shards import StreamLoader

            loader = StreamLoader(self.train_set, num_workers=num_workers, context=context,
                                  pin_memory=context.device.type == "cuda")
            return loader, loader
        sampler = FrameBatchSampler(
            self.train_set.lengths,
            dataset_conf["batch_bins"],
            shuffle=dataset_conf["shuffle"],
            bucket_size=dataset_conf["bucket_size"],
            sortagrad=dataset_conf["sortagrad"],
            seed=int(self.config["seed"]),
            world_size=context.world_size,
            rank=context.rank,
            equal_batches=True,
        )
        # A private generator: creating a loader iterator must not consume the global torch RNG,
        # or a resumed run would draw different dropout/SpecAug numbers.
        loader = DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=collate_batch,
            num_workers=num_workers,
            pin_memory=context.device.type == "cuda",
            generator=torch.Generator(),
        )
        return sampler, loader

    def _to_device(self, batch: Dict[str, Any]):
        non_blocking = self.device.type == "cuda"
        return tuple(batch[key].to(self.device, non_blocking=non_blocking) for key in BATCH_KEYS)

    def compute_loss(self, model, batch):
        speech, speech_lengths, text, text_lengths = self._to_device(batch)
        if "embed" in batch:  # ParaformerBert: the transcripts' per-token embeddings (dataset_conf.embeds)
            return model(speech, speech_lengths, text, text_lengths, embed=batch["embed"].to(self.device),
                         embed_lengths=batch["embed_lengths"].to(self.device))
        if getattr(self, "hotwords", None) is None:
            return model(speech, speech_lengths, text, text_lengths)
        # Python's global generator: its state is in every checkpoint, so a resumed run draws alike.
        extra = sample_hotword_batch(batch["text"], batch["text_lengths"], random, **self.hotwords)
        return model(speech, speech_lengths, text, text_lengths,
                     **{key: value.to(self.device) for key, value in extra.items()})

    def batch_ids(self, batch) -> List[str]:
        return batch["utt_ids"]

    def batch_units(self, batch) -> float:
        return int(batch["speech_lengths"].sum())

    def describe_throughput(self, units_per_s: float) -> str:
        return f"frames/s {units_per_s:.0f} ({units_per_s * self.seconds_per_frame:.1f}x real time)"

    def describe_data(self) -> str:
        if self.streaming:
            frames = int(self.train_set.total_seconds / self.seconds_per_frame)
        else:
            frames = sum(int(n) for n in self.train_set.lengths)
        return f"{len(self.train_set)} utterances ({frames} frames, {frames * self.seconds_per_frame / 3600:.1f} h)"

    # ---------------------------------------------------------------- memory check

    def probe_batches(self, sampler) -> List[Dict[str, Any]]:
        """The costliest batch (padded frames) and the one with the longest utterance; none for
        a stream (it has no batch list to probe)."""
        if self.streaming:
            return []
        batches = sampler.largest_batches(1)
        longest = max(sampler.rank_batches(), key=lambda b: int(self.train_set.lengths[b].max()))
        return [collate_batch([self.train_set[i] for i in indices]) for indices in (batches + [longest])[:2]]

    def describe_batch(self, batch) -> str:
        if batch is None:
            return "no batch"
        size, frames = batch["speech"].shape[0], batch["speech"].shape[1]
        return f"batch of {size} utterances x {frames} frames ({size * frames} padded frames)"

    def batch_size_advice(self) -> str:
        return f"lower dataset_conf.batch_bins (now {self.dataset_conf['batch_bins']}) or max_frames"

    # ---------------------------------------------------------------- validation

    def prepare_validation(self, context: DistributedContext) -> None:
        self.context = context
        if self.valid_set is None:
            return
        valid_sampler = FrameBatchSampler(
            self.valid_set.lengths,
            self.dataset_conf["valid_batch_bins"] or self.dataset_conf["batch_bins"],
            shuffle=False,
            world_size=context.world_size,
            rank=context.rank,
            equal_batches=False,
        )
        self.valid_loader = DataLoader(
            self.valid_set,
            batch_sampler=valid_sampler,
            collate_fn=collate_batch,
            num_workers=self.dataset_conf["num_workers"],
            generator=torch.Generator(),
        )

    def has_validation(self) -> bool:
        return self.valid_loader is not None

    def progress_metric(self, train_conf: Dict[str, Any]) -> str:
        return "cer" if train_conf["validate_cer"] else train_conf["best_metric"]

    def _greedy_token_ids(self, model, speech: torch.Tensor, speech_lengths: torch.Tensor) -> List[List[int]]:
        results = model.decode_greedy(speech, speech_lengths)
        token_ids = []
        for result in results:
            ids = result["token_ids"] if isinstance(result, dict) else result
            token_ids.append([int(i) for i in (ids.tolist() if torch.is_tensor(ids) else ids)])
        return token_ids

    def validate(self, model, autocast) -> Dict[str, float]:
        """Loss, acc (and greedy CER in %) over the validation set, summed over all ranks."""
        if self.valid_texts is None:
            from funasr_lite.data.datadir import read_kv

            self.valid_texts = read_kv(os.path.join(self.valid_set.data_dir, "text"), allow_empty_value=True)
        stats = StatsAccumulator()
        errors, ref_chars = 0, 0
        decode = self.config["train_conf"]["validate_cer"]
        for batch in progress(self.valid_loader, desc="valid", unit="batch"):
            with autocast():
                _, batch_stats, weight = self.compute_loss(model, batch)
            stats.add(batch_stats, float(stat_value(weight) or 1.0))
            if decode:
                speech, speech_lengths, _, _ = self._to_device(batch)
                with autocast():
                    hyps = self._greedy_token_ids(model, speech, speech_lengths)
                for utt_id, ids in zip(batch["utt_ids"], hyps):
                    hyp_text = self.tokenizer.tokens2text(self.tokenizer.ids2tokens(ids))
                    utt_errors, utt_chars = char_errors(self.valid_texts[utt_id], hyp_text)
                    errors += utt_errors
                    ref_chars += utt_chars
        gathered = self.context.all_gather_object((stats.sums, stats.weights, errors, ref_chars))
        total = StatsAccumulator()
        errors, ref_chars = 0, 0
        for sums, weights, rank_errors, rank_chars in gathered:
            total.merge(sums, weights)
            errors += rank_errors
            ref_chars += rank_chars
        metrics = total.averages()
        if decode:
            metrics["cer"] = 100.0 * errors / max(ref_chars, 1)
        return metrics


def run_training(
    config: Dict[str, Any],
    *,
    resume: bool = True,
    device: str = "auto",
    model_builder: Optional[Callable[[Dict[str, Any]], torch.nn.Module]] = None,
    step_callback: Optional[StepCallback] = None,
) -> bool:
    """Train the ASR experiment of a resolved ``config`` into ``config["output_dir"]``.

    Works alone or under torchrun (RANK/WORLD_SIZE/LOCAL_RANK). ``resume`` continues from
    ``<exp>/checkpoint_latest.pt`` when it exists. Returns False when ``<exp>/train.done`` said
    there was nothing to do, True after training.
    """
    if not config.get("output_dir"):
        raise ValueError("config has no output_dir")
    task = AsrTask(config, model_builder)
    result = run_task(task, config, config["output_dir"], resume=resume, device=device, step_callback=step_callback)
    return result.trained


__all__ = ["AsrTask", "char_errors", "run_training"]
