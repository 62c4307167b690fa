"""ONNX export (funasr_lite.bin.export), our ONNX backend, and the real clients on the export.

One tiny random model (tests/decode/test_infer.py's) is exported once, with --quantize. Its
decoder's output bias keeps <blank>, <s>, </s> and <unk> out of the argmax, so that every
decoder compares plain tokens (sherpa-onnx stops at </s> and keeps <blank>; funasr-onnx drops
<unk> from its text), and predictor_bias is 0 so no client cuts a last token as </s>. The CIF
bias of the test model makes every utterance emit several tokens (asserted).
"""

import os
import shutil

import numpy as np
import onnx
import pytest
import soundfile
import torch

from funasr_lite.bin import export as export_cli
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_files
from funasr_lite.inference.model_dir import ModelDirError, load_model_dir
from funasr_lite.inference.onnx_backend import load_onnx_model_dir
from funasr_lite.frontend.cmvn import read_am_mvn, write_am_mvn
from test_infer import TOKENS, assert_same_results, synth_wave, tiny_config, write_model_dir, write_wav

SPECIAL_TOKENS = ("<blank>", "<s>", "</s>", "<unk>")
WAVE_SECONDS = (0.6, 1.1, 1.7, 2.4, 3.2)


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    root = tmp_path_factory.mktemp("wav")
    return [write_wav(root / f"utt{i}.wav", synth_wave(sec, seed=40 + i)) for i, sec in enumerate(WAVE_SECONDS)]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The exported tiny model dir (model.pt + model.onnx + model_quant.onnx + token files)."""
    path = str(tmp_path_factory.mktemp("model"))
    model_conf = dict(tiny_config()["model_conf"], predictor_bias=0)
    specaug_conf = {"apply_time_warp": False, "apply_freq_mask": True, "freq_mask_width_range": [0, 20],
                    "lfr_rate": 6, "num_freq_mask": 1, "apply_time_mask": True, "time_mask_width_range": [0, 6],
                    "num_time_mask": 1}
    write_model_dir(path, [synth_wave(2.0, seed=s) for s in range(3)],
                    config_edits={"model_conf": model_conf, "specaug": "specaug_lfr", "specaug_conf": specaug_conf})
    state = torch.load(os.path.join(path, "model.pt"), weights_only=True)
    for token in SPECIAL_TOKENS:
        state["decoder.output_layer.bias"][TOKENS.index(token)] = -30.0
    torch.save(state, os.path.join(path, "model.pt"))
    assert export_cli.main(["--model_dir", path, "--quantize"]) == 0
    return path


@pytest.fixture(scope="module")
def torch_results(model_dir, wavs):
    results = Speech2Text(load_model_dir(model_dir)).decode(items_from_wav_files(wavs))
    assert all(len(r["token"]) >= 2 for r in results), [r["token"] for r in results]
    assert not any(token in SPECIAL_TOKENS for r in results for token in r["token"])
    return results


def test_export_writes_funasr_interface_and_sherpa_metadata(model_dir):
    for name in ("model.onnx", "model_quant.onnx", "tokens.json", "tokens.txt", "config.yaml", "am.mvn", "model.pt"):
        assert os.path.isfile(os.path.join(model_dir, name)), name
    model = onnx.load(os.path.join(model_dir, "model.onnx"))
    graph = model.graph
    assert [i.name for i in graph.input] == ["speech", "speech_lengths"]
    assert [o.name for o in graph.output] == ["logits", "token_num"]
    speech_dims = graph.input[0].type.tensor_type.shape.dim
    assert speech_dims[0].dim_param and speech_dims[1].dim_param and speech_dims[2].dim_value == 560
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert graph.input[1].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.INT32
    meta = {p.key: p.value for p in model.metadata_props}
    shift, scale = read_am_mvn(os.path.join(model_dir, "am.mvn"))
    assert meta["vocab_size"] == str(len(TOKENS))
    assert (meta["lfr_window_size"], meta["lfr_window_shift"]) == ("7", "6")
    np.testing.assert_allclose(np.array(meta["neg_mean"].split(","), dtype=np.float32), shift, rtol=1e-6)
    np.testing.assert_allclose(np.array(meta["inv_stddev"].split(","), dtype=np.float32), scale, rtol=1e-6)
    with open(os.path.join(model_dir, "tokens.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == [f"{token} {index}" for index, token in enumerate(TOKENS)]
    quant = onnx.load(os.path.join(model_dir, "model_quant.onnx"))
    ops = {node.op_type for node in quant.graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops
    float_ops = {n.op_type for n in quant.graph.node if "/cif_output/" in n.name or "/output_layer/" in n.name}
    assert "MatMul" in float_ops and not float_ops & {"MatMulInteger", "DynamicQuantizeLinear"}
    assert {p.key: p.value for p in quant.metadata_props}["vocab_size"] == str(len(TOKENS))


def test_onnx_backend_equals_pytorch_tokens_scores_and_timestamps(model_dir, wavs, torch_results):
    loaded = load_onnx_model_dir(model_dir, threads=2)
    batched = Speech2Text(loaded).decode(items_from_wav_files(wavs))
    assert_same_results(batched, torch_results, score_tol=1e-3)
    from funasr_lite.inference.speech2text import DecodeOptions

    one_by_one = Speech2Text(loaded, DecodeOptions(batch_bins=1)).decode(items_from_wav_files(wavs))
    assert_same_results(one_by_one, torch_results, score_tol=1e-3)


def test_pytorch_model_dir_still_loads_after_export(model_dir, torch_results, wavs):
    """config.yaml now names tokens.json and tokens.txt has sherpa's "symbol id" lines."""
    loaded = load_model_dir(model_dir)
    assert loaded.token_list == TOKENS and loaded.files.token_list.endswith("tokens.json")


