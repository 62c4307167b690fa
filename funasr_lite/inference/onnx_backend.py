"""Our ONNX backend: decode an exported dir (funasr_lite.bin.export) with onnxruntime.

``load_onnx_model_dir(DIR, quantized=False, threads=1)`` returns a
:class:`~funasr_lite.inference.model_dir.LoadedModel` whose ``model`` is an :class:`OnnxParaformer`
(``decode_greedy`` as the PyTorch model's), so :class:`~funasr_lite.inference.speech2text.Speech2Text`
decodes it unchanged: the same frontend (WavFrontend: fbank, LFR, CMVN from am.mvn), the same
batching, token filtering, CIF timestamps and 1best_recog writers. Greedy decoding only (the
graph ends in the decoder's log-probabilities; beam search and LM fusion need the PyTorch path).

The dir is checked before any decoding, each problem named with its file:
``config.yaml``; ``model.onnx`` / ``model_quant.onnx`` (a readable ONNX model with the
``speech``/``speech_lengths`` -> ``logits``/``token_num`` interface and our metadata);
``tokens.json`` (its size must be the model's ``vocab_size`` and its digest the model's
``tokens_sha256``; a ``tokens.txt`` beside it must hold the same list); ``am.mvn`` (its dimension
must be n_mels * lfr_m of config.yaml and the model's input dimension, and its values the
``neg_mean``/``inv_stddev`` baked into the model for sherpa-onnx).

Timestamps: the CIF tensors ``alphas``, ``peaks``, ``alpha_lengths`` (BiCif: ``us_alphas``,
``us_cif_peak``, ``us_alpha_lengths``, metadata ``timestamp_outputs``) are named inside the graph
but are not all outputs of the file (see funasr_lite/export/onnx_export.py); with timestamps on,
the graph is loaded with ``onnx``, those names are added as outputs, and the session is built
from that in memory (the file is not changed). Load time and peak memory at load grow by about
one copy of the model; decoding speed does not change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from funasr_lite.data.tokenizer import TokenListError, build_tokenizer, read_token_list
from funasr_lite.frontend.cmvn import CmvnError, read_am_mvn
from funasr_lite.frontend.wav_frontend import WavFrontend
from funasr_lite.inference.model_dir import (
    CMVN_NAME,
    CONFIG_NAME,
    LoadedModel,
    ModelDirError,
    ModelFiles,
    read_model_config,
    resolve_frontend_conf,
    timestamp_shift_frames,
)
from funasr_lite.models.paraformer.onnx_graph import (
    CLIENT_OUTPUT_NAMES,
    EMBEDDER_INPUT_NAME,
    HOTWORD_INPUT_NAME,
    INPUT_NAMES,
    TIMESTAMP_OUTPUT_NAMES,
)
from funasr_lite.models.paraformer.seaco import HotwordContext, pad_hotwords

logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx")
# The files of an exported dir (written by funasr_lite/export/onnx_export.py).
ONNX_NAME = "model.onnx"
QUANT_ONNX_NAME = "model_quant.onnx"
EMBEDDER_ONNX_NAME = "model_eb.onnx"  # hotword models: FunASR's hotword embedder
QUANT_EMBEDDER_ONNX_NAME = "model_eb_quant.onnx"
TOKENS_JSON_NAME = "tokens.json"
SHERPA_TOKENS_NAME = "tokens.txt"
_REQUIRED_METADATA = ("vocab_size", "input_dim", "blank_id", "sos_id", "eos_id", "cif_frame_ms", "tokens_sha256")
# am.mvn values and the model's baked-in neg_mean/inv_stddev must agree to float32 printing.
_CMVN_TOLERANCE = 1e-5


def tokens_sha256(tokens: Sequence[str]) -> str:
    """A digest of the token list (one token per line, UTF-8): the metadata that ties model and list."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def _session_options(threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = max(1, int(threads))
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def _timestamp_output_names(model) -> List[str]:
    """The timestamp tensors an export names in its metadata (Paraformer's CIF, or BiCif's us_*)."""
    metadata = {entry.key: entry.value for entry in model.metadata_props}
    names = metadata.get("timestamp_outputs")
    return names.split(",") if names else list(TIMESTAMP_OUTPUT_NAMES)


