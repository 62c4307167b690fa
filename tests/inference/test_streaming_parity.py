"""A FunASR ParaformerStreaming model dir (random weights from funasr's own class): fed the same
audio in the same pieces, our StreamingSession returns, call by call, the text FunASR's
``AutoModel.generate(input=piece, cache=cache, is_final=...)`` returns — every step grid case
(the end on a step boundary, a final step of over and of under one LFR frame: FunASR's tail
chunk), both decoder FSMN layouts, and each look-back setting."""

import logging
import os

import numpy as np
import pytest
import soundfile
import torch

from funasr import AutoModel
from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming

from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import DecodeOptions, Speech2Text, items_from_wav_files
from funasr_lite.inference.streaming import StreamingError, StreamingSession
from funasr_configs import funasr_paraformer_config, funasr_sanm_confs  # tests/funasr_configs.py
from funasr_dirs import THRESHOLD_MARGIN, build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py
from test_funasr_model_dir import corpus, funasr_dir, wav_paths  # noqa: F401 (fixtures)
from test_infer import TOKENS, write_cmvn_from_waves

logging.getLogger("funasr").setLevel(logging.WARNING)

STEP = 9600  # samples of one 600 ms step at chunk_size [0, 10, 5]


def streaming_config(decoder_shift: int) -> dict:
    encoder_conf, decoder_conf = funasr_sanm_confs(output_size=64, linear_units=128, kernel_size=11)
    encoder_conf.update(input_layer="pe_online", chunk_size=[12, 15], stride=[8, 10], pad_left=[0, 0],
                        encoder_att_look_back_factor=[4, 4], decoder_att_look_back_factor=[1, 1])
    decoder_conf["sanm_shfit"] = decoder_shift  # 0: the FSMN cache carries its right padding; 5: the released one
    config = funasr_paraformer_config(encoder_conf, decoder_conf)
    config.update(model="ParaformerStreaming", encoder="SANMEncoderChunkOpt", frontend="WavFrontendOnline")
    return config