def test_funasr_pytorch_decodes_the_exported_dir_to_our_tokens(model_dir, wavs, torch_results):
    """The exported config.yaml (tokens.json, no cmvn_file, FunASR's SpecAugLFR name) still loads in
    FunASR's AutoModel, next to the ONNX files."""
    from funasr import AutoModel

    model = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    texts = [r["text"].replace(" ", "") for r in model.generate(input=wavs, batch_size=1)]
    assert texts == ["".join(r["token"]) for r in torch_results]


def test_quantized_model_loads_and_decodes(model_dir, wavs):
    results = Speech2Text(load_onnx_model_dir(model_dir, quantized=True)).decode(items_from_wav_files(wavs))
    assert [r["key"] for r in results] == [f"utt{i}" for i in range(len(wavs))]
    assert all(r["token"] and len(r["timestamp"]) == len(r["token"]) for r in results)


def test_funasr_onnx_decodes_the_export_to_our_tokens(model_dir, wavs, torch_results):
    import funasr_onnx

    ours = [r["token"] for r in torch_results]
    client = funasr_onnx.Paraformer(model_dir, intra_op_num_threads=1)
    assert [list(r["preds"][1]) for r in client(wavs)] == ours
    batched = funasr_onnx.Paraformer(model_dir, batch_size=3, intra_op_num_threads=1)
    assert [list(r["preds"][1]) for r in batched(wavs)] == ours
    quantized = funasr_onnx.Paraformer(model_dir, quantize=True, intra_op_num_threads=1)
    assert all(r["preds"][1] for r in quantized(wavs))


def test_sherpa_onnx_decodes_the_export_to_our_tokens(model_dir, wavs, torch_results):
    import sherpa_onnx

    recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
        paraformer=os.path.join(model_dir, "model.onnx"), tokens=os.path.join(model_dir, "tokens.txt"),
        num_threads=1)
    streams = []
    for path in wavs:
        samples, rate = soundfile.read(path, dtype="float32")
        stream = recognizer.create_stream()
        stream.accept_waveform(rate, samples)
        streams.append(stream)
    recognizer.decode_streams(streams)  # one padded batch: the padding positions end in </s>
    assert [list(s.result.tokens) for s in streams] == [r["token"] for r in torch_results]


