"""What every ONNX export of this toolkit writes besides its graphs: metadata, sherpa's tokens.txt,
the exported config.yaml, int8 quantisation (used by ``onnx_export`` and ``onnx_streaming``)."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Dict, List, Sequence

import numpy as np

from funasr_lite.export.model_dir import exported_config
from funasr_lite.inference.model_dir import LoadedModel, ModelDirError
from funasr_lite.inference.onnx_backend import TOKENS_JSON_NAME
from funasr_lite.utils.fileio import atomic_open

# Nodes kept in float by quantize_dynamic: the CIF predictor (token count) and the output layer.
QUANT_EXCLUDE_PARTS = ("/cif_", "/predictor/", "output_layer")  # tracer scopes: /cif_output/MatMul, ...
METADATA_VERSION = "1"


class OnnxExportError(ModelDirError):
    """An export that cannot be done or did not reproduce the PyTorch model; the message says which."""


def _floats(values: np.ndarray) -> str:
    return ",".join(repr(float(v)) for v in np.asarray(values, dtype=np.float32))


def onnx_config(loaded: LoadedModel) -> Dict:
    """config.yaml of an exported dir: :func:`exported_config` (FunASR's class names, so its
    AutoModel loads the dir too), naming tokens.json, no cmvn_file."""
    config = exported_config(loaded)
    config["frontend_conf"] = {k: v for k, v in config["frontend_conf"].items() if k != "cmvn_file"}
    config["tokenizer_conf"] = dict(config["tokenizer_conf"], token_list=TOKENS_JSON_NAME)
    config.setdefault("model_conf", {})  # funasr-onnx reads model_conf.predictor_bias
    return config


def write_sherpa_tokens(path: str, tokens: Sequence[str]) -> None:
    """sherpa-onnx's tokens.txt: ``symbol id`` per line."""
    for token in tokens:
        if not token or any(ch.isspace() for ch in token):
            raise OnnxExportError(f"token {token!r} is empty or holds whitespace: sherpa's tokens.txt cannot carry it")
    with atomic_open(path) as f:
        for index, token in enumerate(tokens):
            f.write(f"{token} {index}\n")


def set_metadata_file(path: str, metadata: Dict[str, str]) -> None:
    import onnx

    model = onnx.load(path)
    set_metadata(model, metadata)
    onnx.save(model, path)


def set_metadata(model, metadata: Dict[str, str]) -> None:
    """Replace the model's custom metadata (onnx.ModelProto) with ``metadata``."""
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def quantize_model(src: str, dst: str, metadata: Dict[str, str]) -> None:
    """int8 dynamic quantisation of src's MatMuls (see the module docstring) -> dst, metadata kept."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    nodes = [node.name for node in onnx.load(src, load_external_data=False).graph.node]
    excluded = [name for name in nodes if any(part in name for part in QUANT_EXCLUDE_PARTS)]
    with tempfile.TemporaryDirectory(prefix="quant.", dir=os.path.dirname(dst)) as tmp:
        raw = os.path.join(tmp, "quant.onnx")
        root = logging.getLogger()
        level = root.level
        root.setLevel(max(level, logging.ERROR))  # onnxruntime.quantization logs every node on the root logger
        try:
            quantize_dynamic(src, raw, op_types_to_quantize=["MatMul"], per_channel=True, reduce_range=False,
                             weight_type=QuantType.QInt8, nodes_to_exclude=excluded)
        finally:
            root.setLevel(level)
        model = onnx.load(raw)
        set_metadata(model, dict(metadata, quantization="int8 dynamic MatMul (onnxruntime quantize_dynamic)"))
        onnx.save(model, dst)


def finish_export_dir(loaded: LoadedModel, tmp_dir: str, out_dir: str, staged: List[str]) -> Dict[str, str]:
    """Add what every exported dir holds to ``tmp_dir`` (tokens.json, sherpa's tokens.txt, am.mvn,
    config.yaml last: the dir names tokens.json only once it exists), then move ``staged`` and
    those into ``out_dir``. -> {name: path}."""
    from funasr_lite.data.tokenizer import write_token_list
    from funasr_lite.inference.model_dir import CMVN_NAME, CONFIG_NAME
    from funasr_lite.inference.onnx_backend import SHERPA_TOKENS_NAME
    from funasr_lite.utils.config import dump_config

    staged = list(staged)
    write_token_list(os.path.join(tmp_dir, TOKENS_JSON_NAME), loaded.token_list)
    write_sherpa_tokens(os.path.join(tmp_dir, SHERPA_TOKENS_NAME), loaded.token_list)
    staged += [TOKENS_JSON_NAME, SHERPA_TOKENS_NAME]
    if os.path.abspath(loaded.files.cmvn) != os.path.join(out_dir, CMVN_NAME):
        shutil.copyfile(loaded.files.cmvn, os.path.join(tmp_dir, CMVN_NAME))
        staged.append(CMVN_NAME)
    with atomic_open(os.path.join(tmp_dir, CONFIG_NAME)) as f:
        f.write(dump_config(onnx_config(loaded)))
    staged.append(CONFIG_NAME)
    written = {}
    for name in staged:
        os.replace(os.path.join(tmp_dir, name), os.path.join(out_dir, name))
        written[name] = os.path.join(out_dir, name)
    return written
