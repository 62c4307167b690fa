"""int8 PyTorch decoding (``quantized=True`` with the torch backend; funasr_lite/inference/quantize.py):
which layers become int8, that the int8 model stays close to the float one, and every way a user
asks for it (API, ``infer --quantized``), with refusals named."""

import os

import pytest
import torch
from torch import nn

from funasr_lite.api import SpeechRecognizer
from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.onnx_backend import load_for_backend
from funasr_lite.inference.quantize import QuantizeError, linears_to_quantize, quantize_int8
from test_infer import read_recog, write_corpus, write_model_dir

DynamicLinear = torch.ao.nn.quantized.dynamic.Linear


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, corpus):
    _, waves = corpus
    return write_model_dir(str(tmp_path_factory.mktemp("model")), list(waves.values()), seed=3)


def test_encoder_and_decoder_linears_become_int8_and_the_rest_stays_float(model_dir):
    model = load_model_dir(model_dir).model
    names = linears_to_quantize(model)
    all_linears = [n for n, m in model.named_modules() if type(m) is nn.Linear]
    assert names and all(n.startswith(("encoder.", "decoder.")) for n in names)
    kept = sorted(set(all_linears) - set(names))
    # The CIF predictor's Linear (token count), the decoder's output layer and the CTC layer stay float.
    assert "predictor.cif_output" in kept and "decoder.output_layer" in kept and "ctc.ctc_lo" in kept
    assert all(("predictor" in n or "output_layer" in n or "ctc" in n) for n in kept), kept
    loaded = load_for_backend(model_dir, "torch", quantized=True)
    modules = dict(loaded.model.named_modules())
    assert all(type(modules[n]) is DynamicLinear for n in names)
    assert all(type(modules[n]) is nn.Linear for n in kept)
    weight = modules[names[0]].weight()
    # Symmetric per output channel (stored as per-channel affine with zero points 0).
    assert weight.dtype == torch.qint8 and weight.qscheme() == torch.per_channel_affine
    assert weight.q_per_channel_scales().numel() == weight.size(0)
    assert not weight.q_per_channel_zero_points().any()


def test_int8_encoder_and_decoder_stay_close_to_float(model_dir):
    """Seeded random features: the int8 model's encoder output and decoder log-probs within a few % of
    float (relative Frobenius error; int8 per-channel weights + per-call uint8 activations)."""
    fp32 = load_model_dir(model_dir).model
    int8 = quantize_int8(load_model_dir(model_dir).model)
    generator = torch.Generator().manual_seed(7)
    feats = torch.randn(2, 40, 560, generator=generator)
    lengths = torch.tensor([40, 31])
    with torch.inference_mode():
        enc_f, enc_len = fp32.encode(feats, lengths)
        enc_q, _ = int8.encode(feats, lengths)
        mask = (torch.arange(enc_f.size(1))[None, :] < enc_len[:, None])[..., None]
        rel = ((enc_q - enc_f) * mask).norm() / (enc_f * mask).norm()
        assert 0 < rel < 0.05, float(rel)
        # The decoder on the same (float) encoder output and token embeddings: int8 vs float.
        acoustic, token_num = fp32.calc_predictor(enc_f, enc_len)[:2]
        tokens = torch.round(token_num).long().clamp(min=1)
        acoustic = acoustic[:, : int(tokens.max())]
        logp_f = fp32.decoder_log_probs(enc_f, enc_len, acoustic, tokens)
        logp_q = int8.decoder_log_probs(enc_f, enc_len, acoustic, tokens)
        rel = (logp_q - logp_f).norm() / logp_f.norm()
        assert 0 < rel < 0.05, float(rel)


def test_api_and_infer_decode_with_the_int8_model(model_dir, corpus, tmp_path):
    data_dir, _ = corpus
    recognizer = SpeechRecognizer.from_model_dir(model_dir, quantized=True)
    assert type(recognizer.loaded.model.encoder.encoders[0].self_attn.linear_q_k_v) is DynamicLinear
    results = recognizer(os.path.join(data_dir, "wav.scp"))
    assert len(results) == 5 and sum(len(r["token"]) for r in results) > 5
    out = tmp_path / "int8"
    assert infer_cli.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
                           "--quantized"]) == 0
    lines = dict(line.split(" ", 1) if " " in line else (line, "")
                 for line in read_recog(str(out))["text"].splitlines())
    assert lines == {r["key"]: r["text"] for r in results}
    beam = SpeechRecognizer.from_model_dir(model_dir, quantized=True, decode_mode="beam", beam_size=3, ctc_weight=0.3)
    assert len(beam(os.path.join(data_dir, "wav.scp"))) == 5