# ---------------------------------------------------------------- bad exported dirs


@pytest.fixture
def bad_dir(model_dir, tmp_path):
    path = str(tmp_path / "exported")
    shutil.copytree(model_dir, path, ignore=shutil.ignore_patterns("model.pt"))
    return path


def refused(path, match, **kwargs):
    with pytest.raises(ModelDirError, match=match):
        load_onnx_model_dir(path, **kwargs)


def test_missing_token_list_is_named(bad_dir):
    os.remove(os.path.join(bad_dir, "tokens.json"))
    refused(bad_dir, "no tokens.json")


def test_token_list_of_another_size_is_named(bad_dir):
    with open(os.path.join(bad_dir, "tokens.json"), "w", encoding="utf-8") as f:
        f.write('["' + '", "'.join(TOKENS[:-2] + TOKENS[-1:]) + '"]')
    refused(bad_dir, r"tokens.json has 27 tokens but .*model.onnx has vocab_size=28")


def test_token_list_in_another_order_is_named(bad_dir):
    swapped = TOKENS[:3] + [TOKENS[4], TOKENS[3]] + TOKENS[5:]
    with open(os.path.join(bad_dir, "tokens.json"), "w", encoding="utf-8") as f:
        f.write('["' + '", "'.join(swapped) + '"]')
    refused(bad_dir, r"tokens.json is not the token list .*model.onnx was exported with")


