"""ONNX export of a streaming model dir (ParaformerStreaming) in FunASR's online layout.

``export_onnx(DIR)`` comes here for a streaming model and writes:

* ``model.onnx``: the encoder step (``speech``, ``speech_lengths`` -> ``enc``, ``enc_len``,
  ``alphas``), FunASR's online encoder export (``models/paraformer/onnx_streaming_graph.py``).
  Its metadata carries what sherpa-onnx's OnlineRecognizer reads (``vocab_size``,
  ``lfr_window_size``, ``lfr_window_shift``, ``encoder_output_size``, ``decoder_num_blocks``,
  ``decoder_kernel_size``, ``neg_mean``, ``inv_stddev``) and ours;
* ``decoder.onnx``: the decoder step with one FSMN cache per layer (``in_cache_i`` ->
  ``out_cache_i``, (B, d, kernel-1));
* with ``quantize``: ``model_quant.onnx`` and ``decoder_quant.onnx`` (int8 MatMuls, the CIF and
  output layers kept float);
* ``tokens.json``, sherpa's ``tokens.txt``, ``am.mvn`` and ``config.yaml`` (FunASR's names).

funasr-onnx's online ``Paraformer(model_dir)`` reads the dir as it is; sherpa-onnx takes
``model.onnx`` as its encoder, ``decoder.onnx`` and ``tokens.txt``. Each graph is run once by
onnxruntime against the PyTorch modules before anything is moved into place.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import warnings
from typing import Dict, List

import numpy as np
import torch

from funasr_lite.inference.model_dir import LoadedModel
from funasr_lite.models.paraformer.onnx_streaming_graph import (
    ENCODER_INPUT_NAMES,
    ENCODER_OUTPUT_NAMES,
    StreamingDecoderGraph,
    StreamingEncoderGraph,
    StreamingExportError,
)

logger = logging.getLogger(__name__)

ENCODER_ONNX_NAME, DECODER_ONNX_NAME = "model.onnx", "decoder.onnx"
QUANT_ENCODER_ONNX_NAME, QUANT_DECODER_ONNX_NAME = "model_quant.onnx", "decoder_quant.onnx"
CHECK_TOL = 1e-4


def streaming_metadata(loaded: LoadedModel, decoder_graph: StreamingDecoderGraph) -> Dict[str, str]:
    """model.onnx's metadata: sherpa-onnx's online Paraformer keys, then ours."""
    from funasr_lite.export.onnx_files import METADATA_VERSION, _floats
    from funasr_lite.inference.onnx_backend import tokens_sha256

    conf = loaded.frontend_conf
    model = loaded.model
    return {
        "model_type": "paraformer",
        "version": "1",
        "vocab_size": str(len(loaded.token_list)),
        "lfr_window_size": str(int(conf["lfr_m"])),
        "lfr_window_shift": str(int(conf["lfr_n"])),
        "encoder_output_size": str(int(model.encoder.output_size())),
        "decoder_num_blocks": str(decoder_graph.num_caches),
        "decoder_kernel_size": str(decoder_graph.kernel_size),
        "neg_mean": _floats(loaded.cmvn_shift),
        "inv_stddev": _floats(loaded.cmvn_scale),
        "input_dim": str(loaded.input_size),
        "sample_rate": str(int(conf["fs"])),
        "blank_id": str(int(model.blank_id)),
        "sos_id": str(int(model.sos)),
        "eos_id": str(int(model.eos)),
        "cif_threshold": repr(float(model.predictor.threshold)),
        "tail_threshold": repr(float(model.predictor.tail_threshold)),
        "tokens_sha256": tokens_sha256(loaded.token_list),
        "funasr_lite_onnx_version": METADATA_VERSION,
        "comment": "exported by funasr_lite.bin.export (FunASR's online Paraformer ONNX interface: encoder)",
    }


def _trace(module: torch.nn.Module, inputs, path: str, input_names: List[str], output_names: List[str],
           dynamic_axes: Dict, opset: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes on the fixed model sizes
        torch.onnx.export(module, inputs, path, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True, dynamo=False)


def _encoder_inputs(input_dim: int, lengths=(20, 13), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    speech = torch.randn(len(lengths), max(lengths), input_dim, generator=generator)
    return speech, torch.tensor(lengths, dtype=torch.int32)


def _decoder_inputs(graph: StreamingDecoderGraph, width: int, frames=(20, 13), tokens=(4, 2), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    batch = len(frames)
    return (torch.randn(batch, max(frames), width, generator=generator), torch.tensor(frames, dtype=torch.int32),
            torch.randn(batch, max(tokens), width, generator=generator), torch.tensor(tokens, dtype=torch.int32),
            *[torch.randn(batch, width, graph.kernel_size - 1, generator=generator) for _ in range(graph.num_caches)])


def _check(module: torch.nn.Module, path: str, inputs, names: List[str]) -> None:
    """onnxruntime on ``path`` = the PyTorch module on ``inputs`` (other sizes than the trace's)."""
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = session.run(None, {name: value.numpy() for name, value in zip(names, inputs)})
    with torch.no_grad():
        expected = module(*inputs)
    for index, (a, b) in enumerate(zip(got, expected)):
        b = b.numpy()
        if a.shape != b.shape or (a.dtype.kind == "f" and float(np.abs(a - b).max()) > CHECK_TOL) or \
                (a.dtype.kind != "f" and not np.array_equal(a, b.astype(a.dtype))):
            raise StreamingExportError(f"{path}: output {index} of the check differs from the PyTorch model")


def export_streaming_onnx(loaded: LoadedModel, out_dir: str, quantize: bool, opset: int,
                          check: bool = True) -> Dict[str, str]:
    """Write the online export of ``loaded`` into ``out_dir`` (module docstring) -> {name: path}."""
    from funasr_lite.export.onnx_files import finish_export_dir, quantize_model, set_metadata_file

    model = copy.deepcopy(loaded.model).eval()
    encoder, decoder = StreamingEncoderGraph(model).eval(), StreamingDecoderGraph(model).eval()
    width = int(model.encoder.output_size())
    metadata = streaming_metadata(loaded, decoder)
    tmp_dir = tempfile.mkdtemp(prefix=".onnx_export.", dir=out_dir)
    try:
        staged = []
        encoder_path, decoder_path = os.path.join(tmp_dir, ENCODER_ONNX_NAME), os.path.join(tmp_dir, DECODER_ONNX_NAME)
        _trace(encoder, _encoder_inputs(loaded.input_size), encoder_path, list(ENCODER_INPUT_NAMES),
               list(ENCODER_OUTPUT_NAMES),
               {"speech": {0: "batch_size", 1: "feats_length"}, "speech_lengths": {0: "batch_size"},
                "enc": {0: "batch_size", 1: "feats_length"}, "enc_len": {0: "batch_size"},
                "alphas": {0: "batch_size", 1: "feats_length"}}, opset)
        axes = {"enc": {0: "batch_size", 1: "enc_length"}, "enc_len": {0: "batch_size"},
                "acoustic_embeds": {0: "batch_size", 1: "token_length"}, "acoustic_embeds_len": {0: "batch_size"},
                "logits": {0: "batch_size", 1: "logits_length"}, "sample_ids": {0: "batch_size", 1: "logits_length"}}
        for i in range(decoder.num_caches):
            axes[f"in_cache_{i}"] = {0: "batch_size"}
            axes[f"out_cache_{i}"] = {0: "batch_size"}
        _trace(decoder, _decoder_inputs(decoder, width), decoder_path, decoder.input_names, decoder.output_names,
               axes, opset)
        set_metadata_file(encoder_path, metadata)
        set_metadata_file(decoder_path, dict(metadata, comment="exported by funasr_lite.bin.export (FunASR's online "
                                                               "Paraformer ONNX interface: decoder)"))
        staged += [ENCODER_ONNX_NAME, DECODER_ONNX_NAME]
        if check:
            _check(encoder, encoder_path, _encoder_inputs(loaded.input_size, (31, 9, 17), seed=1),
                   list(ENCODER_INPUT_NAMES))
            _check(decoder, decoder_path, _decoder_inputs(decoder, width, (15, 30, 7), (3, 1, 6), seed=1),
                   decoder.input_names)
        if quantize:
            quantize_model(encoder_path, os.path.join(tmp_dir, QUANT_ENCODER_ONNX_NAME), metadata)
            quantize_model(decoder_path, os.path.join(tmp_dir, QUANT_DECODER_ONNX_NAME), metadata)
            staged += [QUANT_ENCODER_ONNX_NAME, QUANT_DECODER_ONNX_NAME]
        written = finish_export_dir(loaded, tmp_dir, out_dir, staged)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    logger.info("exported the streaming model %s to %s (%s)", loaded.files.model_dir, out_dir,
                ", ".join(name for name in written if name.endswith(".onnx")))
    return written


__all__ = ["export_streaming_onnx", "streaming_metadata", "ENCODER_ONNX_NAME", "DECODER_ONNX_NAME"]
