"""Batch decoding with a loaded model dir: audio or fbank features -> hypotheses -> 1best_recog/.

Per utterance: audio (float in [-1, 1], mono, resampled to the model rate) -> the model dir's
:class:`~funasr_lite.frontend.wav_frontend.WavFrontend` (Kaldi fbank with dither 0 -> LFR -> CMVN)
-> encoder -> CIF predictor -> decoder -> greedy or beam search -> token ids -> tokens
(``<blank>``, ``<s>``, ``</s>`` dropped) -> text, score, CIF timestamps. ``feats.scp`` input
holds raw fbank (T, n_mels) and enters the frontend at LFR (``WavFrontend.lfr_cmvn``); a data
dir's ``fbank.json`` must match the model's frontend_conf (:func:`items_from_data_dir`).

Bad inputs (skip, name, count): with a :class:`~funasr_lite.utils.failures.FailureLog`,
:meth:`Speech2Text.decode` skips an utterance it cannot use (unreadable or undecodable audio or
features, longer than ``max_frames``, ...), records it (key, source, reason) and decodes the
rest; :func:`decode_to_dir` writes the list to ``1best_recog/failed``. Without one, the first
such utterance raises :class:`ItemError` (a DecodeError naming it). Model errors stay fatal.

An attention encoder-decoder (config ``model: Conformer``), and ``ctc_greedy`` for any model
with a CTC head, decode through :mod:`funasr_lite.decode.aed_search` instead of the CIF path
(greedy = attention greedy, beam = attention beam search + CTC prefix + LM); their timestamps
come from aligning the hypothesis to the CTC output.

Parallel jobs are Kaldi's: ``utils/split_data.sh`` splits a data dir into ``split<N>/<J>``, each
job decodes one part as a plain data dir, and :func:`funasr_lite.inference.writers.merge_split_dirs`
merges the parts by their keys.

Batching: inputs are read ``bucket_size`` at a time, sorted by length (longest first) and cut
into batches of at most ``batch_bins`` padded model-input frames (B x the longest T' after
LFR, as training's ``dataset_conf.batch_bins``). Padding does not change a result: the model
masks it, and LFR/CMVN run per utterance before padding.

Long utterances: one longer than ``batch_bins`` frames is decoded alone (a batch of one); one
longer than ``max_frames`` is refused with its key and length named (ItemError ``too_long``,
before the model sees it): self-attention memory is quadratic in length, so hour-long audio would run out
of memory instead. A batch thus never holds more than max(batch_bins, max_frames) padded
frames. Split long recordings (e.g. by VAD) or raise max_frames.

Empty input: audio with no samples, or shorter than one analysis window, has no frames; its
hypothesis is empty (text "", no tokens, score 0, no timestamps). Silent audio goes through the
model like any other (a trained model predicts no tokens for it).

Timing (``rtf``): ``compute_s`` of an utterance = its own read + feature time + its share, by
model-input frames, of its batch's model time; ``audio_s`` = samples / rate for audio input,
frames x frame shift for feats input.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import kaldiio
import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from funasr_lite.data.batch_sampler import split_into_batches
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.hotwords import SEG_DICT_NAME, HotwordError, hotword_ids, read_seg_dict
from funasr_lite.decode.timestamps import cif_timestamps
from funasr_lite.frontend.audio import AudioEmptyError, AudioError
from funasr_lite.frontend.fbank import WaveformTooShortError
from funasr_lite.frontend.wav_frontend import FeatureOptionsError, WavFrontend, check_feature_options
from funasr_lite.inference.model_dir import LoadedModel, timestamp_shift_frames
from funasr_lite.models.uniasr.model import MODES as UNIASR_PASSES
from funasr_lite.inference.writers import merge_1best_recog, write_1best_recog
from funasr_lite.utils.failures import FailureLog
from funasr_lite.utils.progress import peak_rss_mb, progress

logger = logging.getLogger(__name__)

DECODE_MODES = ("greedy", "beam", "ctc_greedy")
# model: the model's own timestamp signals (Paraformer: its CIF fires, 60 ms; BiCifParaformer: its
# upsampled head, 20 ms); cif: the CIF fires of any Paraformer (to compare a BiCif model's two).
TIMESTAMP_SOURCES = ("model", "cif")
UNIASR_MODES = tuple(UNIASR_PASSES)  # a UniASR model's decoding_model (FunASR's names: fast, normal, offline)


class DecodeError(RuntimeError):
    """An input or option that decoding cannot use; the message names the utterance or option."""


class ItemError(DecodeError):
    """One utterance that cannot be decoded: ``key``, ``source`` (path, pipe, ark spec), a short
    ``category`` (``corrupt``, ``missing``, ``too_long``, ...) and the ``detail``."""

    def __init__(self, key: str, source: str, category: str, detail: str, message: Optional[str] = None):
        self.key, self.source, self.category, self.detail = key, source, category, detail
        super().__init__(message or f"utterance {key}: {detail}")


@dataclass
class DecodeOptions:
    """How to decode. Frames are model-input frames (after LFR)."""

    decode_mode: str = "greedy"  # greedy | beam | ctc_greedy (CTC best path; decode.aed_search)
    batch_bins: int = 20000  # padded frames per batch (batch size x longest utterance)
    max_frames: int = 6000  # longer utterances are refused (6000 LFR frames = 6 min)
    bucket_size: int = 256  # utterances read, sorted by length and batched together
    beam_size: int = 10
    ctc_weight: float = 0.0  # beam only: CTC prefix score weight (the model needs a CTC head)
    lm_weight: float = 0.0  # beam only: LM shallow-fusion weight (needs lm_dir)
    length_bonus: float = 0.0  # beam only: added per output token
    lm_dir: Optional[str] = None  # an LM exp dir holding config.yaml and model.avg<N>.pt (or model.pt)
    timestamps: bool = True
    timestamp_source: str = "model"  # model | cif (TIMESTAMP_SOURCES)
    # Hotwords (SeacoParaformer): a string of words, a .txt file, a URL or a list (data/hotwords.py);
    # nfilter: attention-score filtering keeps this many (0: all); seaco_weight: 1 = FunASR's switch.
    hotword: Optional[Any] = None
    nfilter: int = 50
    seaco_weight: float = 1.0
    # Hotword boosting in beam search, for any model (decode/context_graph.py): added to a hypothesis
    # per token of each complete hotword; 0 = off (then only a SeACo/Contextual model takes hotwords).
    hotword_score: float = 0.0
    hotword_topk: int = 0  # > 0: a hotword's next token is searched only among the decoder's top k there
    # UniASR (FunASR's decoding_model): fast = pass 1, normal = pass 2, offline = pass 2 at its second
    # chunk configuration; the search is FunASR's beam search (greedy = beam 1), bounded at
    # int(CIF count) + token_num_relax tokens.
    decoding_model: str = "normal"
    token_num_relax: int = 5

    def check(self) -> None:
        if self.decoding_model not in UNIASR_MODES:
            raise DecodeError(f"decoding_model must be one of {', '.join(UNIASR_MODES)}, got {self.decoding_model!r}")
        if self.token_num_relax < 0:
            raise DecodeError(f"token_num_relax must be >= 0, got {self.token_num_relax}")
        if self.nfilter < 0:
            raise DecodeError(f"nfilter must be >= 0, got {self.nfilter}")
        if not 0.0 < self.seaco_weight <= 1.0:
            raise DecodeError(f"seaco_weight must be in (0, 1], got {self.seaco_weight}")
        if self.timestamp_source not in TIMESTAMP_SOURCES:
            raise DecodeError(f"timestamp_source must be one of {', '.join(TIMESTAMP_SOURCES)}, "
                              f"got {self.timestamp_source!r}")
        if self.decode_mode not in DECODE_MODES:
            raise DecodeError(f"decode_mode must be one of {', '.join(DECODE_MODES)}, got {self.decode_mode!r}")
        for name in ("batch_bins", "max_frames", "bucket_size", "beam_size"):
            if getattr(self, name) < 1:
                raise DecodeError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.decode_mode in ("greedy", "ctc_greedy"):
            for name in ("ctc_weight", "lm_weight", "length_bonus"):
                if getattr(self, name) != 0.0:
                    raise DecodeError(f"{name}={getattr(self, name)} needs decode_mode beam")
        if self.ctc_weight < 0:
            raise DecodeError(f"ctc_weight must be >= 0, got {self.ctc_weight}")
        if self.hotword_score < 0:
            raise DecodeError(f"hotword_score must be >= 0, got {self.hotword_score}")
        if self.hotword_topk < 0:
            raise DecodeError(f"hotword_topk must be >= 0, got {self.hotword_topk}")
        if self.hotword_score > 0 and self.decode_mode != "beam":
            raise DecodeError(f"hotword_score={self.hotword_score} boosts hotwords in beam search: needs decode_mode beam")
        if self.lm_weight != 0.0 and not self.lm_dir:
            raise DecodeError(f"lm_weight={self.lm_weight} needs an lm_dir")


@dataclass
class InputItem:
    """One utterance to decode, not yet read.

    kind: "audio" (value: a file path or a ``cmd |`` pipe), "feats" (value: a kaldiio
    ``ark:offset`` spec of raw fbank), "waveform" (waveform: (N,) float32 at sample_rate), or
    "failed" (an input already found unusable: value names it, error says why, category counts it).
    channel: for "audio", the 0-based channel to keep; None averages the channels (FunASR's default).
    """

    key: str
    kind: str
    value: str = ""
    waveform: Optional[np.ndarray] = None
    sample_rate: Optional[int] = None
    channel: Optional[int] = None
    error: str = ""
    category: str = "unreadable"


@dataclass
class PreparedUtterance:
    """An utterance read and turned into model input: (T', D) float32, or None (no frames)."""

    index: int
    key: str
    model_input: Optional[torch.Tensor]
    audio_s: float
    prepare_s: float

    @property
    def num_frames(self) -> int:
        return 0 if self.model_input is None else int(self.model_input.shape[0])


# ---------------------------------------------------------------- input lists


def unique_keys(keys: Sequence[str]) -> List[str]:
    """Keep keys as they are, except a repeated key gets ``_2``, ``_3``, ... (with a warning)."""
    seen: Dict[str, int] = {}
    used = set(keys)
    out = []
    for key in keys:
        if key in seen:
            seen[key] += 1
            new_key = f"{key}_{seen[key]}"
            while new_key in used:
                seen[key] += 1
                new_key = f"{key}_{seen[key]}"
            logger.warning("input key %s repeats; this one is called %s", key, new_key)
            used.add(new_key)
            key = new_key
        else:
            seen[key] = 1
        out.append(key)
    return out


def key_of_path(path: str) -> str:
    """a/b/utt1.wav -> utt1 (FunASR's key for a file input); whitespace becomes '_'."""
    name = os.path.basename(path.rstrip("/")) or "utt"
    stem = os.path.splitext(name)[0] or name
    return "_".join(stem.split()) or "utt"


def items_from_wav_scp(wav_scp) -> List[InputItem]:
    return [InputItem(key, "audio", value) for key, value in read_kv(wav_scp).items()]


def items_from_feats_scp(feats_scp) -> List[InputItem]:
    return [InputItem(key, "feats", value) for key, value in read_kv(feats_scp).items()]


def items_from_data_dir(data_dir, frontend: Optional[WavFrontend] = None) -> List[InputItem]:
    """A Kaldi data dir: feats.scp when present (raw fbank), else wav.scp.

    With ``frontend`` (the model's), stored features must have been made with its fbank options
    (``<data_dir>/fbank.json``); other options are a DecodeError naming both settings.
    """
    data_dir = os.fspath(data_dir)
    feats_scp = os.path.join(data_dir, "feats.scp")
    if os.path.isfile(feats_scp):
        if frontend is not None:
            try:
                check_feature_options(data_dir, frontend.fbank_options(), frontend.source)
            except FeatureOptionsError as e:
                raise DecodeError(str(e)) from None
        return items_from_feats_scp(feats_scp)
    wav_scp = os.path.join(data_dir, "wav.scp")
    if os.path.isfile(os.path.join(data_dir, "segments")):
        raise DecodeError(f"{data_dir}: has segments but no feats.scp; compute features first (make_fbank.sh)")
    if os.path.isfile(wav_scp):
        return items_from_wav_scp(wav_scp)
    raise DecodeError(f"{data_dir}: neither feats.scp nor wav.scp")


def item_waveform(frontend: WavFrontend, item: InputItem) -> np.ndarray:
    """An audio or waveform item's (N,) float32 samples at the frontend's rate (resampled, the
    chosen channel or the mean); no samples: an empty array. ItemError for a failed item, a file
    that cannot be read, or another kind (stored features have no samples)."""
    if item.kind == "failed":
        raise ItemError(item.key, item.value, item.category, item.error)
    if item.kind == "waveform":
        return frontend.resample(np.asarray(item.waveform, dtype=np.float32), item.sample_rate)
    if item.kind != "audio":
        raise ItemError(item.key, item.value, "unknown_kind", f"unknown input kind {item.kind!r}")
    try:
        return frontend.read_audio(item.value, resample=True, channel=item.channel)[0]
    except AudioEmptyError:
        return np.zeros(0, dtype=np.float32)
    except AudioError as e:
        raise ItemError(item.key, item.value, e.reason, e.detail, f"utterance {item.key}: {e}") from None


def items_from_wav_files(paths: Sequence[str]) -> List[InputItem]:
    keys = unique_keys([key_of_path(p) for p in paths])
    return [InputItem(key, "audio", os.fspath(path)) for key, path in zip(keys, paths)]


# ---------------------------------------------------------------- LM


def lm_weights_path(lm_dir, lm_config: Dict) -> str:
    """The weights of an LM dir: ``model.avg{N}.pt`` when its config.yaml comes from
    ``funasr_lite.bin.train_lm`` (N = its ``train_conf.avg_nbest_model``: the training engine's
    final-model rule), else ``model.pt`` (a FunASR or hand-made LM dir)."""
    num_avg = (lm_config.get("train_conf") or {}).get("avg_nbest_model")
    name = f"model.avg{int(num_avg)}.pt" if num_avg else "model.pt"
    return os.path.join(os.fspath(lm_dir), name)


def load_lm_dir(lm_dir, token_list: Sequence[str], device) -> torch.nn.Module:
    """The LM of ``<lm_dir>/config.yaml`` + its weights (:func:`lm_weights_path`); its vocabulary
    must be the ASR token list."""
    from funasr_lite.models.lm import load_lm

    config_path = os.path.join(os.fspath(lm_dir), "config.yaml")
    if not os.path.isfile(config_path):
        raise DecodeError(f"{lm_dir}: no config.yaml (an LM exp dir holds config.yaml and model.avg<N>.pt)")
    from funasr_lite.utils.config import load_yaml

    lm_config = load_yaml(config_path)
    lm_tokens = lm_config.get("token_list")
    if isinstance(lm_tokens, str) and os.path.isfile(lm_tokens):
        from funasr_lite.data.tokenizer import read_token_list

        lm_tokens = read_token_list(lm_tokens)
    if isinstance(lm_tokens, list) and list(lm_tokens) != list(token_list):
        raise DecodeError(
            f"{config_path}: the LM's token list ({len(lm_tokens)} tokens) differs from the ASR model's "
            f"({len(token_list)} tokens); train the LM on the model's tokens.txt"
        )
    weights = lm_weights_path(lm_dir, lm_config)
    if not os.path.isfile(weights):
        raise DecodeError(f"{lm_dir}: no {os.path.basename(weights)} (the LM's weights; did its training finish?)")
    lm = load_lm(config_path, model_path=weights, device=str(device))
    if getattr(lm, "vocab_size", len(token_list)) != len(token_list):
        raise DecodeError(f"{config_path}: LM vocab_size {lm.vocab_size} but the ASR model has {len(token_list)} tokens")
    return lm


# ---------------------------------------------------------------- decoding


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _BatchOutput:
    token_ids: List[List[int]]
    scores: List[float]
    alphas: List[torch.Tensor]
    peaks: List[torch.Tensor]
    extra: List[Dict] = field(default_factory=list)


class Speech2Text:
    """Decode utterances with a :class:`LoadedModel` (see the module docstring)."""

    def __init__(self, loaded: LoadedModel, options: Optional[DecodeOptions] = None):
        self.loaded = loaded
        self.options = options or DecodeOptions()
        self.options.check()
        self.model = loaded.model
        self.device = loaded.device
        self.lm = None
        if self.options.decode_mode == "beam":
            if self.options.ctc_weight > 0 and getattr(self.model, "ctc", None) is None:
                raise DecodeError(
                    f"ctc_weight={self.options.ctc_weight} but {loaded.files.model_dir} has no CTC head "
                    "(it was trained with ctc_weight 0)"
                )
            if self.options.lm_weight != 0.0:
                self.lm = load_lm_dir(self.options.lm_dir, loaded.token_list, self.device)
            elif self.options.lm_dir:
                logger.warning("lm_dir %s is unused: lm_weight is 0", self.options.lm_dir)
        elif self.options.lm_dir:
            logger.warning("lm_dir %s is unused: greedy decoding", self.options.lm_dir)
        if getattr(self.model, "uniasr", False):
            if self.options.decode_mode not in ("greedy", "beam") or self.options.ctc_weight or self.options.lm_weight:
                raise DecodeError(f"{loaded.files.model_dir} is a UniASR model: decode_mode greedy (beam 1) or beam, "
                                  "no CTC or LM")
            self.options.timestamps = False  # FunASR's UniASR gives none
        if getattr(self.model, "streaming", False) and self.options.decode_mode != "greedy":
            raise DecodeError(f"{loaded.files.model_dir} is a streaming model ({loaded.config.get('model')}): "
                              f"decode_mode greedy only, got {self.options.decode_mode}")
        if self.options.decode_mode == "ctc_greedy" and getattr(self.model, "ctc", None) is None:
            raise DecodeError(f"decode_mode ctc_greedy but {loaded.files.model_dir} has no CTC head")
        if self.options.timestamps and getattr(self.model, "autoregressive", False) and self.model.ctc is None:
            logger.warning("%s has no CTC head to align hypotheses with: no timestamps", loaded.files.model_dir)
            self.options.timestamps = False
        self._cif_timestamps = self.options.timestamp_source == "cif"
        self._timestamp_frame_ms = loaded.timestamp_frame_ms
        self._timestamp_shift_frames = loaded.timestamp_shift_frames
        if self._cif_timestamps:
            if not hasattr(self.model, "timestamp_signals"):
                raise DecodeError("timestamp_source cif needs a Paraformer on the PyTorch backend "
                                  f"({loaded.files.model_dir})")
            self._timestamp_frame_ms = loaded.encoder_frame_ms
            self._timestamp_shift_frames = timestamp_shift_frames(loaded.config, loaded.files.config, "cif")
        self.context, self.boost = self.hotword_context(self.options.hotword)
        self.frontend = loaded.frontend
        self._dropped_ids = {self.model.blank_id, self.model.sos, self.model.eos}
        self._feats_handles: Dict[str, object] = {}

    # ------------------------------------------------------------ hotwords
    def hotword_context(self, spec):
        """(the model's decoding context, the beam search's ContextGraph) for the hotwords of ``spec``
        (data/hotwords.py); None for what does not apply: the context for a model without a bias
        branch, the graph without ``hotword_score``."""
        if spec is None:
            return None, None
        # Beside am.mvn (where FunASR looks), else in the model dir (a training exp dir's, whose
        # am.mvn is the data dir's).
        seg_dict = None
        for folder in (os.path.dirname(self.loaded.files.cmvn), self.loaded.files.model_dir):
            seg_dict_path = os.path.join(folder, SEG_DICT_NAME)
            if os.path.isfile(seg_dict_path):
                seg_dict = read_seg_dict(seg_dict_path)
                break
        try:
            words, ids = hotword_ids(spec, self.loaded.tokenizer, self.model.sos, seg_dict)
            if not ids:
                return None, None
            takes_hotwords = getattr(self.model, "takes_hotwords", False)
            if not takes_hotwords and self.options.hotword_score <= 0:
                raise DecodeError(f"{self.loaded.files.model_dir}: {type(self.model).__name__} takes no hotwords "
                                  "(SeacoParaformer does); to boost them in beam search, give decode_mode beam "
                                  "and hotword_score > 0")
        except HotwordError as e:
            raise DecodeError(str(e)) from None
        logger.info("%d hotwords (and <s>): %s", len(words) - 1, " ".join(words[:-1][:20]) +
                    (" ..." if len(words) > 21 else ""))
        graph = None
        if self.options.hotword_score > 0:
            if getattr(self.model, "uniasr", False) or getattr(self.model, "autoregressive", False):
                raise DecodeError(f"{self.loaded.files.model_dir}: hotword_score boosts hotwords in the Paraformer "
                                  f"beam search; {type(self.model).__name__} decodes with its own search")
            from funasr_lite.decode.context_graph import ContextGraphError, graph_of_words

            # Each hotword as the model's transcripts are tokenized, not FunASR's whole-word lookup of
            # the bias branch; the last of ``words`` is <s>.
            try:
                graph, skipped = graph_of_words(words[:-1], self.loaded.tokenizer, self.options.hotword_score)
            except ContextGraphError as e:
                raise DecodeError(str(e)) from None
            if skipped:
                logger.warning("%d of %d hotwords hold tokens outside the vocabulary: not boosted",
                               skipped, len(words) - 1)
        context = (self.model.hotword_context(ids, self.options.nfilter, self.options.seaco_weight)
                   if takes_hotwords else None)
        return context, graph

    @contextlib.contextmanager
    def using_hotwords(self, spec):
        """Decode with the hotwords of ``spec`` inside the ``with`` block (the options' outside it)."""
        previous = self.context, self.boost
        self.context, self.boost = self.hotword_context(spec)
        try:
            yield self
        finally:
            self.context, self.boost = previous

    # ------------------------------------------------------------ features
    def prepare(self, index: int, item: InputItem) -> PreparedUtterance:
        """Read one input and compute its model input (timed); ItemError if it cannot be used."""
        start = time.perf_counter()
        fbank: Optional[torch.Tensor]
        if item.kind == "failed":
            raise ItemError(item.key, item.value, item.category, item.error)
        if item.kind == "feats":
            try:
                matrix = np.array(kaldiio.load_mat(item.value, fd_dict=self._feats_handles), dtype=np.float32)
            except Exception as e:  # kaldiio raises many types for bad offsets/files
                raise ItemError(item.key, item.value, "unreadable_features", f"cannot read features {item.value}: {e}") from None
            if matrix.ndim != 2 or matrix.shape[1] != self.frontend.n_mels:
                raise ItemError(
                    item.key, item.value, "wrong_feature_dim",
                    f"features {item.value} have shape {matrix.shape}, but the model "
                    f"({self.loaded.files.config}) expects (T, {self.frontend.n_mels}) raw fbank"
                )
            fbank = torch.from_numpy(matrix) if matrix.shape[0] > 0 else None
            audio_s = matrix.shape[0] * self.frontend.frame_shift_ms / 1000.0
        else:
            waveform = item_waveform(self.frontend, item)
            audio_s = len(waveform) / float(self.frontend.sample_rate)
            try:
                fbank = self.frontend.fbank(waveform)
            except WaveformTooShortError:
                fbank = None
            except ValueError as e:  # e.g. int16 values passed as floats
                raise ItemError(item.key, item.value, "bad_samples", str(e)) from None
        model_input = self.frontend.lfr_cmvn(fbank) if fbank is not None else None
        if model_input is not None and model_input.shape[0] > self.options.max_frames:
            frame_s = self.frontend.output_frame_ms / 1000
            detail = (f"too long: {model_input.shape[0]} frames ({audio_s:.1f} s) > max_frames "
                      f"{self.options.max_frames} ({self.options.max_frames * frame_s:.0f} s); split it (e.g. by VAD) "
                      "or raise max_frames")
            raise ItemError(item.key, item.value, "too_long", detail, f"utterance {item.key} is {detail}")
        if model_input is None:
            logger.warning("utterance %s has no frames (%.3f s of audio): empty hypothesis", item.key, audio_s)
        return PreparedUtterance(index, item.key, model_input, audio_s, time.perf_counter() - start)

    # ------------------------------------------------------------ model
    def _search(self, feats: torch.Tensor, lengths: torch.Tensor) -> _BatchOutput:
        """(B, T', D) padded model input -> per-utterance token ids, scores, alphas, peaks."""
        model = self.model
        if getattr(model, "uniasr", False):  # FunASR's UniASR: one utterance at a time, its beam search
            options = self.options
            beam = options.beam_size if options.decode_mode == "beam" else 1
            ids, scores = [], []
            for index in range(feats.size(0)):
                length = int(lengths[index])
                hyps = model.decode(feats[index:index + 1, :length], lengths[index:index + 1],
                                    options.decoding_model, beam, options.token_num_relax)
                ids.append([t for t in hyps[0].yseq[1:-1] if t != model.blank_id] if hyps else [])
                scores.append(float(hyps[0].score) if hyps else 0.0)
            none = [None] * len(ids)
            return _BatchOutput(ids, scores, none, none)
        if self.options.decode_mode == "ctc_greedy" or getattr(model, "autoregressive", False):
            from funasr_lite.decode.aed_search import search_batch

            options = self.options
            outputs = search_batch(
                model, feats, lengths, options.decode_mode, self.lm, beam_size=options.beam_size,
                ctc_weight=options.ctc_weight, lm_weight=options.lm_weight, length_bonus=options.length_bonus,
                frame_ms=self.loaded.encoder_frame_ms if options.timestamps else None,
            )
            none = [None] * len(outputs)  # no CIF alphas/peaks: timestamps come with the outputs
            return _BatchOutput([o["token_ids"] for o in outputs], [o["score"] for o in outputs], none, none,
                                [{k: o[k] for k in ("scores", "timestamp") if k in o} for o in outputs])
        if self.options.decode_mode == "greedy":
            extra = {"timestamp_source": "cif"} if self._cif_timestamps else {}  # the ONNX model takes none
            if self.context is not None:
                extra["context"] = self.context
            outputs = model.decode_greedy(feats, lengths, **extra)
            return _BatchOutput(
                [o["token_ids"] for o in outputs], [o["score"] for o in outputs],
                [o["alphas"] for o in outputs], [o["peaks"] for o in outputs],
            )
        from funasr_lite.decode.beam_search import beam_search_batch

        with torch.no_grad():
            encoder_out, encoder_lengths = model.encode(feats, lengths)
            embeds, token_num, alphas, peaks = model.calc_predictor(encoder_out, encoder_lengths)
            token_lengths = token_num.round().long()
            if embeds.size(1) > 0:
                am_logp = model.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths,
                                                  context=self.context)
            else:
                am_logp = encoder_out.new_zeros(feats.size(0), 0, model.vocab_size)
            ctc_logp = model.ctc.log_softmax(encoder_out) if self.options.ctc_weight > 0 else None
            hyps = beam_search_batch(
                am_logp, token_lengths, ctc_logp, encoder_lengths if ctc_logp is not None else None,
                lm=self.lm, beam_size=self.options.beam_size, ctc_weight=self.options.ctc_weight,
                lm_weight=self.options.lm_weight, length_bonus=self.options.length_bonus, nbest=1,
                blank_id=model.blank_id, sos_id=model.sos, eos_id=model.eos, context=self.boost,
                context_topk=self.options.hotword_topk,
            )
            signals = model.timestamp_signals(encoder_out, encoder_lengths, token_lengths, alphas, peaks,
                                              source=self.options.timestamp_source)
        return _BatchOutput(
            [[t for t in h[0].token_ids if t not in self._dropped_ids] for h in hyps],
            [h[0].score for h in hyps],
            [alphas_i for alphas_i, _ in signals],
            [peaks_i for _, peaks_i in signals],
            [{"scores": dict(h[0].scores)} for h in hyps],
        )

    def _result(self, utt: PreparedUtterance, token_ids: List[int], score: float, alphas, peaks,
                compute_s: float) -> Dict:
        tokens = self.loaded.tokenizer.ids2tokens(token_ids)
        result = {
            "key": utt.key,
            "text": self.loaded.tokenizer.tokens2text(tokens),
            "token": tokens,
            "token_int": list(token_ids),
            "score": float(score),
            "audio_s": utt.audio_s,
            "compute_s": compute_s,
        }
        if self.options.timestamps:
            result["timestamp"] = (
                cif_timestamps(alphas, peaks, tokens, frame_ms=self._timestamp_frame_ms,
                               time_shift_frames=self._timestamp_shift_frames)
                if tokens and alphas is not None else []
            )
        return result

    def decode_batch(self, utts: Sequence[PreparedUtterance]) -> List[Dict]:
        """Decode prepared utterances together (one padded batch); results in the same order."""
        results: List[Optional[Dict]] = [None] * len(utts)
        voiced = [i for i, u in enumerate(utts) if u.model_input is not None]
        for i, utt in enumerate(utts):
            if utt.model_input is None:
                results[i] = self._result(utt, [], 0.0, None, None, utt.prepare_s)
        if voiced:
            start = time.perf_counter()
            feats = pad_sequence([utts[i].model_input for i in voiced], batch_first=True).to(self.device)
            lengths = torch.tensor([utts[i].num_frames for i in voiced], dtype=torch.long, device=self.device)
            output = self._search(feats, lengths)
            _sync(self.device)
            model_s = time.perf_counter() - start
            total_frames = float(lengths.sum())
            for j, i in enumerate(voiced):
                share = model_s * utts[i].num_frames / total_frames
                results[i] = self._result(utts[i], output.token_ids[j], output.scores[j], output.alphas[j],
                                          output.peaks[j], utts[i].prepare_s + share)
                if output.extra:
                    results[i].update(output.extra[j])
        return results  # type: ignore[return-value]

    def _batches(self, utts: List[PreparedUtterance]) -> List[List[PreparedUtterance]]:
        """Longest first, cut by batch_bins (a longer utterance forms its own batch)."""
        ordered = sorted(utts, key=lambda u: (-u.num_frames, u.index))
        lengths = np.array([max(u.num_frames, 1) for u in ordered])
        return [[ordered[i] for i in batch]
                for batch in split_into_batches(range(len(ordered)), lengths, self.options.batch_bins)]

    def decode(self, items: Sequence[InputItem], desc: str = "decode",
               failures: Optional[FailureLog] = None) -> List[Dict]:
        """Decode the items; results in input order (see the module docstring for batching).

        failures: None: the first unusable item raises ItemError. A FailureLog: unusable items are
        recorded there (it raises TooManyFailuresError past its max_failures) and left out of the
        results, which then hold only the decoded items, still in input order.
        """
        results: List[Optional[Dict]] = [None] * len(items)
        bar = progress(total=len(items), desc=desc, unit="utt")
        try:
            for bucket_start in range(0, len(items), self.options.bucket_size):
                bucket = []
                for index in range(bucket_start, min(bucket_start + self.options.bucket_size, len(items))):
                    try:
                        bucket.append(self.prepare(index, items[index]))
                    except ItemError as e:
                        if failures is None:
                            raise
                        failures.add(e.key, e.source or items[index].value, e.category, e.detail)
                        bar.update(1)
                for batch in self._batches(bucket):
                    for utt, result in zip(batch, self.decode_batch(batch)):
                        results[utt.index] = result
                    bar.update(len(batch))
        finally:
            bar.close()
            for handle in self._feats_handles.values():
                handle.close()
            self._feats_handles = {}
        return [result for result in results if result is not None]


def summarize(results: Sequence[Dict]) -> str:
    audio = sum(r.get("audio_s", 0.0) for r in results)
    compute = sum(r.get("compute_s", 0.0) for r in results)
    rtf = compute / audio if audio > 0 else float("nan")
    return f"{len(results)} utterances, {audio:.1f} s of audio in {compute:.2f} s (RTF {rtf:.4f})"


def decode_to_dir(speech2text: Speech2Text, items: Sequence[InputItem], output_dir,
                  failures: Optional[FailureLog] = None) -> List[Dict]:
    """Decode ``items`` and write ``<output_dir>/1best_recog/``; returns the results.

    failures: a FailureLog to skip and record unusable items (written to ``1best_recog/failed``,
    summarised as ``decoded N, failed M``); None: the first one raises ItemError, nothing written.
    """
    results = speech2text.decode(items, failures=failures)
    recog_dir = write_1best_recog(output_dir, results, failures.failures if failures is not None else ())
    logger.info("%s, peak RSS %.0f MB -> %s", summarize(results), peak_rss_mb(), recog_dir)
    if failures is not None:
        log = logger.warning if len(failures) else logger.info
        log("%s (%s)", failures.summary(len(results)),
            f"listed in {os.path.join(recog_dir, 'failed')}" if len(failures) else "nothing failed")
    return results


def split_job_dirs(split_dir) -> List[str]:
    """The job dirs ``<split_dir>/1 .. N`` of a ``split<N>`` dir made by utils/split_data.sh."""
    split_dir = os.fspath(split_dir).rstrip("/")
    match = re.fullmatch(r"split([1-9][0-9]*)", os.path.basename(split_dir))
    if not match:
        raise DecodeError(f"{split_dir}: not a split dir (utils/split_data.sh names it split<N>)")
    job_dirs = [os.path.join(split_dir, str(job)) for job in range(1, int(match.group(1)) + 1)]
    missing = [d for d in job_dirs if not os.path.isdir(d)]
    if missing:
        raise DecodeError(f"{split_dir}: missing job dir(s) {', '.join(missing)}; split the data again")
    return job_dirs


def merge_split_dirs(split_dir, output_dir) -> str:
    """Merge the jobs' ``<split_dir>/<J>/1best_recog`` into ``<output_dir>/1best_recog``.

    Each job must have decoded exactly the utterances of its part (the keys of its feats.scp, else
    wav.scp, as :func:`items_from_data_dir` reads them); a job that failed, or decoded something
    else, is named and nothing is written (:func:`funasr_lite.inference.writers.merge_1best_recog`).
    """
    job_dirs = split_job_dirs(split_dir)
    expected = [[item.key for item in items_from_data_dir(job_dir)] for job_dir in job_dirs]
    return merge_1best_recog(job_dirs, output_dir, expected)


__all__ = [
    "DecodeError", "DecodeOptions", "InputItem", "ItemError", "PreparedUtterance", "Speech2Text", "decode_to_dir",
    "items_from_data_dir", "items_from_feats_scp", "items_from_wav_files", "items_from_wav_scp", "key_of_path",
    "load_lm_dir", "merge_split_dirs", "split_job_dirs", "summarize", "unique_keys",
]