def test_int8_refusals_are_named(model_dir):
    with pytest.raises(QuantizeError, match="on the CPU, not on cuda"):
        quantize_int8(load_model_dir(model_dir).model, "cuda")
    with pytest.raises(QuantizeError, match="no Linear layer"):
        quantize_int8(nn.Sequential(nn.Conv1d(2, 2, 1)))


def test_seaco_dir_decodes_int8_with_hotwords(tmp_path, corpus):
    """A FunASR SeacoParaformer dir (random weights, funasr's class): int8 with a hotword list decodes;
    the seaco decoder's Linears are int8, the bias encoder (LSTM) and the bias head stay float."""
    from test_hotword_model_dirs import HOTWORDS, write_seaco_dir

    data_dir, waves = corpus
    seaco_dir = write_seaco_dir(str(tmp_path / "seaco"), list(waves.values()), seed=1)
    recognizer = SpeechRecognizer.from_model_dir(seaco_dir, quantized=True)
    modules = dict(recognizer.loaded.model.named_modules())
    assert any(n.startswith("seaco_decoder.") and type(m) is DynamicLinear for n, m in modules.items())
    assert type(modules["hotword_output_layer"]) is nn.Linear and type(modules["bias_encoder"]) is nn.LSTM
    results = recognizer(os.path.join(data_dir, "wav.scp"), hotword=HOTWORDS)
    assert len(results) == 5 and all(isinstance(r["text"], str) for r in results)
    assert sum(len(r["token"]) for r in results) > 5


def family_dir(family, path, waves):
    """A random-weight FunASR dir of ``family`` built with funasr's classes (the other tests' builders)."""
    from funasr_dirs import build_funasr_model, save_funasr_dir
    from test_infer import TOKENS, write_cmvn_from_waves

    if family == "bicif":
        from test_bicif_model_dir import bicif_funasr_config, write_bicif_dir

        return write_bicif_dir(path, bicif_funasr_config(), waves, seed=1)
    if family == "contextual":
        from test_hotword_model_dirs import write_contextual_dir

        return write_contextual_dir(path, waves)
    if family == "uniasr":
        from test_uniasr_model_dir import build_funasr_uniasr, uniasr_config

        config = uniasr_config()
        return save_funasr_dir(path, config, build_funasr_uniasr(config, TOKENS), TOKENS,
                               lambda mvn: write_cmvn_from_waves(mvn, waves))
    from funasr.models.paraformer_streaming.model import ParaformerStreaming
    from test_streaming_parity import streaming_config

    config = streaming_config(5)
    model = build_funasr_model(ParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    return save_funasr_dir(path, config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, waves))


@pytest.mark.parametrize("family", ["bicif", "contextual", "uniasr", "streaming"])
def test_every_model_family_decodes_int8(family, tmp_path, corpus):
    """int8 is a load option of every recogniser: its Linears int8, decoding as the float one does
    (the same number of results; streaming also through stream())."""
    data_dir, waves = corpus
    path = family_dir(family, str(tmp_path / family), list(waves.values()))
    recognizer = SpeechRecognizer.from_model_dir(path, quantized=True)
    assert any(type(m) is DynamicLinear for m in recognizer.loaded.model.modules())
    hotword = {"hotword": "地个 他们"} if family == "contextual" else {}
    results = recognizer(os.path.join(data_dir, "wav.scp"), **hotword)
    assert len(results) == 5 and all(isinstance(r["text"], str) for r in results)
    if family == "streaming":
        stream = recognizer.stream()
        wave = waves["utt_a"].astype("float32") / 32768.0
        for i in range(0, len(wave), 9600):
            stream.feed(wave[i:i + 9600])
        final = stream.finish()
        assert final.audio_s == pytest.approx(len(wave) / 16000) and final.tokens
