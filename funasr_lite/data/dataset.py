"""Training/validation dataset over a Kaldi data dir with pre-computed fbank features.

Per utterance: raw fbank (T, n_mels) from ``feats.scp`` (kaldiio) -> LFR(m, n) -> CMVN
(``am.mvn``) -> (T', n_mels * m) float32, by the frontend decoding uses too
(``WavFrontend.lfr_cmvn``); text -> token ids. Lengths come from ``utt2num_frames`` so
filtering and batching never read a matrix. Built from a config (:func:`build_dataset`), the
data dir's ``fbank.json`` must match ``frontend_conf`` (features made with other options are
refused, naming both settings).

The utterance list is the intersection of ``feats.scp``, ``text`` and ``utt2num_frames``
(the leftovers are counted and logged), minus utterances with no tokens, fewer/more frames
than ``min_frames``/``max_frames`` or more tokens than ``max_tokens`` (frames are model-input
frames, i.e. after LFR). Characters missing from the token list become ``<unk>``; they are
counted and one example utterance is named once.

Unreadable features (skip, name, count): an utterance whose feature file is missing or shorter
than its ``feats.scp`` offset is dropped when the dataset is built (counted and logged with the
others, the first file named). One whose matrix cannot be read during an epoch (a corrupt ark)
does not end the epoch: ``dataset[i]`` logs a WARNING naming it and returns
``{"utt_id", "unreadable": reason}``, which :func:`funasr_lite.data.collate.collate_batch` leaves
out of the batch (listing it in ``batch["skipped_utts"]``); ``num_unreadable`` counts them in
this process. ``max_unreadable`` N makes the (N+1)-th fatal (0: any; None: no limit). A batch
whose utterances are all unreadable is an error (ValueError from collate_batch) naming them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import kaldiio
import numpy as np
import torch
from torch.utils.data import Dataset

from funasr_lite.data.datadir import read_kv
from funasr_lite.frontend.cmvn import CmvnError, read_am_mvn
from funasr_lite.frontend.lfr import lfr_length
from funasr_lite.frontend.wav_frontend import FeatureOptionsError, WavFrontend, check_feature_options
from funasr_lite.utils.config import ConfigError

logger = logging.getLogger(__name__)

# How many utterance ids a log line names as examples.
EXAMPLES_IN_LOG = 5
_UNREADABLE_REASON = "feature file missing or shorter than its feats.scp offset"


class DatasetError(ValueError):
    """A data dir that cannot be used as given; the message names the file (and utterance)."""


def _feature_file_problem(spec: str, file_sizes: Dict[str, int]) -> Optional[str]:
    """Why a feats.scp value (``ark_path:offset[slice]`` or a path) cannot be read, or None.

    Checks only that the file exists and reaches past the offset (no matrix is read)."""
    path, offset = spec, 0
    head, sep, tail = spec.rpartition(":")
    if sep and tail.split("[", 1)[0].isdigit():
        path, offset = head, int(tail.split("[", 1)[0])
    if path not in file_sizes:
        file_sizes[path] = os.path.getsize(path) if os.path.isfile(path) else -1
    if file_sizes[path] < 0:
        return f"{path}: no such file"
    if offset >= file_sizes[path]:
        return f"{path}: {file_sizes[path]} bytes, offset {offset} is past its end"
    return None


@dataclass
class FilterSummary:
    """What was dropped while building the utterance list, by reason -> utt ids."""

    kept: int = 0
    dropped: Dict[str, List[str]] = field(default_factory=dict)

    def drop(self, reason: str, utt_id: str) -> None:
        self.dropped.setdefault(reason, []).append(utt_id)

    def log(self, data_dir: str) -> None:
        for reason, utt_ids in self.dropped.items():
            logger.warning(
                "%s: dropped %d utterance(s): %s (e.g. %s)",
                data_dir,
                len(utt_ids),
                reason,
                ", ".join(utt_ids[:EXAMPLES_IN_LOG]),
            )
        logger.info("%s: %d utterances kept", data_dir, self.kept)


class AsrDataset(Dataset):
    """Utterances of a data dir as ``{"utt_id", "speech" (T', D) float32, "text" (L,) int64}``.

    Args:
        data_dir: Kaldi data dir with ``feats.scp``, ``text`` and ``utt2num_frames``.
        tokenizer: object with ``text2tokens``/``tokens2ids`` and ``token2id``/``unk_token``
            (``funasr_lite.data.tokenizer.CharTokenizer``).
        cmvn_file: ``am.mvn`` whose dim must equal ``n_mels * lfr_m``.
        lfr_m, lfr_n: LFR stacking (1, 1 = none).
        frontend: a :class:`WavFrontend` (frontend_conf + am.mvn) instead of cmvn_file/lfr_m/lfr_n:
            then n_mels is the config's and ``<data_dir>/fbank.json`` is checked against it.
        min_frames, max_frames: keep utterances with min_frames <= T' <= max_frames (after LFR).
        min_tokens, max_tokens: keep utterances with min_tokens <= L <= max_tokens (0 tokens never).
        max_unreadable: how many unreadable matrices an epoch may skip (module docstring).
        embeds: a file of the data dir (``embeds.scp``: utt -> Kaldi matrix of L x D, one row per
            token) whose matrices each item carries as ``"embed"`` (ParaformerBert's BERT
            embeddings); an utterance without one is dropped and counted; one whose row count is
            not its token count is unreadable (skipped, named, counted).
    """

    def __init__(
        self,
        data_dir,
        tokenizer,
        cmvn_file=None,
        lfr_m: int = 1,
        lfr_n: int = 1,
        min_frames: int = 1,
        max_frames: int = 1_000_000,
        min_tokens: int = 1,
        max_tokens: int = 1_000_000,
        check_feature_dim: bool = True,
        frontend: Optional[WavFrontend] = None,
        max_unreadable: Optional[int] = None,
        embeds: Optional[str] = None,
    ):
        self.data_dir = os.fspath(data_dir)
        self.tokenizer = tokenizer
        if frontend is not None:
            if frontend.cmvn_shift is None:
                raise DatasetError(f"{self.data_dir}: the frontend has no CMVN (am.mvn)")
            cmvn_file, lfr_m, lfr_n = frontend.cmvn_file, frontend.lfr_m, frontend.lfr_n
        elif cmvn_file is None:
            raise DatasetError(f"{self.data_dir}: give cmvn_file (am.mvn) or a frontend")
        self.cmvn_file = os.fspath(cmvn_file) if cmvn_file is not None else "CMVN"
        self.lfr_m, self.lfr_n = int(lfr_m), int(lfr_n)
        self.feats_scp = os.path.join(self.data_dir, "feats.scp")
        for name in ("feats.scp", "text", "utt2num_frames"):
            if not os.path.isfile(os.path.join(self.data_dir, name)):
                raise DatasetError(f"{self.data_dir}: missing {name} (make fbank features first)")
        feats = read_kv(self.feats_scp)
        summary = FilterSummary()
        file_sizes: Dict[str, int] = {}
        for utt_id, spec in list(feats.items()):
            problem = _feature_file_problem(spec, file_sizes)
            if problem is not None:
                if not summary.dropped.get(_UNREADABLE_REASON):
                    logger.warning("%s: utterance %s: feature file unreadable: %s", self.feats_scp, utt_id, problem)
                summary.drop(_UNREADABLE_REASON, utt_id)
                del feats[utt_id]
        self.max_unreadable = max_unreadable
        self.num_unreadable = 0
        texts = read_kv(os.path.join(self.data_dir, "text"), allow_empty_value=True)
        num_frames_path = os.path.join(self.data_dir, "utt2num_frames")
        num_frames: Dict[str, int] = {}
        for utt_id, value in read_kv(num_frames_path).items():
            try:
                num_frames[utt_id] = int(value)
            except ValueError:
                raise DatasetError(f"{num_frames_path}: utterance {utt_id!r} has a non-integer frame count {value!r}") from None

        if frontend is not None:
            try:
                check_feature_options(self.data_dir, frontend.fbank_options(), frontend.source)
            except FeatureOptionsError as e:
                raise DatasetError(str(e)) from None
            self.cmvn_shift, self.cmvn_scale = frontend.cmvn_shift, frontend.cmvn_scale
        else:
            self.cmvn_shift, self.cmvn_scale = read_am_mvn(self.cmvn_file)
        if check_feature_dim and feats:
            self._check_dims(feats, frontend)
        if frontend is None:  # no config given: n_mels is what the features and am.mvn say
            frontend = WavFrontend({"n_mels": max(1, self.feature_dim // self.lfr_m), "lfr_m": self.lfr_m,
                                    "lfr_n": self.lfr_n}, self.cmvn_file, cmvn=(self.cmvn_shift, self.cmvn_scale))
        self.frontend = frontend
        for utt_id in feats:
            if utt_id not in texts:
                summary.drop("in feats.scp but not in text", utt_id)
            elif utt_id not in num_frames:
                summary.drop("in feats.scp but not in utt2num_frames", utt_id)
        for utt_id in texts:
            if utt_id not in feats and utt_id not in summary.dropped.get(_UNREADABLE_REASON, ()):
                summary.drop("in text but not in feats.scp", utt_id)
        self.embeds_scp: Optional[str] = None
        embed_paths: Dict[str, str] = {}
        if embeds:
            self.embeds_scp = os.path.join(self.data_dir, embeds)
            if not os.path.isfile(self.embeds_scp):
                raise DatasetError(f"{self.data_dir}: missing {embeds} (dataset_conf.embeds: per-token embeddings)")
            embed_paths = read_kv(self.embeds_scp)
            for utt_id in list(feats):
                if utt_id in texts and utt_id in num_frames and utt_id not in embed_paths:
                    summary.drop(f"in feats.scp but not in {embeds}", utt_id)
                    del feats[utt_id]

        self.utt_ids: List[str] = []
        self.feat_paths: List[str] = []
        self.embed_paths: List[str] = []
        self.token_ids: List[np.ndarray] = []
        lengths: List[int] = []
        unknown_utts: List[str] = []
        unknown_total = 0
        token2id = self.tokenizer.token2id
        for utt_id, feat_path in feats.items():
            if utt_id not in texts or utt_id not in num_frames:
                continue
            tokens = self.tokenizer.text2tokens(texts[utt_id])
            unknown = sum(1 for token in tokens if token not in token2id)
            if unknown:
                unknown_total += unknown
                unknown_utts.append(utt_id)
            ids = np.asarray(self.tokenizer.tokens2ids(tokens), dtype=np.int64)
            frames = lfr_length(num_frames[utt_id], self.lfr_n)
            if ids.size == 0:
                summary.drop("no tokens in text", utt_id)
            elif ids.size < min_tokens:
                summary.drop(f"fewer than min_tokens={min_tokens} tokens", utt_id)
            elif ids.size > max_tokens:
                summary.drop(f"more than max_tokens={max_tokens} tokens", utt_id)
            elif frames < min_frames:
                summary.drop(f"shorter than min_frames={min_frames} frames (after LFR)", utt_id)
            elif frames > max_frames:
                summary.drop(f"longer than max_frames={max_frames} frames (after LFR)", utt_id)
            else:
                self.utt_ids.append(utt_id)
                self.feat_paths.append(feat_path)
                if embed_paths:
                    self.embed_paths.append(embed_paths[utt_id])
                self.token_ids.append(ids)
                lengths.append(frames)
        if unknown_utts:
            logger.warning(
                "%s/text: %d token(s) in %d utterance(s) are not in the token list; mapped to <unk> "
                "(e.g. utterance %s: %r)",
                self.data_dir,
                unknown_total,
                len(unknown_utts),
                unknown_utts[0],
                texts[unknown_utts[0]],
            )
        self.num_unknown_tokens = unknown_total
        summary.kept = len(self.utt_ids)
        summary.log(self.data_dir)
        self.filter_summary = summary
        if not self.utt_ids:
            raise DatasetError(f"{self.data_dir}: no usable utterances left (see the warnings above)")
        self.lengths = np.asarray(lengths, dtype=np.int64)  # model-input frames per utterance
        self.token_lengths = np.asarray([ids.size for ids in self.token_ids], dtype=np.int64)
        self._open_files: Dict[str, object] = {}
        self._open_files_pid = os.getpid()

    @property
    def feature_dim(self) -> int:
        return int(self.cmvn_shift.shape[0])

    def _check_dims(self, feats: Dict[str, str], frontend: Optional[WavFrontend]) -> None:
        """am.mvn must have n_mels * lfr_m dims, n_mels read from the first matrix of feats.scp
        (and equal to the frontend's n_mels when a frontend is given)."""
        first_utt, first_path = next(iter(feats.items()))
        try:
            first = kaldiio.load_mat(first_path)
        except Exception as e:  # kaldiio raises many types for bad paths/offsets
            raise DatasetError(f"{self.feats_scp}: cannot read utterance {first_utt} ({first_path}): {e}") from None
        if first.ndim != 2:
            raise DatasetError(f"{self.feats_scp}: utterance {first_utt} is not a (T, D) matrix (shape {first.shape})")
        n_mels = first.shape[1]
        if frontend is not None and n_mels != frontend.n_mels:
            raise DatasetError(
                f"{self.feats_scp}: utterance {first_utt} has {n_mels}-dim features but {frontend.source} "
                f"frontend_conf has n_mels={frontend.n_mels}; recompute the features with that config "
                f"(utils/make_fbank.sh --fbank-config {frontend.source})"
            )
        expected = n_mels * self.lfr_m
        if self.cmvn_shift.shape[0] != expected:
            raise DatasetError(
                f"CMVN dim mismatch: {self.cmvn_file} has {self.cmvn_shift.shape[0]} dims but features in "
                f"{self.feats_scp} are {n_mels}-dim and LFR stacks lfr_m={self.lfr_m} of them "
                f"({n_mels} * {self.lfr_m} = {expected}); recompute am.mvn with --lfr_m {self.lfr_m} "
                "or fix frontend_conf.lfr_m"
            )

    def __len__(self) -> int:
        return len(self.utt_ids)

    def load_features(self, index: int) -> torch.Tensor:
        """(T', n_mels * lfr_m) float32 model input of utterance ``index``."""
        if os.getpid() != self._open_files_pid:  # a DataLoader worker: do not share file handles
            self._open_files, self._open_files_pid = {}, os.getpid()
        utt_id = self.utt_ids[index]
        try:
            raw = np.array(kaldiio.load_mat(self.feat_paths[index], fd_dict=self._open_files), dtype=np.float32)
        except Exception as e:
            raise DatasetError(f"{self.feats_scp}: cannot read utterance {utt_id} ({self.feat_paths[index]}): {e}") from None
        if raw.ndim != 2 or raw.shape[1] * self.lfr_m != self.feature_dim:
            raise DatasetError(
                f"{self.feats_scp}: utterance {utt_id} has shape {raw.shape}; expected (T, {self.feature_dim // self.lfr_m})"
            )
        return self.frontend.lfr_cmvn(raw)

    def load_embed(self, index: int) -> torch.Tensor:
        """(L, D) float32 embeddings of utterance ``index``, one row per token."""
        utt_id = self.utt_ids[index]
        try:
            embed = np.array(kaldiio.load_mat(self.embed_paths[index], fd_dict=self._open_files), dtype=np.float32)
        except Exception as e:
            raise DatasetError(f"{self.embeds_scp}: cannot read utterance {utt_id} ({self.embed_paths[index]}): {e}") from None
        if embed.ndim != 2 or embed.shape[0] != self.token_ids[index].size:
            raise DatasetError(f"{self.embeds_scp}: utterance {utt_id} has embeddings of shape {embed.shape}; "
                               f"expected one row per token ({self.token_ids[index].size})")
        return torch.from_numpy(embed)

    def __getitem__(self, index: int) -> Dict[str, object]:
        try:
            speech = self.load_features(index)
            embed = self.load_embed(index) if self.embed_paths else None
        except DatasetError as e:
            self.num_unreadable += 1
            if self.max_unreadable is not None and self.num_unreadable > self.max_unreadable:
                raise DatasetError(f"{e}; more than max_unreadable={self.max_unreadable} unreadable "
                                   "utterance(s): stopping") from None
            logger.warning("%s: skipped (%d unreadable utterance(s) so far in this process)", e, self.num_unreadable)
            return {"utt_id": self.utt_ids[index], "unreadable": str(e)}
        item = {
            "utt_id": self.utt_ids[index],
            "speech": speech,
            "text": torch.from_numpy(self.token_ids[index]),
        }
        if embed is not None:
            item["embed"] = embed
        return item

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_open_files"] = {}  # file handles do not travel to worker processes
        return state


def build_dataset(data_dir, tokenizer, cmvn_file, frontend_conf: dict, dataset_conf: dict,
                  config_source: str = "the training config") -> AsrDataset:
    """AsrDataset from the config blocks: the frontend of ``frontend_conf`` + ``cmvn_file`` (whose
    fbank options the data dir's features must have), ``dataset_conf`` limits."""
    try:
        frontend = WavFrontend(frontend_conf, cmvn_file, source=config_source)
    except (CmvnError, ConfigError) as e:
        raise DatasetError(str(e)) from None
    return AsrDataset(
        data_dir,
        tokenizer,
        frontend=frontend,
        min_frames=int(dataset_conf.get("min_frames", 1)),
        max_frames=int(dataset_conf.get("max_frames", 1_000_000)),
        min_tokens=int(dataset_conf.get("min_tokens", 1)),
        max_tokens=int(dataset_conf.get("max_tokens", 1_000_000)),
        embeds=dataset_conf.get("embeds"),
    )


__all__ = ["AsrDataset", "DatasetError", "FilterSummary", "build_dataset"]
