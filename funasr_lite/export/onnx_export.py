"""ONNX export of a model dir, in the layout FunASR's ``funasr-onnx`` and k2's ``sherpa-onnx`` read.

``export_onnx(DIR)`` writes, next to the model dir's files (or into ``output_dir``):

* ``model.onnx``: FunASR's export interface. Inputs ``speech`` (B, T, n_mels*lfr_m) float32
  LFR+CMVN features and ``speech_lengths`` (B,) int32; outputs ``logits`` (B, N, V)
  log-probabilities and ``token_num`` (B,) int32; batch and time axes dynamic. Metadata
  (``custom_metadata_map``) carries what sherpa-onnx reads: ``vocab_size``, ``lfr_window_size``,
  ``lfr_window_shift``, ``neg_mean`` and ``inv_stddev`` (the am.mvn, comma-separated floats),
  and what our loader checks: ``tokens_sha256``, ``input_dim``, ``cif_frame_ms``,
  ``timestamp_outputs``, the special ids.
* ``model_quant.onnx`` (``quantize=True``): the same graph with int8 dynamic quantisation of
  the MatMuls (onnxruntime ``quantize_dynamic``, int8 weights per channel); the CIF predictor
  and the output projection stay float, so the token count and the last layer are not moved
  by quantisation (FunASR's export excludes its ``*output*`` nodes the same way).
* ``tokens.json`` (FunASR / funasr-onnx) and ``tokens.txt`` in sherpa's ``symbol id`` format;
  ``config.yaml`` (the exported model dir's, naming ``tokens.json``; no ``frontend_conf.cmvn_file``,
  which funasr-onnx would receive twice) and ``am.mvn``. Our loader and FunASR's read both
  token files (ours reads ``token id`` lines too), so the PyTorch model dir keeps working.

Timestamps. The graph computes the CIF weights (``alphas``), the CIF accumulator (``peaks``)
and their valid lengths (``alpha_lengths``), but they are NOT graph outputs of the saved file:
both clients change behaviour on extra outputs (funasr-onnx takes a 4-output model for a
BiCif model and asserts on its peaks; sherpa-onnx reads output 3 of any non-2-output model as
3x-upsampled peaks). The tensors keep those names inside the graph, and our ONNX backend
(:mod:`funasr_lite.inference.onnx_backend`) adds them back as outputs when it builds its session,
so one file serves the clients and our timestamps (metadata ``timestamp_outputs``).
A BiCifParaformer's file is exactly what both clients expect of that class: FunASR's four
outputs ``logits, token_num, us_alphas, us_cif_peak`` (its BiCif export), the upsampled head's
weights and fires; ``us_alpha_lengths`` stays inside, and ``cif_frame_ms`` is the 20 ms
upsampled frame.

Before anything replaces files in the output dir, the exported graph is run once by
onnxruntime on a random batch and its tokens and CIF weights are compared with the PyTorch
model's; a disagreement is an error naming the file.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from funasr_lite.export.onnx_files import (  # noqa: F401 (re-exported: this module's public names)
    METADATA_VERSION,
    QUANT_EXCLUDE_PARTS,
    OnnxExportError,
    _floats,
    finish_export_dir,
    onnx_config,
    quantize_model,
    set_metadata,
    set_metadata_file,
    write_sherpa_tokens,
)
from funasr_lite.inference.model_dir import (
    WEIGHT_NAMES,
    LoadedModel,
    load_model_dir,
)
from funasr_lite.inference.onnx_backend import (
    ONNX_NAME,
    QUANT_ONNX_NAME,
    SHERPA_TOKENS_NAME,
    TOKENS_JSON_NAME,
    EMBEDDER_ONNX_NAME,
    QUANT_EMBEDDER_ONNX_NAME,
    OnnxParaformer,
    tokens_sha256,
)
from funasr_lite.models.paraformer.onnx_graph import (
    EMBEDDER_INPUT_NAME,
    EMBEDDER_OUTPUT_NAME,
    HOTWORD_INPUT_NAME,
    HotwordEmbedderGraph,
    ParaformerOnnxGraph,
)

logger = logging.getLogger(__name__)

OPSET_VERSION = 17  # LayerNormalization is one op from 17 on; onnxruntime >= 1.13 and sherpa-onnx run it
# Nodes kept in float by quantize_dynamic: the CIF predictor (token count) and the output layer.


def export_metadata(loaded: LoadedModel, graph: ParaformerOnnxGraph) -> Dict[str, str]:
    """The custom metadata of model.onnx: sherpa-onnx's keys, then ours (all strings)."""
    model = loaded.model
    conf = loaded.frontend_conf
    return {
        "model_type": "paraformer",
        "vocab_size": str(len(loaded.token_list)),
        "lfr_window_size": str(int(conf["lfr_m"])),
        "lfr_window_shift": str(int(conf["lfr_n"])),
        "neg_mean": _floats(loaded.cmvn_shift),
        "inv_stddev": _floats(loaded.cmvn_scale),
        "input_dim": str(loaded.input_size),
        "n_mels": str(int(conf["n_mels"])),
        "sample_rate": str(int(conf["fs"])),
        "blank_id": str(int(model.blank_id)),
        "sos_id": str(int(model.sos)),
        "eos_id": str(int(model.eos)),
        "predictor_bias": str(int(getattr(model, "predictor_bias", 0))),
        "cif_frame_ms": repr(float(loaded.timestamp_frame_ms)),  # the frame of the timestamp signals
        "timestamp_outputs": ",".join(graph.timestamp_output_names),
        "tokens_sha256": tokens_sha256(loaded.token_list),
        "funasr_lite_onnx_version": METADATA_VERSION,
        "comment": "exported by funasr_lite.bin.export (FunASR's Paraformer ONNX interface)",
    }


