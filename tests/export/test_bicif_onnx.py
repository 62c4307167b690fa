"""ONNX export of a BiCifParaformer (random weights from funasr's class, tests/inference/
test_bicif_model_dir.py): FunASR's four outputs, our ONNX backend's text and timestamps equal our
PyTorch path's, funasr-onnx's BiCif branch reads the file and returns our timestamps, sherpa-onnx
reads it to our tokens."""

import os

import numpy as np
import onnx
import pytest
import soundfile
import torch

from funasr_lite.bin import export as export_cli
from funasr_lite.decode.timestamps import FIRE_THRESHOLD, cif_timestamps
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.onnx_backend import load_onnx_model_dir
from funasr_lite.inference.speech2text import DecodeOptions, Speech2Text, items_from_wav_files
from test_bicif_model_dir import bicif_funasr_config, write_bicif_dir  # tests/inference/
from test_infer import assert_same_results, synth_wave, write_wav

WAVE_SECONDS = (0.9, 1.6, 2.4, 3.1)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wav")
    return [write_wav(root / f"utt{i}.wav", synth_wave(sec, seed=60 + i)) for i, sec in enumerate(WAVE_SECONDS)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    path = write_bicif_dir(str(tmp_path_factory.mktemp("bicif")), bicif_funasr_config(),
                           [synth_wave(2.0, seed=s) for s in range(3)])
    assert export_cli.main(["--model_dir", path, "--quantize"]) == 0
    return path


@pytest.fixture(scope="module")
def torch_results(model_dir, wavs):
    results = Speech2Text(load_model_dir(model_dir)).decode(items_from_wav_files(wavs))
    assert all(len(r["token"]) >= 3 for r in results), [r["token"] for r in results]
    return results


def test_export_has_funasrs_four_bicif_outputs(model_dir):
    model = onnx.load(os.path.join(model_dir, "model.onnx"))
    assert [o.name for o in model.graph.output] == ["logits", "token_num", "us_alphas", "us_cif_peak"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["cif_frame_ms"] == "20.0"
    assert meta["timestamp_outputs"] == "us_alphas,us_cif_peak,us_alpha_lengths"


def test_onnx_graph_equals_funasrs_export_forward(model_dir):
    """FunASR's own BiCif export graph (export_meta.export_forward) on the same weights, batch 1."""
    from funasr import AutoModel
    import onnxruntime

    funasr_model = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True,
                             disable_log=True).model.eval()
    session = onnxruntime.InferenceSession(os.path.join(model_dir, "model.onnx"),
                                           providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(7)
    for length in (17, 44):
        speech = torch.randn(1, length, 560, generator=generator)
        with torch.no_grad():
            encoder_out, encoder_lengths = funasr_model.encode(speech, torch.tensor([length]))
            _, token_num, _, _ = funasr_model.calc_predictor(encoder_out, encoder_lengths)
            token_num = token_num.round().long()
            _, _, us_alphas, us_peaks = funasr_model.calc_predictor_timestamp(encoder_out, encoder_lengths, token_num)
        logits, ours_num, ours_alphas, ours_peaks = session.run(
            None, {"speech": speech.numpy(), "speech_lengths": np.array([length], dtype=np.int32)})
        assert int(ours_num[0]) == int(token_num[0])
        np.testing.assert_allclose(ours_alphas, us_alphas.numpy(), atol=1e-5, rtol=1e-5)
        assert np.flatnonzero(ours_peaks[0] >= FIRE_THRESHOLD).tolist() == \
            torch.nonzero(us_peaks[0] >= FIRE_THRESHOLD).flatten().tolist()


def test_onnx_backend_equals_pytorch_text_and_timestamps(model_dir, wavs, torch_results):
    loaded = load_onnx_model_dir(model_dir, threads=1)
    assert loaded.timestamp_frame_ms == 20.0
    batched = Speech2Text(loaded).decode(items_from_wav_files(wavs))  # one padded batch: packed BLSTM in ONNX
    assert_same_results(batched, torch_results, score_tol=1e-3)
    one_by_one = Speech2Text(loaded, DecodeOptions(batch_bins=1)).decode(items_from_wav_files(wavs))
    assert_same_results(one_by_one, torch_results, score_tol=1e-3)
    quantized = Speech2Text(load_onnx_model_dir(model_dir, quantized=True)).decode(items_from_wav_files(wavs))
    assert all(len(r["timestamp"]) == len(r["token"]) > 0 for r in quantized)


def test_funasr_onnx_bicif_branch_returns_our_timestamps(model_dir, wavs, torch_results):
    """funasr-onnx reads a 4-output file as BiCif: time_stamp_lfr6_onnx on us_cif_peak. With
    predictor_bias 1 it takes the last CIF token for </s> and drops it (a trained model says </s>
    there; this random one says a character unless the filtered </s> or <blank> fell there), so
    it compares on its tokens. Its rules are FunASR's
    PyTorch ones but for one constant: a token's span is capped at 30 upsampled frames (600 ms),
    not 12 (240 ms). So: every start is ours; with its cap, every [start, end] is ours; ends differ
    only where our 240 ms cap cut a longer span (docs/deploy.md)."""
    import funasr_onnx

    client = funasr_onnx.Paraformer(model_dir, intra_op_num_threads=1)
    loaded = load_model_dir(model_dir)
    speech2text = Speech2Text(loaded)
    compared = capped = 0
    for path, ours, theirs in zip(wavs, torch_results, client(wavs)):
        kept = len(theirs["raw_tokens"])  # all of ours but a last character it took for </s>
        assert theirs["raw_tokens"] == ours["token"][:kept] and kept >= len(ours["token"]) - 1
        prepared = speech2text.prepare(0, items_from_wav_files([path])[0])
        signals = loaded.model.decode_greedy(prepared.model_input[None], torch.tensor([prepared.num_frames]))[0]
        ours_stamps = cif_timestamps(signals["alphas"], signals["peaks"], theirs["raw_tokens"], frame_ms=20.0)
        with_their_cap = cif_timestamps(signals["alphas"], signals["peaks"], theirs["raw_tokens"], frame_ms=20.0,
                                        max_token_frames=30)
        assert theirs["timestamp"] == with_their_cap
        assert [start for start, _ in theirs["timestamp"]] == [start for start, _ in ours_stamps]
        for (start, end), (_, their_end) in zip(ours_stamps, theirs["timestamp"]):
            assert end == their_end or end - start == 240
            capped += end != their_end
        compared += len(ours_stamps)
    assert compared >= 8 and capped >= 1  # both kinds of token present


def test_sherpa_onnx_decodes_the_bicif_export_to_our_tokens(model_dir, wavs, torch_results):
    import sherpa_onnx

    recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
        paraformer=os.path.join(model_dir, "model.onnx"), tokens=os.path.join(model_dir, "tokens.txt"),
        num_threads=1)
    for path, ours in zip(wavs, torch_results):
        samples, rate = soundfile.read(path, dtype="float32")
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, samples)
        recognizer.decode_stream(stream)
        tokens = list(stream.result.tokens)  # sherpa keeps <blank> (it stops at </s> only); we drop it
        assert [t for t in tokens if t != "<blank>"] == ours["token"]
        # sherpa reads us_cif_peak as BiCif's: token starts at its fires (no -30 ms shift), given
        # only when the fires are tokens + 1 (the last token </s>: a trained model's case).
        starts = [s for s, t in zip(stream.result.timestamps, tokens) if t != "<blank>"]
        for start_s, (start_ms, _) in zip(starts, ours["timestamp"]):
            assert abs(round(start_s * 1000) - 30 - start_ms) <= 1
