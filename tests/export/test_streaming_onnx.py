"""The online ONNX export of a streaming model dir (funasr's ParaformerStreaming, random weights):
our encoder and decoder graphs compute what FunASR's own online export graphs compute; funasr-onnx's
online Paraformer reads our dir and returns, call by call, the text it returns from FunASR's export
— and the text of our PyTorch stream in the same framing (chunk [5, 10, 5], no look-back); a
decoder whose FSMN reads later tokens is refused."""

import logging
import os
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from funasr.models.paraformer_streaming.export_meta import export_rebuild_model
from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming

from funasr_lite.export.onnx_export import OnnxExportError, export_onnx, set_metadata_file
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.streaming import StreamingSession
from funasr_dirs import build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus
from test_streaming_parity import STEP, streaming_config  # tests/inference/

logging.getLogger("funasr").setLevel(logging.WARNING)


def _trace(module, path):
    """FunASR's export modules traced as FunASR's export does (its call needs onnxscript; the
    legacy exporter here)."""
    torch.onnx.export(module, module.export_dummy_inputs(), path, input_names=module.export_input_names(),
                      output_names=module.export_output_names(), dynamic_axes=module.export_dynamic_axes(),
                      opset_version=14, dynamo=False)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("streaming_onnx")
    _, waves = write_corpus(str(root / "corpus"), {"utt_a": 2.6, "utt_b": 1.2, "utt_c": 3.4}, with_feats=False)
    config = streaming_config(5)  # the released model's causal decoder FSMN
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    model_dir = save_funasr_dir(str(root / "model"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(mvn, waves.values()))
    written = export_onnx(model_dir, str(root / "ours"))
    theirs = str(root / "theirs")
    shutil.copytree(str(root / "ours"), theirs)
    encoder, decoder = export_rebuild_model(model, encoder="SANMEncoderChunkOpt", predictor="CifPredictorV2",
                                            decoder="ParaformerSANMDecoder")
    with torch.no_grad():
        _trace(encoder, os.path.join(theirs, "model.onnx"))
        _trace(decoder, os.path.join(theirs, "decoder.onnx"))
    # FunASR writes no metadata; sherpa-onnx needs ours (the frontend's, not the graph's): copied over
    ours_meta = {p.key: p.value for p in onnx.load(os.path.join(str(root / "ours"), "model.onnx")).metadata_props}
    set_metadata_file(os.path.join(theirs, "model.onnx"), ours_meta)
    audios = {key: w.astype(np.float32) / 32768.0 for key, w in waves.items()}
    longest = audios["utt_c"]
    audios.update(on_boundary=longest[:3 * STEP], under_one_frame=longest[:4 * STEP + 500])
    return {"model": model_dir, "ours": str(root / "ours"), "theirs": theirs, "written": written, "audios": audios}


def test_the_files_and_sherpas_metadata(dirs):
    assert {"model.onnx", "decoder.onnx", "tokens.json", "tokens.txt", "am.mvn", "config.yaml"} <= set(dirs["written"])
    meta = {p.key: p.value for p in onnx.load(os.path.join(dirs["ours"], "model.onnx")).metadata_props}
    for key, value in (("vocab_size", str(len(TOKENS))), ("lfr_window_size", "7"), ("lfr_window_shift", "6"),
                       ("encoder_output_size", "64"), ("decoder_num_blocks", "2"), ("decoder_kernel_size", "11")):
        assert meta[key] == value, key
    assert len(meta["neg_mean"].split(",")) == len(meta["inv_stddev"].split(",")) == 560


def test_our_graphs_compute_what_funasrs_export_graphs_compute(dirs):
    generator = np.random.default_rng(0)
    for name, inputs in (
        ("model.onnx", {"speech": generator.standard_normal((2, 20, 560)).astype(np.float32),
                        "speech_lengths": np.array([20, 13], dtype=np.int32)}),
        ("decoder.onnx", {"enc": generator.standard_normal((2, 20, 64)).astype(np.float32),
                          "enc_len": np.array([20, 13], dtype=np.int32),
                          "acoustic_embeds": generator.standard_normal((2, 5, 64)).astype(np.float32),
                          "acoustic_embeds_len": np.array([5, 3], dtype=np.int32),
                          **{f"in_cache_{i}": generator.standard_normal((2, 64, 10)).astype(np.float32)
                             for i in range(2)}}),
    ):
        ours = onnxruntime.InferenceSession(os.path.join(dirs["ours"], name), providers=["CPUExecutionProvider"])
        theirs = onnxruntime.InferenceSession(os.path.join(dirs["theirs"], name), providers=["CPUExecutionProvider"])
        assert [i.name for i in ours.get_inputs()] == [i.name for i in theirs.get_inputs()]
        assert [o.name for o in ours.get_outputs()] == [o.name for o in theirs.get_outputs()]
        for a, b, output in zip(ours.run(None, inputs), theirs.run(None, inputs), ours.get_outputs()):
            if name == "decoder.onnx" and output.name in ("logits", "sample_ids"):
                a, b = a[1, :3], b[1, :3]  # padded token rows are not outputs
                a, b = np.concatenate([a, a]), np.concatenate([b, b])
            if output.name == "sample_ids":  # ours: blank where FunASR's argmax is <s> or </s>
                b = np.where(np.isin(b, (1, 2)), 0, b)
            np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4, err_msg=f"{name}: {output.name}")


