"""The large-corpus data path: tar shards read as a stream, features on the fly, resumable.

Format (WeNet's shard convention): each shard is a plain tar of consecutive member pairs
``<utt>.wav`` (16-bit PCM at the model's rate) and ``<utt>.txt`` (the UTF-8 transcript); a
``shards.list`` names one shard per line; ``shards.list.json`` holds per-shard utterance counts
and seconds (for progress estimates only). Chosen over one file per utterance because a tar is
read sequentially in large blocks (network file systems, object stores), any tool can list or
make one, and WeNet/FunASR users already have such shards; WebDataset reads the same tars.

:func:`write_shards` turns a checked data dir into shards (``nj`` processes, one shard each at a
time, atomic writes). :class:`ShardStream` (a torch ``IterableDataset``) reads them:

* shards are permuted per epoch by (seed, epoch); rank ``r`` of ``W`` takes every W-th shard, and
  loader worker ``k`` of ``K`` every K-th of those, so nothing is read twice;
* a shuffle buffer of ``buffer_size`` utterances (raw bytes, not features): when full, a random
  one leaves it; features (:class:`~funasr_lite.frontend.wav_frontend.WavFrontend`: fbank, LFR,
  CMVN) are computed as an utterance leaves, so memory does not grow with the corpus;
* dynamic batches: utterances are added while ``count * longest`` stays within ``batch_ms``
  milliseconds of audio;
* every batch carries its worker's position after it: shard index + offset of the next
  utterance to read, the locations (shard index, offset) of the utterances still in the buffer
  and in the unfinished batch, and the buffer's RNG state. :class:`StreamLoader` keeps the
  position of the last batch the trainer consumed from each worker; that is what a checkpoint
  saves, and a restarted run re-reads exactly those buffered utterances and continues with the
  same batches in the same order (the workers' round-robin is rotated to where it stopped).
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import tarfile
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np
import soundfile
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from funasr_lite.data.collate import collate_batch
from funasr_lite.data.datadir import read_kv
from funasr_lite.frontend.wav_frontend import WavFrontend
from funasr_lite.utils.fileio import atomic_open

logger = logging.getLogger(__name__)

SHARD_LIST = "shards.list"
INFO_SUFFIX = ".json"


class ShardError(ValueError):
    """A shard list or shard that cannot be read; the message names the file."""


# ---------------------------------------------------------------------- writing


def _write_one_shard(path: str, items: List[Tuple[str, str, str]], frontend_conf: Dict[str, Any]) -> Dict[str, Any]:
    """Write ``items`` [(utt, wav.scp value, text)] into the tar ``path``; -> its info."""
    frontend = WavFrontend(frontend_conf)
    seconds, written, dropped = 0.0, 0, []
    with atomic_open(path, "wb") as f, tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for utt, source, text in items:
            try:
                waveform, _ = frontend.read_audio(source)
            except Exception as e:  # the check read it; a file changed since is named and skipped
                dropped.append(f"{utt}: {e}")
                continue
            buffer = io.BytesIO()
            pcm = np.clip(np.round(waveform * 32768.0), -32768, 32767).astype(np.int16)
            soundfile.write(buffer, pcm, frontend.sample_rate, format="WAV", subtype="PCM_16")
            for name, data in ((f"{utt}.wav", buffer.getvalue()), (f"{utt}.txt", text.encode("utf-8"))):
                member = tarfile.TarInfo(name)
                member.size = len(data)
                tar.addfile(member, io.BytesIO(data))
            seconds += waveform.shape[0] / frontend.sample_rate
            written += 1
    return {"path": path, "utterances": written, "seconds": round(seconds, 3), "dropped": dropped}


def write_shards(data_dir, shard_dir, list_path, *, frontend: WavFrontend, utts_per_shard: int = 1000,
                 nj: int = 1) -> List[str]:
    """Checked data dir (``wav.scp``, ``text``) -> ``shard_dir/shard_NNNNNN.tar`` + ``list_path``.

    Audio is stored resampled to the frontend's rate as 16-bit PCM. ``nj`` processes write shards
    in parallel. Returns the shard paths.
    """
    data_dir, shard_dir = os.fspath(data_dir), os.path.abspath(os.fspath(shard_dir))
    if utts_per_shard < 1:
        raise ShardError(f"utts_per_shard must be >= 1, got {utts_per_shard}")
    wavs = read_kv(os.path.join(data_dir, "wav.scp"))
    texts = read_kv(os.path.join(data_dir, "text"), allow_empty_value=True)
    items = [(utt, wavs[utt], texts[utt]) for utt in wavs if utt in texts]
    if not items:
        raise ShardError(f"{data_dir}: no utterance in both wav.scp and text")
    os.makedirs(shard_dir, exist_ok=True)
    groups = [items[i: i + utts_per_shard] for i in range(0, len(items), utts_per_shard)]
    paths = [os.path.join(shard_dir, f"shard_{i:06d}.tar") for i in range(len(groups))]
    conf = dict(frontend.conf)
    if nj > 1 and len(groups) > 1:
        with ProcessPoolExecutor(max_workers=min(nj, len(groups))) as pool:
            infos = list(pool.map(_write_one_shard, paths, groups, [conf] * len(groups)))
    else:
        infos = [_write_one_shard(p, g, conf) for p, g in zip(paths, groups)]
    for info in infos:
        for problem in info["dropped"]:
            logger.warning("%s: dropped %s", info["path"], problem)
    with atomic_open(os.fspath(list_path) + INFO_SUFFIX) as f:
        json.dump(infos, f, indent=1)
    with atomic_open(list_path) as f:  # the list last: it marks the shards complete
        f.write("".join(p + "\n" for p in paths))
    total = sum(i["utterances"] for i in infos)
    logger.info("%s: %d utterances (%.2f h) in %d shards -> %s", data_dir, total,
                sum(i["seconds"] for i in infos) / 3600, len(paths), list_path)
    return paths


def read_shard_list(list_path) -> List[str]:
    """The shard paths of a ``shards.list`` (relative paths are relative to the list's dir)."""
    list_path = os.fspath(list_path)
    if not os.path.isfile(list_path):
        raise ShardError(f"{list_path}: no such shard list")
    base = os.path.dirname(os.path.abspath(list_path))
    with open(list_path, encoding="utf-8") as f:
        paths = [line.strip() for line in f if line.strip()]
    if not paths:
        raise ShardError(f"{list_path}: lists no shards")
    return [p if os.path.isabs(p) else os.path.join(base, p) for p in paths]


def iter_shard(path: str, start: int = 0) -> Iterator[Tuple[int, str, bytes, str]]:
    """(offset, utt, wav bytes, text) of the utterances of one shard from ``start`` on."""
    try:
        tar = tarfile.open(path, mode="r:")
    except (OSError, tarfile.TarError) as e:
        raise ShardError(f"{path}: cannot open shard: {e}") from None
    with tar:
        offset, current, parts = 0, None, {}
        for member in tar:
            stem, _, suffix = member.name.rpartition(".")
            if stem != current:
                if current is not None and offset >= start:
                    yield _sample(path, offset, current, parts)
                if current is not None:
                    offset += 1
                current, parts = stem, {}
            if offset >= start:
                parts[suffix] = tar.extractfile(member).read()
        if current is not None and offset >= start:
            yield _sample(path, offset, current, parts)


def _sample(path: str, offset: int, utt: str, parts: Dict[str, bytes]) -> Tuple[int, str, bytes, str]:
    if "wav" not in parts or "txt" not in parts:
        raise ShardError(f"{path}: utterance {utt} lacks its {'.wav' if 'wav' not in parts else '.txt'} member")
    return offset, utt, parts["wav"], parts["txt"].decode("utf-8")


# ---------------------------------------------------------------------- reading


class ShardStream(IterableDataset):
    """Batches (``collate_batch`` dicts + ``stream_state``) from tar shards; see module docstring.

    Args:
        shard_list: ``shards.list`` path.
        tokenizer: text -> ids (``encode``); unknown characters become ``<unk>``.
        frontend: WavFrontend with the model's am.mvn.
        batch_ms: max ``count * longest`` milliseconds of audio per batch.
        buffer_size: shuffle buffer (utterances); 1 = no shuffling.
        seed, rank, world_size: shard split and order.
    """

    is_stream = True

    def __init__(self, shard_list, tokenizer, frontend: WavFrontend, batch_ms: int, *, buffer_size: int = 1000,
                 seed: int = 0, rank: int = 0, world_size: int = 1):
        super().__init__()
        self.shard_list = os.fspath(shard_list)
        self.shards = read_shard_list(self.shard_list)
        self.tokenizer, self.frontend = tokenizer, frontend
        self.batch_ms, self.buffer_size = int(batch_ms), max(1, int(buffer_size))
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.epoch = 1
        self.worker_states: Dict[int, Dict[str, Any]] = {}  # logical worker -> position to resume from
        self.worker_offset = 0  # logical id of the worker that produces the first batch
        self.info = self._read_info()

    def _read_info(self) -> List[Dict[str, Any]]:
        path = self.shard_list + INFO_SUFFIX
        if not os.path.isfile(path):
            return []
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    @property
    def total_seconds(self) -> float:
        return float(sum(i.get("seconds", 0.0) for i in self.info))

    def __len__(self) -> int:
        return int(sum(i.get("utterances", 0) for i in self.info))

    def epoch_shards(self, logical: int, num_workers: int) -> List[int]:
        """Shard indices (into ``self.shards``) that a logical worker reads this epoch, in order."""
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        return [int(i) for i in order[self.rank:: self.world_size][logical:: num_workers]]

    def _item(self, utt: str, wav: bytes, text: str) -> Dict[str, Any]:
        samples, rate = soundfile.read(io.BytesIO(wav), dtype="float32")
        if rate != self.frontend.sample_rate:
            samples = self.frontend.resample(samples, rate)
        ids = torch.tensor(self.tokenizer.encode(text), dtype=torch.long)
        return {"utt_id": utt, "speech": self.frontend(samples), "text": ids}

    def _read_locations(self, shards: List[int], locations: List[List[int]]) -> List[Tuple]:
        """Re-read the utterances at [(shard position, offset)] (a resumed buffer)."""
        wanted: Dict[int, set] = {}
        for pos, offset in locations:
            wanted.setdefault(pos, set()).add(offset)
        found = {}
        for pos, offsets in wanted.items():
            for offset, utt, wav, text in iter_shard(self.shards[shards[pos]], min(offsets)):
                if offset in offsets:
                    found[(pos, offset)] = ((pos, offset), utt, wav, text)
                if offset >= max(offsets):
                    break
        return [found[(pos, offset)] for pos, offset in locations]

    def __iter__(self):
        info = get_worker_info()
        num_workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        logical = (worker + self.worker_offset) % num_workers
        shards = self.epoch_shards(logical, num_workers)
        state = self.worker_states.get(logical)
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, logical])
        if state is not None:
            if state.get("done"):
                return
            rng.bit_generator.state = state["rng"]
            buffer = self._read_locations(shards, state["buffer"])
            batch = self._read_locations(shards, state["batch"])
            next_pos, next_offset = state["next"]
        else:
            buffer, batch, next_pos, next_offset = [], [], 0, 0
        batch_items = [self._item(utt, wav, text) for _, utt, wav, text in batch]

        def position(done: bool = False) -> Dict[str, Any]:
            return {"worker": logical, "done": done, "next": [next_pos, next_offset], "rng": rng.bit_generator.state,
                    "buffer": [list(s[0]) for s in buffer], "batch": [list(s[0]) for s in batch]}

        def emit():
            return collate_batch(batch_items)

        def reader():
            nonlocal next_pos, next_offset
            while next_pos < len(shards):
                for offset, utt, wav, text in iter_shard(self.shards[shards[next_pos]], next_offset):
                    next_offset = offset + 1
                    yield (next_pos, offset), utt, wav, text
                next_pos, next_offset = next_pos + 1, 0

        def add(sample):
            """Add one sample to the batch; -> a finished batch (dict) or None."""
            nonlocal batch, batch_items
            item = self._item(sample[1], sample[2], sample[3])
            ms = item["speech"].shape[0] * self.frontend.output_frame_ms  # model-input frames -> ms
            longest = max([ms] + [b["speech"].shape[0] * self.frontend.output_frame_ms for b in batch_items])
            finished = None
            if batch_items and (len(batch_items) + 1) * longest > self.batch_ms:
                finished = emit()
                batch, batch_items = [], []
            batch.append(sample)
            batch_items.append(item)
            return finished

        for sample in reader():
            buffer.append(sample)
            if len(buffer) < self.buffer_size:
                continue
            chosen = buffer.pop(int(rng.integers(len(buffer))))
            finished = add(chosen)
            if finished is not None:
                # the position excludes `chosen` from the buffer and holds it in the new batch
                finished["stream_state"] = position()
                yield finished
        while buffer:
            chosen = buffer.pop(int(rng.integers(len(buffer))))
            finished = add(chosen)
            if finished is not None:
                finished["stream_state"] = position()
                yield finished
        if batch_items:
            out = emit()
            batch, batch_items = [], []
            out["stream_state"] = position(done=True)
            yield out