def test_sherpa_token_list_that_differs_is_named(bad_dir):
    with open(os.path.join(bad_dir, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("".join(f"{t} {i}\n" for i, t in enumerate(TOKENS[:-3] + TOKENS[-1:])))
    refused(bad_dir, r"tokens.txt \(26 tokens\) differs from .*tokens.json")


def test_am_mvn_of_the_wrong_dimension_is_named(bad_dir):
    write_am_mvn(os.path.join(bad_dir, "am.mvn"), np.zeros(400), np.ones(400))
    refused(bad_dir, r"am.mvn has 400 dims but .*config.yaml frontend_conf gives n_mels \* lfr_m = 560")


def test_am_mvn_that_is_not_the_exported_one_is_named(bad_dir):
    shift, scale = read_am_mvn(os.path.join(bad_dir, "am.mvn"))
    write_am_mvn(os.path.join(bad_dir, "am.mvn"), shift + 1.0, scale)
    refused(bad_dir, r"am.mvn differs from the neg_mean in .*model.onnx")


@pytest.mark.parametrize("name,quantized", [("model.onnx", False), ("model_quant.onnx", True)])
def test_corrupt_onnx_file_is_named(bad_dir, name, quantized):
    path = os.path.join(bad_dir, name)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    refused(bad_dir, rf"{name}: not a readable ONNX model", quantized=quantized)


def test_missing_quantized_model_is_named(bad_dir):
    os.remove(os.path.join(bad_dir, "model_quant.onnx"))
    refused(bad_dir, r"no model_quant.onnx \(int8 model: export with --quantize\)", quantized=True)


def test_export_of_a_bad_model_dir_is_refused_before_writing(bad_dir, tmp_path, caplog):
    """An exp dir needs --output_dir; a dir without weights is refused by name; nothing written."""
    out = tmp_path / "out"
    assert export_cli.main(["--model_dir", bad_dir, "--output_dir", str(out)]) == 1
    assert "no weights" in caplog.text and not out.exists()


# ---------------------------------------------------------------- the backend switch (api, infer)


def test_infer_backend_onnx_writes_the_same_1best_recog(model_dir, wavs, tmp_path):
    from funasr_lite.bin import infer as infer_cli
    from funasr_lite.inference.writers import read_1best_recog

    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text("".join(f"utt{i} {path}\n" for i, path in enumerate(wavs)))
    common = ["--model_dir", model_dir, "--wav_scp", str(wav_scp)]
    assert infer_cli.main(common + ["--output_dir", str(tmp_path / "torch")]) == 0
    assert infer_cli.main(common + ["--output_dir", str(tmp_path / "onnx"), "--backend", "onnx",
                                    "--onnx_threads", "2"]) == 0
    assert infer_cli.main(common + ["--output_dir", str(tmp_path / "int8"), "--backend", "onnx", "--quantized"]) == 0
    for name in ("text", "token", "time_stamp"):
        assert (tmp_path / "onnx/1best_recog" / name).read_text() == (tmp_path / "torch/1best_recog" / name).read_text()
    assert_same_results(read_1best_recog(tmp_path / "onnx/1best_recog"), read_1best_recog(tmp_path / "torch/1best_recog"),
                        score_tol=1e-3)
    int8 = read_1best_recog(tmp_path / "int8/1best_recog")
    assert [r["key"] for r in int8] == [f"utt{i}" for i in range(len(wavs))] and all(r["token"] for r in int8)


def test_api_backend_onnx_gives_the_pytorch_result(model_dir, wavs):
    from funasr_lite.api import SpeechRecognizer

    onnx_asr = SpeechRecognizer.from_model_dir(model_dir, backend="onnx", threads=2)
    torch_asr = SpeechRecognizer.from_model_dir(model_dir)
    assert_same_results(onnx_asr(wavs), torch_asr(wavs), score_tol=1e-3)
    assert SpeechRecognizer.from_model_dir(model_dir, backend="onnx", quantized=True)(wavs[0])[0]["token"]


def test_backend_options_the_onnx_graph_cannot_do_are_refused(model_dir, bad_dir, caplog):
    from funasr_lite.api import SpeechRecognizer
    from funasr_lite.bin import infer as infer_cli
    from funasr_lite.inference.speech2text import DecodeError

    with pytest.raises(DecodeError, match="needs the torch backend"):
        SpeechRecognizer.from_model_dir(model_dir, backend="onnx", decode_mode="beam")
    with pytest.raises(DecodeError, match="backend must be one of torch, onnx"):
        SpeechRecognizer.from_model_dir(model_dir, backend="tensorrt")
    with open(os.path.join(bad_dir, "model.onnx"), "wb") as f:
        f.write(b"not an onnx model")
    assert infer_cli.main(["--model_dir", bad_dir, "--backend", "onnx", "--wav", os.devnull]) == 1
    assert "model.onnx: not a readable ONNX model" in caplog.text


def test_profile_onnx_sessions_times_every_session_and_profiles_operators(model_dir, tmp_path):
    """bench/profile_onnx_sessions.py on the tiny export: every session timed in both modes, each
    with an operator profile (no timing asserted)."""
    import json
    import subprocess
    import sys

    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    audio = tmp_path / "audio.npz"
    np.savez(audio, **{f"u{i}": synth_wave(sec, seed=70 + i).astype(np.float32) / 32768.0
                       for i, sec in enumerate((0.8, 1.5, 2.2))})
    out = tmp_path / "profile.json"
    done = subprocess.run([sys.executable, os.path.join(repo, "bench", "profile_onnx_sessions.py"), "--model_dir",
                           model_dir, "--audio", str(audio), "--repeats", "2", "--out", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    report = json.loads(out.read_text())
    kinds = {"ours", "ours_no_arena", "ours_cif", "funasr_onnx"}
    assert {(r["session"], r["mode"]) for r in report["rows"]} == {(k, m) for k in kinds for m in ("batch1", "batched")}
    assert all(r["median_s"] > 0 and len(r["all_s"]) == 2 for r in report["rows"])
    assert set(report["profiles"]) == kinds
    assert all("MatMul" in ops and sum(ops.values()) > 0 for ops in report["profiles"].values())
