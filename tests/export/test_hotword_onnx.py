"""ONNX export of hotword models (SeACo, Contextual; random weights from funasr's classes): FunASR's
two files (model.onnx with a bias_embed input, model_eb.onnx), our ONNX backend's text and times
with hotwords equal our PyTorch path's, and funasr-onnx's contextual classes read the export and
return our text."""

import os

import onnx
import pytest

from funasr_lite.bin import export as export_cli
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.onnx_backend import load_onnx_model_dir
from funasr_lite.inference.speech2text import DecodeOptions, Speech2Text, items_from_wav_files
from test_hotword_model_dirs import HOTWORDS, write_contextual_dir, write_seaco_dir  # tests/inference/
from test_infer import assert_same_results, synth_wave, write_wav

WAVE_SECONDS = (1.1, 1.9, 2.7)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wav")
    return [write_wav(root / f"utt{i}.wav", synth_wave(sec, seed=80 + i)) for i, sec in enumerate(WAVE_SECONDS)]


@pytest.fixture(scope="module", params=["seaco", "contextual"])
def exported(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(request.param)
    waves = [synth_wave(2.0, seed=s) for s in range(3)]
    write = write_seaco_dir if request.param == "seaco" else write_contextual_dir
    model_dir = write(str(root / "dir"), waves)
    assert export_cli.main(["--model_dir", model_dir, "--quantize"]) == 0
    return request.param, model_dir


def test_export_has_funasrs_two_files_and_interfaces(exported):
    kind, model_dir = exported
    for name in ("model.onnx", "model_eb.onnx", "model_quant.onnx", "model_eb_quant.onnx", "seg_dict"):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    model = onnx.load(os.path.join(model_dir, "model.onnx"))
    assert [i.name for i in model.graph.input] == ["speech", "speech_lengths", "bias_embed"]
    outputs = [o.name for o in model.graph.output]
    assert outputs == (["logits", "token_num", "us_alphas", "us_cif_peak"] if kind == "seaco"
                       else ["logits", "token_num"])
    embedder = onnx.load(os.path.join(model_dir, "model_eb.onnx"))
    assert [i.name for i in embedder.graph.input] == ["hotword"]
    assert [o.name for o in embedder.graph.output] == ["hw_embed"]


def test_our_onnx_backend_equals_pytorch_with_hotwords(exported, wavs):
    _, model_dir = exported
    options = DecodeOptions(hotword=HOTWORDS)
    expected = Speech2Text(load_model_dir(model_dir), options).decode(items_from_wav_files(wavs))
    assert sum(len(r["token"]) for r in expected) >= 6
    ours = Speech2Text(load_onnx_model_dir(model_dir), DecodeOptions(hotword=HOTWORDS)).decode(
        items_from_wav_files(wavs))
    assert_same_results(ours, expected, score_tol=1e-3)
    quantized = Speech2Text(load_onnx_model_dir(model_dir, quantized=True), DecodeOptions(hotword=HOTWORDS))
    assert all(r["token"] for r in quantized.decode(items_from_wav_files(wavs)))


def test_funasr_onnx_contextual_classes_give_our_text(exported, wavs):
    """funasr-onnx (one batch per call, hotwords split on spaces) takes the last CIF token for </s>
    (predictor_bias 1) and drops it: it gives our tokens but, where this random model says a
    character there, the last one."""
    import funasr_onnx

    kind, model_dir = exported
    cls = funasr_onnx.SeacoParaformer if kind == "seaco" else funasr_onnx.ContextualParaformer
    client = cls(model_dir, batch_size=len(wavs), intra_op_num_threads=1)
    ours = Speech2Text(load_model_dir(model_dir), DecodeOptions(hotword=HOTWORDS)).decode(items_from_wav_files(wavs))
    compared = 0
    for result, theirs in zip(ours, client(wavs, hotwords=HOTWORDS)):
        tokens = theirs["raw_tokens"] if "raw_tokens" in theirs else theirs["preds"][1]
        assert tokens == result["token"][: len(tokens)] and len(tokens) >= len(result["token"]) - 1
        compared += len(tokens)
    assert compared >= 4