class StreamLoader:
    """The trainer's view of a :class:`ShardStream`: an iterable of batches with the batch
    sampler's bookkeeping (``epoch``, ``position``, ``advance``, ``set_epoch``, state dicts).

    ``advance()`` (called by the trainer after each consumed batch) keeps that batch's worker
    position; ``state_dict()`` is what the checkpoint saves. Under DDP every rank asks the others
    before each batch whether they have one too, and all stop the epoch when one has run out.
    """

    def __init__(self, stream: ShardStream, *, num_workers: int = 0, context=None, pin_memory: bool = False):
        self.stream, self.num_workers, self.context, self.pin_memory = stream, int(num_workers), context, pin_memory
        self.position = 0
        self._last: Optional[Dict[str, Any]] = None
        batches_per_s = 1000.0 / max(1, stream.batch_ms) / 0.8  # ~80% of the budget is filled
        self.estimated_batches = max(1, math.ceil(stream.total_seconds * batches_per_s / stream.world_size))
        if len(stream.shards) < stream.world_size * max(1, self.num_workers):
            logger.warning("%s: %d shards for %d rank(s) x %d loader worker(s): some get none (make smaller shards)",
                           stream.shard_list, len(stream.shards), stream.world_size, max(1, self.num_workers))

    @property
    def epoch(self) -> int:
        return self.stream.epoch

    def set_epoch(self, epoch: int) -> None:
        if int(epoch) != self.stream.epoch:
            self.stream.epoch, self.position = int(epoch), 0
            self.stream.worker_states, self.stream.worker_offset = {}, 0

    def advance(self, count: int = 1) -> None:
        self.position += count
        if self._last is not None:
            state = self._last
            self.stream.worker_states[state["worker"]] = state
            workers = max(1, self.num_workers)
            self.stream.worker_offset = (state["worker"] + 1) % workers

    def __len__(self) -> int:
        """Estimated batches of this rank per epoch (from the shards' seconds; progress only)."""
        return max(self.estimated_batches, self.position + 1)

    def remaining(self) -> int:
        return max(0, len(self) - self.position)

    def _agree(self, has_batch: bool) -> bool:
        if self.context is None or not self.context.is_distributed:
            return has_batch
        total = int(self.context.all_reduce_sum(torch.tensor([1.0 if has_batch else 0.0]))[0])
        return total == self.context.world_size

    def __iter__(self):
        loader = DataLoader(self.stream, batch_size=None, num_workers=self.num_workers, pin_memory=self.pin_memory,
                            generator=torch.Generator())
        iterator = iter(loader)
        while True:
            batch = next(iterator, None)
            if not self._agree(batch is not None):
                return
            self._last = batch.pop("stream_state")
            yield batch

    def state_dict(self) -> Dict[str, Any]:
        return {"epoch": self.stream.epoch, "position": self.position, "workers": dict(self.stream.worker_states),
                "worker_offset": self.stream.worker_offset, "num_workers": self.num_workers,
                "world_size": self.stream.world_size, "seed": self.stream.seed, "shards": len(self.stream.shards),
                "batch_ms": self.stream.batch_ms, "buffer_size": self.stream.buffer_size}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.stream.epoch, self.position = int(state["epoch"]), int(state["position"])
        same = all(state.get(key) == value for key, value in (
            ("num_workers", self.num_workers), ("world_size", self.stream.world_size), ("seed", self.stream.seed),
            ("shards", len(self.stream.shards)), ("batch_ms", self.stream.batch_ms),
            ("buffer_size", self.stream.buffer_size)))
        if not same and self.position:
            logger.warning("shard stream: workers, ranks, seed, shards or batching changed since the checkpoint; "
                           "epoch %d restarts from its first batch", self.stream.epoch)
            self.position, self.stream.worker_states, self.stream.worker_offset = 0, {}, 0
            return
        self.stream.worker_states = {int(k): v for k, v in (state.get("workers") or {}).items()}
        self.stream.worker_offset = int(state.get("worker_offset", 0))
        logger.info("shard stream resumes epoch %d after batch %d: %s", self.stream.epoch, self.position,
                    "; ".join(f"worker {w}: shard {s['next'][0]} offset {s['next'][1]}, {len(s['buffer'])} buffered"
                              for w, s in sorted(self.stream.worker_states.items())))


def build_shard_stream(shard_list, tokenizer, cmvn_file, frontend_conf: dict, dataset_conf: dict, *, seed: int = 0,
                       rank: int = 0, world_size: int = 1) -> ShardStream:
    """ShardStream from the config blocks: ``dataset_conf.batch_bins`` is milliseconds here and
    ``dataset_conf.bucket_size`` the shuffle buffer (utterances)."""
    frontend = WavFrontend(frontend_conf, cmvn_file, source="the training config")
    return ShardStream(shard_list, tokenizer, frontend, int(dataset_conf["batch_bins"]),
                       buffer_size=int(dataset_conf["bucket_size"]) if dataset_conf.get("shuffle", True) else 1,
                       seed=seed, rank=rank, world_size=world_size)


__all__ = [
    "SHARD_LIST", "ShardError", "ShardStream", "StreamLoader", "build_shard_stream", "iter_shard", "read_shard_list",
    "write_shards",
]