TRACE_LENGTHS = (23, 40)
CHECK_LENGTHS = (57, 31, 9)  # other lengths and batch size than the trace's: a size frozen by tracing shows


def _dummy_batch(input_dim: int, lengths: Sequence[int] = TRACE_LENGTHS, seed: int = 0):
    """Random zero-padded features (B, max(lengths), input_dim) and their int32 lengths."""
    generator = torch.Generator().manual_seed(seed)
    speech = torch.randn(len(lengths), max(lengths), input_dim, generator=generator)
    for index, length in enumerate(lengths):
        speech[index, length:] = 0.0
    return speech, torch.tensor(lengths, dtype=torch.int32)


def _dummy_hotwords(batch: int, width: int, count: int = 5, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, count, width, generator=torch.Generator().manual_seed(seed))


def _trace_to_onnx(graph: ParaformerOnnxGraph, input_dim: int, path: str, opset: int) -> None:
    alphas_name, peaks_name, lengths_name = graph.timestamp_output_names
    dynamic_axes = {
        "speech": {0: "batch_size", 1: "feats_length"},
        "speech_lengths": {0: "batch_size"},
        "logits": {0: "batch_size", 1: "logits_length"},
        "token_num": {0: "batch_size"},
        alphas_name: {0: "batch_size", 1: "alphas_length"},
        peaks_name: {0: "batch_size", 1: "alphas_length"},
        lengths_name: {0: "batch_size"},
    }
    inputs = _dummy_batch(input_dim)
    if graph.takes_hotwords:
        dynamic_axes[HOTWORD_INPUT_NAME] = {0: "batch_size", 1: "num_hotwords"}
        inputs = (*inputs, _dummy_hotwords(len(TRACE_LENGTHS), graph.model.inner_dim))
    with warnings.catch_warnings():
        # The tracer warns about sizes it records as constants; the ones of this graph are the
        # feature and model dimensions (fixed by design). check_against_torch runs other lengths.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph, inputs, path, input_names=list(graph.input_names),
            output_names=["logits", "token_num", *graph.timestamp_output_names], dynamic_axes=dynamic_axes,
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )


def _trace_embedder(model: torch.nn.Module, path: str, opset: int) -> None:
    """model_eb.onnx: hotword (N, L) int32 -> hw_embed (L, N, D), both axes dynamic (FunASR fixes L at 10)."""
    hotwords = torch.randint(3, 9, (4, 6), generator=torch.Generator().manual_seed(0), dtype=torch.int64).int()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            HotwordEmbedderGraph(model).eval(), (hotwords,), path, input_names=[EMBEDDER_INPUT_NAME],
            output_names=[EMBEDDER_OUTPUT_NAME], opset_version=opset, do_constant_folding=True, dynamo=False,
            dynamic_axes={EMBEDDER_INPUT_NAME: {0: "num_hotwords", 1: "hotword_length"},
                          EMBEDDER_OUTPUT_NAME: {0: "hotword_length", 1: "num_hotwords"}},
        )


def _finish_model(path: str, metadata: Dict[str, str], client_outputs: Sequence[str]) -> None:
    """Keep only the clients' outputs (the other timestamp tensors stay named inside) and set metadata."""
    import onnx

    model = onnx.load(path)
    kept = [output for output in model.graph.output if output.name in client_outputs]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    set_metadata(model, metadata)
    onnx.save(model, path)