@pytest.fixture(scope="module", params=[0, 5], ids=["decoder_shift0", "decoder_shift5"])
def streaming_dir(request, tmp_path_factory, corpus):
    config = streaming_config(request.param)
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    path = str(tmp_path_factory.mktemp(f"streaming_{request.param}"))
    save_funasr_dir(path, config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values()))
    automodel = AutoModel(model=path, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    return path, load_model_dir(path), automodel


@pytest.fixture(scope="module")
def audios(corpus):
    waves = {key: w.astype(np.float32) / 32768.0 for key, w in corpus[1].items()}
    longest = max(waves.values(), key=len)
    return {
        "over_one_frame": waves["utt_a"][: 4 * STEP + 3200],  # a final step of 3200 samples
        "on_boundary": longest[: 3 * STEP],  # the final call is an empty step: the tail chunk
        "under_one_frame": longest[: 5 * STEP + 500],  # 500 samples FunASR drops: the tail chunk
        "short": waves["utt_b"][:STEP - 100],  # no full step before the end
    }


def funasr_calls(automodel, audio, pieces, **options):
    cache, texts, position = {}, [], 0
    for size in pieces:
        piece = audio[position:position + size]
        position += size
        final = position >= audio.size
        result = automodel.generate(input=piece, cache=cache, is_final=final, chunk_size=[0, 10, 5], **options)
        texts.append(result[0]["text"] if result else "")
        if final:
            return texts
    raise AssertionError("pieces shorter than the audio")


def our_calls(loaded, audio, pieces, **options):
    session, texts, position = StreamingSession(loaded, **options), [], 0
    for size in pieces:
        piece = audio[position:position + size]
        position += size
        final = position >= audio.size
        texts.append(session.feed(piece, is_final=final))
        if final:
            return texts, session
    raise AssertionError("pieces shorter than the audio")


def assert_off_thresholds(session):
    """Every CIF decision of the stream (the running alpha sum against each integer) lies off its
    threshold by more than float rounding can move it, so the text comparison holds on any CPU."""
    total = np.cumsum(torch.cat(session.state.alphas).double().numpy())
    assert np.abs(total - np.round(total)).min() > THRESHOLD_MARGIN


PIECES = {"steps": [STEP] * 40, "small": [4000] * 100, "uneven": [12345, 777, 30000, 10**6]}


@pytest.mark.parametrize("pieces", list(PIECES), ids=list(PIECES))
@pytest.mark.parametrize("name", ["over_one_frame", "on_boundary", "under_one_frame", "short"])
def test_call_by_call_text_equals_funasrs(streaming_dir, audios, name, pieces):
    _, loaded, automodel = streaming_dir
    looks = dict(encoder_chunk_look_back=4, decoder_chunk_look_back=1)
    expected = funasr_calls(automodel, audios[name], PIECES[pieces], **looks)
    got, session = our_calls(loaded, audios[name], PIECES[pieces], **looks)
    assert_off_thresholds(session)
    assert got == expected
    if name != "short":
        assert len("".join(got)) >= 3  # not a vacuous comparison of empty texts


@pytest.mark.parametrize("encoder_look_back,decoder_look_back", [(0, 0), (-1, 0), (4, 0), (2, 2)])
def test_each_look_back_equals_funasrs(streaming_dir, audios, encoder_look_back, decoder_look_back):
    _, loaded, automodel = streaming_dir
    looks = dict(encoder_chunk_look_back=encoder_look_back, decoder_chunk_look_back=decoder_look_back)
    for name in ("over_one_frame", "under_one_frame"):
        expected = funasr_calls(automodel, audios[name], PIECES["steps"], **looks)
        got, session = our_calls(loaded, audios[name], PIECES["steps"], **looks)
        assert_off_thresholds(session)
        assert got == expected, name


def test_the_pieces_decide_only_which_call_returns_a_token(streaming_dir, audios):
    _, loaded, _ = streaming_dir
    audio = audios["over_one_frame"]
    one, _ = our_calls(loaded, audio, [audio.size])
    samples, session = our_calls(loaded, audio, [1] * audio.size)  # one sample a call
    assert "".join(samples) == "".join(one) and len("".join(one)) >= 3
    assert len(session.partials) == audio.size


def test_finish_gives_the_whole_text_tokens_and_timestamps(streaming_dir, audios):
    _, loaded, _ = streaming_dir
    audio = audios["over_one_frame"]
    session = StreamingSession(loaded)
    partial = session.feed(audio[:20000])
    result = session.finish(audio[20000:])
    assert result.text == partial + result.last_text
    assert len(result.tokens) == len(result.scores) == len(result.timestamp) >= 3
    assert all(score <= 0.0 for score in result.scores)
    starts = [start for start, _ in result.timestamp]
    assert starts == sorted(starts) and all(start <= end for start, end in result.timestamp)
    assert result.timestamp[-1][1] <= round(1000 * audio.size / 16000) + 60
    assert result.audio_s == pytest.approx(audio.size / 16000)
    with pytest.raises(StreamingError, match="finished"):
        session.feed(audio[:100])
    session.reset()
    assert session.feed(audio[:20000]) == partial  # a reset stream starts again from nothing


def test_frames_are_the_offline_frames_and_pad_keeps_the_tail(streaming_dir, audios, tmp_path):
    path, loaded, _ = streaming_dir
    speech2text = Speech2Text(loaded)
    for name, kept_by_funasr in (("over_one_frame", True), ("under_one_frame", False)):
        wav = str(tmp_path / f"{name}.wav")
        soundfile.write(wav, audios[name], 16000, subtype="FLOAT")
        offline_frames = speech2text.prepare(0, items_from_wav_files([wav])[0]).num_frames
        _, funasr_tail = our_calls(loaded, audios[name], [audios[name].size])
        _, padded = our_calls(loaded, audios[name], [audios[name].size], tail="pad")
        assert padded.state.frames == offline_frames
        assert (funasr_tail.state.frames == offline_frames) == kept_by_funasr


def test_no_state_on_the_model_and_streams_are_independent(streaming_dir, audios):
    _, loaded, _ = streaming_dir
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    attributes = set(vars(loaded.model))
    a, b = StreamingSession(loaded), StreamingSession(loaded)
    audio = audios["over_one_frame"]
    texts_a, texts_b = [], []
    for start in range(0, audio.size, STEP):  # interleaved
        texts_a.append(a.feed(audio[start:start + STEP]))
        texts_b.append(b.feed(audio[start:start + STEP]))
    assert a.finish().text == b.finish().text == "".join(texts_a) + a.partials[-1]["text"]
    assert set(vars(loaded.model)) == attributes
    assert all(torch.equal(before[k], v) for k, v in loaded.model.state_dict().items())


def test_a_model_that_does_not_stream_is_refused(funasr_dir):
    loaded = load_model_dir(funasr_dir[0])
    with pytest.raises(StreamingError, match=r"config.yaml: model 'Paraformer' does not stream"):
        StreamingSession(loaded)


def test_bad_options_are_refused(streaming_dir):
    _, loaded, _ = streaming_dir
    with pytest.raises(StreamingError, match="tail"):
        StreamingSession(loaded, tail="drop")
    with pytest.raises(StreamingError, match="chunk_size"):
        StreamingSession(loaded, chunk_size=(0, 0, 5))
    with pytest.raises(StreamingError, match="look_back"):
        StreamingSession(loaded, encoder_chunk_look_back=-2)


def test_whole_files_decode_as_funasrs_generate_of_a_file(streaming_dir, audios, tmp_path):
    """The offline API on a streaming dir = FunASR's generate(input=path): the file in steps, final."""
    _, loaded, automodel = streaming_dir
    paths = []
    for name in ("over_one_frame", "on_boundary"):  # (0 < r < 960 keeps its last frame: documented)
        paths.append(str(tmp_path / f"{name}.wav"))
        soundfile.write(paths[-1], audios[name], 16000, subtype="FLOAT")
    ours = Speech2Text(loaded).decode(items_from_wav_files(paths))
    for path, result in zip(paths, ours):
        expected = automodel.generate(input=path, chunk_size=[0, 10, 5], encoder_chunk_look_back=4,
                                      decoder_chunk_look_back=1)[0]["text"]
        assert result["text"] == expected and len(expected) >= 3
        assert len(result["timestamp"]) == len(result["token"])
    with pytest.raises(Exception, match="greedy only"):
        Speech2Text(loaded, DecodeOptions(decode_mode="beam"))


def test_infer_streaming_writes_1best_recog_partials_and_latency(streaming_dir, audios, tmp_path):
    import json

    from funasr_lite.bin import infer as infer_cli
    from funasr_lite.inference.writers import read_1best_recog

    path, loaded, automodel = streaming_dir
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    lines = []
    for name in ("over_one_frame", "on_boundary"):
        wav = str(tmp_path / f"{name}.wav")
        soundfile.write(wav, audios[name], 16000, subtype="FLOAT")
        lines.append(f"{name} {wav}\n")
    lines.append(f"missing {tmp_path / 'missing.wav'}\n")
    (data_dir / "wav.scp").write_text("".join(lines))
    out = tmp_path / "decode"
    rc = infer_cli.main(["--model_dir", path, "--streaming", "--data_dir", str(data_dir), "--output_dir", str(out),
                         "--piece_ms", "100"])
    assert rc == 3  # the missing wav is named and counted; the others are decoded
    recog = {r["key"]: r["text"] for r in read_1best_recog(str(out / "1best_recog"))}
    for name in ("over_one_frame", "on_boundary"):
        expected = "".join(funasr_calls(automodel, audios[name], [1600] * 1000, encoder_chunk_look_back=4,
                                        decoder_chunk_look_back=1))
        assert recog[name] == expected
    assert "missing" in (out / "1best_recog" / "failed").read_text()
    partials = [json.loads(line) for line in (out / "partials.jsonl").read_text().splitlines()]
    assert {p["key"] for p in partials} == {"over_one_frame", "on_boundary"}
    assert len([p for p in partials if p["key"] == "on_boundary"]) == 3 * STEP // 1600  # one per 100 ms piece
    latency = json.loads((out / "latency.json").read_text())
    assert latency["utterances"] == 2 and latency["chunk_size"] == [0, 10, 5] and latency["rtf"] > 0
    assert latency["finish_ms"]["median"] > 0 and latency["first_partial_audio_ms"]["median"] >= 600


def test_the_api_streams_and_decodes_whole_files(streaming_dir, audios, tmp_path):
    from funasr_lite.api import SpeechRecognizer

    path, _, automodel = streaming_dir
    asr = SpeechRecognizer.from_model_dir(path)
    audio = audios["over_one_frame"]
    stream = asr.stream()
    texts = [stream.feed(audio[start:start + 3200]) for start in range(0, audio.size - 3200, 3200)]
    result = stream.finish(audio[(audio.size - 1) // 3200 * 3200:])
    assert result.text == "".join(texts) + result.last_text
    wav = str(tmp_path / "a.wav")
    soundfile.write(wav, audio, 16000, subtype="FLOAT")
    assert asr(wav)[0]["text"] == result.text == automodel.generate(
        input=wav, chunk_size=[0, 10, 5], encoder_chunk_look_back=4, decoder_chunk_look_back=1)[0]["text"]


def test_a_stream_at_another_rate_equals_the_resampled_stream(streaming_dir, audios):
    from funasr_lite.frontend.audio import resample_waveform

    _, loaded, _ = streaming_dir
    audio_8k = resample_waveform(audios["over_one_frame"], 16000, 8000)
    at_16k, _ = our_calls(loaded, resample_waveform(audio_8k, 8000, 16000), [STEP] * 40)
    session, texts = StreamingSession(loaded, audio_fs=8000), []
    for start in range(0, audio_8k.size, 1000):
        texts.append(session.feed(audio_8k[start:start + 1000]))
    texts.append(session.finish().last_text)
    assert "".join(texts) == "".join(at_16k) and len("".join(texts)) >= 3


def test_abandoned_streams_are_freed_and_memory_stays_flat(streaming_dir, audios):
    import gc
    import tracemalloc
    import weakref

    _, loaded, _ = streaming_dir
    audio = audios["over_one_frame"]
    session = StreamingSession(loaded)
    session.feed(audio[:20000])
    ref = weakref.ref(session)
    del session
    gc.collect()
    assert ref() is None  # nothing (the model least of all) keeps an abandoned stream alive

    def churn(n):
        for _ in range(n):
            s = StreamingSession(loaded)
            s.feed(audio[:12000])  # one step and a bit, abandoned mid-stream
        gc.collect()

    churn(5)  # warm caches
    tracemalloc.start()
    churn(20)
    after_20 = tracemalloc.get_traced_memory()[0]
    churn(60)
    after_80 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after_80 - after_20 < 200_000  # bytes still held: no per-stream leak (a live stream of this model holds ~50 kB: 60 would be 3 MB)