def _model_with_timestamp_outputs(path: str):
    """(the model at ``path`` with its timestamp tensors added to the graph outputs, serialised;
    their names)."""
    import onnx

    model = onnx.load(path)
    names = _timestamp_output_names(model)
    produced = {name for node in model.graph.node for name in node.output}
    missing = [name for name in names if name not in produced]
    if missing:
        raise ModelDirError(
            f"{path}: no CIF tensor(s) {', '.join(missing)} in the graph (not exported by funasr_lite.bin.export?); "
            "decode without timestamps (--no_timestamps / timestamps=False)"
        )
    present = {output.name for output in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    return model.SerializeToString(), names


class OnnxParaformer:
    """An onnxruntime session on an exported Paraformer graph, with the PyTorch model's
    ``decode_greedy`` interface. Attributes: blank_id, sos, eos, vocab_size, input_dim, metadata."""

    ctc = None  # no CTC head in the graph (beam search with CTC needs the PyTorch path)

    def __init__(self, path: str, threads: int = 1, with_timestamps: bool = True):
        import onnxruntime

        self.path = path
        self.with_timestamps = with_timestamps
        timestamp_names: List[str] = []
        try:
            source = path
            if with_timestamps:
                source, timestamp_names = _model_with_timestamp_outputs(path)
            self.session = onnxruntime.InferenceSession(source, sess_options=_session_options(threads),
                                                        providers=["CPUExecutionProvider"])
        except ModelDirError:
            raise
        except Exception as e:  # protobuf DecodeError, onnxruntime Fail/InvalidGraph, ...
            first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ModelDirError(f"{path}: not a readable ONNX model ({first_line[:300]})") from None
        inputs = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        self.takes_hotwords = inputs == [*INPUT_NAMES, HOTWORD_INPUT_NAME]
        if self.takes_hotwords:
            inputs = inputs[:2]
        if inputs != list(INPUT_NAMES) or outputs[:2] != list(CLIENT_OUTPUT_NAMES):
            raise ModelDirError(
                f"{path}: inputs {inputs} and outputs {outputs}; expected FunASR's Paraformer interface "
                f"{list(INPUT_NAMES)} -> {list(CLIENT_OUTPUT_NAMES)}"
            )
        self.metadata: Dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        missing = [key for key in _REQUIRED_METADATA if key not in self.metadata]
        if missing:
            raise ModelDirError(f"{path}: metadata lacks {', '.join(missing)} (export it with funasr_lite.bin.export)")
        self.vocab_size = int(self.metadata["vocab_size"])
        self.input_dim = int(self.metadata["input_dim"])
        self.blank_id = int(self.metadata["blank_id"])
        self.sos = int(self.metadata["sos_id"])
        self.eos = int(self.metadata["eos_id"])
        self.cif_frame_ms = float(self.metadata["cif_frame_ms"])
        self._output_names = list(CLIENT_OUTPUT_NAMES) + timestamp_names
        self.embedder = None
        if self.takes_hotwords:
            quantized = os.path.basename(path) == QUANT_ONNX_NAME
            embedder_path = os.path.join(os.path.dirname(path), QUANT_EMBEDDER_ONNX_NAME if quantized
                                         else EMBEDDER_ONNX_NAME)
            if not os.path.isfile(embedder_path):
                raise ModelDirError(f"{path} takes hotwords but {embedder_path} (the hotword embedder) is missing")
            self.embedder = onnxruntime.InferenceSession(embedder_path, sess_options=_session_options(threads),
                                                         providers=["CPUExecutionProvider"])
        self._no_hotwords: Optional[HotwordContext] = None

    def hotword_context(self, hotwords: Sequence[Sequence[int]], nfilter: int = 50,
                        seaco_weight: float = 1.0) -> HotwordContext:
        """Token-id lists (``<s>`` last) -> their embeddings from model_eb.onnx. The exported graph
        attends to every hotword: it equals the PyTorch path up to ``nfilter`` of them (a warning
        says so past that) and with ``seaco_weight`` 1."""
        if not self.takes_hotwords:
            raise ValueError(f"{self.path} takes no hotwords")
        if 0 < nfilter < len(hotwords) - 1:
            logger.warning("%d hotwords: the ONNX graph attends to all of them (PyTorch keeps the %d its filter "
                           "ranks first); results may differ from the PyTorch backend", len(hotwords) - 1, nfilter)
        if seaco_weight != 1.0:
            logger.warning("seaco_weight %s: the ONNX graph uses 1.0 (FunASR's switch)", seaco_weight)
        pad, lengths = (t.numpy() for t in pad_hotwords(hotwords))
        steps = self.embedder.run(None, {EMBEDDER_INPUT_NAME: pad.astype(np.int32)})[0]  # (L, N, D)
        embeddings = steps[lengths - 1, np.arange(len(hotwords))]
        return HotwordContext(torch.from_numpy(np.ascontiguousarray(embeddings)), 0, 1.0)

    def run(self, speech: np.ndarray, lengths: np.ndarray, bias_embed: Optional[np.ndarray] = None) -> List[np.ndarray]:
        """(B, T, D) float32, (B,) int32 -> [logits, token_num(, alphas, peaks, their lengths)]
        (BiCif: us_alphas, us_cif_peak, us_alpha_lengths)."""
        feeds = {INPUT_NAMES[0]: np.ascontiguousarray(speech, dtype=np.float32),
                 INPUT_NAMES[1]: np.ascontiguousarray(lengths, dtype=np.int32)}
        if self.takes_hotwords:
            feeds[HOTWORD_INPUT_NAME] = np.ascontiguousarray(bias_embed, dtype=np.float32)
        return self.session.run(self._output_names, feeds)

    def decode_greedy(self, feats: torch.Tensor, feats_lengths: torch.Tensor,
                      context: Optional[HotwordContext] = None) -> List[Dict]:
        """As :meth:`funasr_lite.models.paraformer.model.Paraformer.decode_greedy` (alphas/peaks
        None without timestamps). A hotword model without hotwords is biased with ``<s>`` alone
        (the graph always attends to a list; docs/hotwords.md)."""
        bias_embed = None
        if self.takes_hotwords:
            if context is None:
                if self._no_hotwords is None:
                    self._no_hotwords = self.hotword_context([[self.sos]], nfilter=0)
                context = self._no_hotwords
            bias_embed = context.embeddings.numpy()[None].repeat(feats.size(0), axis=0)
        elif context is not None:
            raise ValueError(f"{self.path} takes no hotwords")
        outputs = self.run(feats.detach().cpu().numpy(), feats_lengths.detach().cpu().numpy(), bias_embed)
        log_probs, token_num = outputs[0], outputs[1]
        dropped = {self.blank_id, self.sos, self.eos}
        results = []
        for index in range(log_probs.shape[0]):
            length = int(token_num[index])
            if length > 0:
                row = log_probs[index, :length]
                ids = row.argmax(-1)
                score = float(torch.from_numpy(np.ascontiguousarray(row.max(-1))).sum())
                ids = ids.tolist()
            else:
                ids, score = [], 0.0
            result = {"token_ids": [t for t in ids if t not in dropped], "score": score, "token_num": length,
                      "alphas": None, "peaks": None}
            if self.with_timestamps:
                frames = int(outputs[4][index])
                result["alphas"] = torch.from_numpy(np.array(outputs[2][index, :frames], dtype=np.float32))
                result["peaks"] = torch.from_numpy(np.array(outputs[3][index, :frames], dtype=np.float32))
            results.append(result)
        return results


def _file(model_dir: str, name: str, what: str) -> str:
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        raise ModelDirError(f"{model_dir}: no {name} ({what}); export the model dir with funasr_lite.bin.export")
    return path


def _check_token_files(model_dir: str, tokens: Sequence[str], tokens_path: str, model: OnnxParaformer) -> None:
    problems = []
    if len(tokens) != model.vocab_size:
        problems.append(f"{tokens_path} has {len(tokens)} tokens but {model.path} has vocab_size={model.vocab_size}")
    elif tokens_sha256(tokens) != model.metadata["tokens_sha256"]:
        problems.append(f"{tokens_path} is not the token list {model.path} was exported with (tokens_sha256 differs)")
    sherpa_path = os.path.join(model_dir, SHERPA_TOKENS_NAME)
    if os.path.isfile(sherpa_path):
        try:
            sherpa_tokens = read_token_list(sherpa_path)
        except (TokenListError, OSError) as e:
            problems.append(str(e))
        else:
            if list(sherpa_tokens) != list(tokens):
                problems.append(f"{sherpa_path} ({len(sherpa_tokens)} tokens) differs from {tokens_path} "
                                f"({len(tokens)} tokens)")
    if problems:
        raise ModelDirError(f"ONNX model dir {model_dir} refused, its parts disagree:\n  " + "\n  ".join(problems))


def _check_cmvn(cmvn_path: str, shift: np.ndarray, scale: np.ndarray, input_dim_conf: int, config_path: str,
                model: OnnxParaformer) -> None:
    problems = []
    if shift.shape[0] != input_dim_conf:
        problems.append(f"{cmvn_path} has {shift.shape[0]} dims but {config_path} frontend_conf gives "
                        f"n_mels * lfr_m = {input_dim_conf}")
    if shift.shape[0] != model.input_dim:
        problems.append(f"{cmvn_path} has {shift.shape[0]} dims but {model.path} takes {model.input_dim}-dim input")
    for key, values in (("neg_mean", shift), ("inv_stddev", scale)):
        if key not in model.metadata or problems:
            continue
        baked = np.array([float(v) for v in model.metadata[key].split(",")], dtype=np.float32)
        if baked.shape != values.shape or not np.allclose(baked, values, rtol=_CMVN_TOLERANCE, atol=_CMVN_TOLERANCE):
            problems.append(f"{cmvn_path} differs from the {key} in {model.path} (exported with another am.mvn)")
    if problems:
        raise ModelDirError("ONNX model dir refused, its parts disagree:\n  " + "\n  ".join(problems))


def load_onnx_model_dir(model_dir, quantized: bool = False, threads: int = 1, timestamps: bool = True) -> LoadedModel:
    """Load an exported dir for our ONNX backend (see the module docstring); ModelDirError names
    the file of any problem, before decoding."""
    model_dir = os.path.abspath(os.fspath(model_dir))
    if not os.path.isdir(model_dir):
        raise ModelDirError(f"{model_dir}: no such model dir")
    config_path = _file(model_dir, CONFIG_NAME, "the model config")
    config = read_model_config(config_path)
    onnx_path = _file(model_dir, QUANT_ONNX_NAME if quantized else ONNX_NAME,
                      "int8 model: export with --quantize" if quantized else "the ONNX model")
    tokens_path = _file(model_dir, TOKENS_JSON_NAME, "the token list")
    cmvn_path = _file(model_dir, CMVN_NAME, "the CMVN statistics")
    try:
        token_list = read_token_list(tokens_path)
        tokenizer = build_tokenizer(tokens_path)
    except (TokenListError, OSError) as e:
        raise ModelDirError(f"{tokens_path}: {e}") from None
    try:
        cmvn_shift, cmvn_scale = read_am_mvn(cmvn_path)
    except CmvnError as e:
        raise ModelDirError(str(e)) from None
    frontend_conf = resolve_frontend_conf(config, config_path)
    input_dim_conf = int(frontend_conf["n_mels"]) * int(frontend_conf["lfr_m"])
    model = OnnxParaformer(onnx_path, threads=threads, with_timestamps=timestamps)
    _check_token_files(model_dir, token_list, tokens_path, model)
    _check_cmvn(cmvn_path, cmvn_shift, cmvn_scale, input_dim_conf, config_path, model)
    files = ModelFiles(model_dir, config_path, onnx_path, tokens_path, cmvn_path)
    logger.info("loaded %s (%s, %d tokens, %d-dim input) for onnxruntime, %d thread(s)", model_dir,
                os.path.basename(onnx_path), len(token_list), model.input_dim, max(1, int(threads)))
    return LoadedModel(
        model=model, config=config, files=files, token_list=token_list, tokenizer=tokenizer,
        frontend_conf=frontend_conf, cmvn_shift=cmvn_shift, cmvn_scale=cmvn_scale,
        encoder_frame_ms=model.cif_frame_ms, timestamp_frame_ms=model.cif_frame_ms, device=torch.device("cpu"),
        timestamp_shift_frames=timestamp_shift_frames(config, config_path),
        frontend=WavFrontend(frontend_conf, cmvn_path, cmvn=(cmvn_shift, cmvn_scale), source=config_path),
    )


def load_for_backend(model_dir, backend: str = "torch", checkpoint: Optional[str] = None, device="cpu",
                     quantized: bool = False, threads: Optional[int] = None, timestamps: bool = True,
                     decode_mode: str = "greedy") -> LoadedModel:
    """The one switch between backends: ``torch`` (load_model_dir) or ``onnx`` (load_onnx_model_dir).

    quantized: onnx: model_quant.onnx; torch: the model's Linears as int8 dynamic ones on the CPU
    (:func:`funasr_lite.inference.quantize.quantize_int8`).
    threads: onnxruntime intra-op threads (default 1); the torch backend leaves torch's setting."""
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.inference.speech2text import DecodeError

    if backend not in BACKENDS:
        raise DecodeError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "torch":
        loaded = load_model_dir(model_dir, checkpoint, device)
        if quantized:  # int8 dynamic Linears, CPU (inference/quantize.py)
            from funasr_lite.inference.quantize import QuantizeError, quantize_int8

            try:
                loaded.model = quantize_int8(loaded.model, loaded.device)
            except QuantizeError as e:
                raise DecodeError(f"{model_dir}: quantized=True: {e}") from e
        return loaded
    if decode_mode != "greedy":
        raise DecodeError(f"decode_mode {decode_mode!r} needs the torch backend (the ONNX graph decodes greedily)")
    if checkpoint:
        raise DecodeError("checkpoint applies to the torch backend; the ONNX backend reads model.onnx")
    if str(device) != "cpu":
        raise DecodeError(f"device {device}: the ONNX backend runs on the CPU")
    return load_onnx_model_dir(model_dir, quantized=quantized, threads=threads or 1, timestamps=timestamps)


__all__ = [
    "BACKENDS", "ONNX_NAME", "OnnxParaformer", "QUANT_ONNX_NAME", "SHERPA_TOKENS_NAME", "TOKENS_JSON_NAME",
    "load_for_backend", "load_onnx_model_dir", "tokens_sha256",
]