def check_against_torch(loaded: LoadedModel, path: str, alpha_tol: float = 1e-4) -> None:
    """Run ``path`` (with the timestamp outputs added back) and the PyTorch model on one random
    batch of other lengths than the trace's: token counts and tokens must be equal, alphas
    within alpha_tol."""
    speech, lengths = _dummy_batch(loaded.input_size, CHECK_LENGTHS, seed=1)
    onnx_model = OnnxParaformer(path, threads=1, with_timestamps=True)
    context = onnx_context = None
    if onnx_model.takes_hotwords:  # three random hotwords (and <s>), no filter in either
        words = [[3 + (7 * i + j) % (len(loaded.token_list) - 4) for j in range(1 + i % 3)] for i in range(3)]
        words.append([int(loaded.model.sos)])
        context = loaded.model.hotword_context(words, nfilter=0)
        onnx_context = onnx_model.hotword_context(words, nfilter=0)
    ours = onnx_model.decode_greedy(speech, lengths, context=onnx_context)
    expected = loaded.model.decode_greedy(speech, lengths.long(), context=context)
    for index, (a, b) in enumerate(zip(ours, expected)):
        problems = []
        if a["token_num"] != b["token_num"] or a["token_ids"] != b["token_ids"]:
            problems.append(f"tokens {a['token_ids']} vs PyTorch {b['token_ids']}")
        if a["alphas"].shape != b["alphas"].shape or float((a["alphas"] - b["alphas"]).abs().max()) > alpha_tol:
            problems.append("CIF weights differ")
        if problems:
            raise OnnxExportError(f"{path}: utterance {index} of the check batch: {'; '.join(problems)}")


def _default_output_dir(loaded: LoadedModel) -> str:
    if os.path.basename(loaded.files.weights) not in WEIGHT_NAMES:
        raise OnnxExportError(
            f"{loaded.files.model_dir} is a training exp dir ({os.path.basename(loaded.files.weights)}); "
            "give an output dir (its config.yaml is not a model dir's)"
        )
    return loaded.files.model_dir


def export_onnx(model_dir, output_dir=None, checkpoint: Optional[str] = None, quantize: bool = False,
                opset: int = OPSET_VERSION, check: bool = True) -> Dict[str, str]:
    """Export ``model_dir`` (a model dir, or an exp dir with ``output_dir``) to ONNX (module docstring).

    Returns {name: path} of the files written. Files are made in a temp dir inside the output
    dir and moved into place only after the check, config.yaml last.
    """
    loaded = load_model_dir(model_dir, checkpoint)
    if not hasattr(loaded.model, "predictor"):
        raise OnnxExportError(f"{loaded.files.config}: only Paraformer (CIF) models export to ONNX")
    out_dir = os.path.abspath(os.fspath(output_dir)) if output_dir else _default_output_dir(loaded)
    os.makedirs(out_dir, exist_ok=True)
    if getattr(loaded.model, "streaming", False):  # FunASR's online layout: encoder + decoder with caches
        from funasr_lite.export.onnx_streaming import export_streaming_onnx
        from funasr_lite.models.paraformer.onnx_streaming_graph import StreamingExportError

        try:
            return export_streaming_onnx(loaded, out_dir, quantize, opset, check)
        except StreamingExportError as e:
            raise OnnxExportError(f"{loaded.files.config}: {e}") from None
    graph = ParaformerOnnxGraph(copy.deepcopy(loaded.model)).eval()
    metadata = export_metadata(loaded, graph)
    tmp_dir = tempfile.mkdtemp(prefix=".onnx_export.", dir=out_dir)
    try:
        staged: List[str] = []
        model_path = os.path.join(tmp_dir, ONNX_NAME)
        _trace_to_onnx(graph, loaded.input_size, model_path, opset)
        _finish_model(model_path, metadata, graph.client_output_names)
        staged.append(ONNX_NAME)
        if graph.takes_hotwords:  # FunASR's second file: the hotword embedder
            embedder_path = os.path.join(tmp_dir, EMBEDDER_ONNX_NAME)
            _trace_embedder(copy.deepcopy(loaded.model).eval(), embedder_path, opset)
            set_metadata_file(embedder_path, metadata)
            staged.append(EMBEDDER_ONNX_NAME)
        if check:
            check_against_torch(loaded, model_path)
        if quantize:
            quantize_model(model_path, os.path.join(tmp_dir, QUANT_ONNX_NAME), metadata)
            staged.append(QUANT_ONNX_NAME)
            if graph.takes_hotwords:  # the embedder stays float (FunASR keeps bias_encoder unquantised)
                shutil.copyfile(os.path.join(tmp_dir, EMBEDDER_ONNX_NAME), os.path.join(tmp_dir, QUANT_EMBEDDER_ONNX_NAME))
                staged.append(QUANT_EMBEDDER_ONNX_NAME)
        written = finish_export_dir(loaded, tmp_dir, out_dir, staged)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    sizes = ", ".join(f"{name} {os.path.getsize(path) / 2**20:.1f} MiB" for name, path in written.items()
                      if name.endswith(".onnx"))
    logger.info("exported %s to %s (%s)", loaded.files.model_dir, out_dir, sizes)
    return written


__all__ = [
    "ONNX_NAME", "OnnxExportError", "QUANT_ONNX_NAME", "SHERPA_TOKENS_NAME", "TOKENS_JSON_NAME", "export_metadata",
    "export_onnx", "onnx_config", "quantize_model", "tokens_sha256", "write_sherpa_tokens",
]