def test_sample_ids_carry_blank_for_the_sentence_tokens(dirs):
    """sherpa-onnx prints every sample id but blank: ours never hands it <s> or </s>."""
    decoder = onnxruntime.InferenceSession(os.path.join(dirs["ours"], "decoder.onnx"),
                                           providers=["CPUExecutionProvider"])
    generator = np.random.default_rng(1)
    inputs = {"enc": generator.standard_normal((1, 20, 64)).astype(np.float32),
              "enc_len": np.array([20], dtype=np.int32),
              "acoustic_embeds": generator.standard_normal((1, 400, 64)).astype(np.float32) * 3,
              "acoustic_embeds_len": np.array([400], dtype=np.int32),
              **{f"in_cache_{i}": np.zeros((1, 64, 10), np.float32) for i in range(2)}}
    logits, ids = decoder.run(None, inputs)[:2]
    argmax = logits.argmax(-1)
    assert np.isin(argmax, (1, 2)).any(), "no <s>/</s> argmax drawn: the check would be empty"
    np.testing.assert_array_equal(ids, np.where(np.isin(argmax, (1, 2)), 0, argmax))


def funasr_onnx_calls(model_dir, audio, step=STEP):
    from funasr_onnx.paraformer_online_bin import Paraformer as OnlineParaformer

    runtime = OnlineParaformer(model_dir, batch_size=1, chunk_size=[5, 10, 5], intra_op_num_threads=1)
    cache, texts = {}, []
    for start in range(0, audio.size, step):
        final = start + step >= audio.size
        result = runtime(audio[start:start + step], param_dict={"cache": cache, "is_final": final})
        texts.append("".join(r["preds"][0] for r in result) if result else "")
    return texts


@pytest.mark.parametrize("name", ["utt_a", "utt_b", "utt_c", "on_boundary", "under_one_frame"])
def test_funasr_onnx_reads_our_export_as_funasrs_and_as_our_stream(dirs, name):
    audio = dirs["audios"][name]
    ours = funasr_onnx_calls(dirs["ours"], audio)
    assert ours == funasr_onnx_calls(dirs["theirs"], audio)
    assert len("".join(ours)) >= 2
    # funasr-onnx's steps = our stream at chunk [5, 10, 5] without look-back (its graphs have none);
    # its last call has its own end rule (a zero-padded 20-frame window, the look-ahead's weights
    # zeroed even at the end, the cached frames re-read as they are), docs/streaming.md.
    session = StreamingSession(load_model_dir(dirs["model"]), chunk_size=(5, 10, 5), encoder_chunk_look_back=0,
                               decoder_chunk_look_back=0)
    texts = [session.feed(audio[start:start + STEP], is_final=start + STEP >= audio.size)
             for start in range(0, audio.size, STEP)]
    assert texts[:-1] == ours[:-1] and len("".join(texts[:-1])) >= 1
    if name in ("utt_a", "utt_c"):  # these final steps happen to agree too
        assert texts[-1] == ours[-1]


def sherpa_text(model_dir, audio, flush=True):
    import sherpa_onnx

    recognizer = sherpa_onnx.OnlineRecognizer.from_paraformer(
        tokens=os.path.join(model_dir, "tokens.txt"), encoder=os.path.join(model_dir, "model.onnx"),
        decoder=os.path.join(model_dir, "decoder.onnx"), num_threads=1)
    stream = recognizer.create_stream()
    for start in range(0, audio.size, 1600):  # 100 ms pieces
        stream.accept_waveform(16000, audio[start:start + 1600])
    if flush:  # upstream practice: 0.66 s of silence, then the final-chunk option (else the end is dropped)
        stream.accept_waveform(16000, np.zeros(int(0.66 * 16000), dtype=np.float32))
    stream.input_finished()
    if flush:
        stream.set_option("is_final", "1")
    while recognizer.is_ready(stream):
        recognizer.decode_stream(stream)
    return recognizer.get_result(stream)


@pytest.mark.parametrize("name", ["utt_a", "utt_c"])
def test_sherpa_onnx_reads_our_export_as_funasrs(dirs, name):
    """sherpa-onnx frames audio its own way (LFR without left padding, 8 cached + 10 new frames,
    3 of look-ahead, no tail weight), so its text is its own; it is the same from our export and
    from FunASR's, and with its final-chunk flush it keeps what the end of the audio says."""
    audio = dirs["audios"][name]
    ours = sherpa_text(dirs["ours"], audio)
    theirs = sherpa_text(dirs["theirs"], audio)  # it prints FunASR's </s> argmax (ours: blank)
    assert ours.replace(" ", "") == theirs.replace("<s>", "").replace("</s>", "").replace(" ", "") and len(ours) >= 3
    assert "</s>" not in ours and "<s>" not in ours
    unflushed = sherpa_text(dirs["ours"], audio, flush=False)
    assert ours.startswith(unflushed) and len(ours) > len(unflushed)


def test_a_decoder_that_reads_later_tokens_is_refused(tmp_path):
    _, waves = write_corpus(str(tmp_path / "corpus"), {"utt_a": 1.0}, with_feats=False)
    config = streaming_config(0)
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0)
    model_dir = save_funasr_dir(str(tmp_path / "model"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(mvn, waves.values()))
    with pytest.raises(OnnxExportError, match="sanm_shfit"):
        export_onnx(model_dir, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out" / "model.onnx")
