"""OpenAI-compatible HTTP (serve/app.py, serve/openai_format.py): the official ``openai`` package,
pointed at our server with ``base_url``, transcribes files to the API's text in every response
format; /v1/models and /health answer; bad uploads get OpenAI-style 400s naming the upload."""

import json
import urllib.error
import urllib.request

import numpy as np
import openai
import pytest

from conftest import running_server
from funasr_lite.api import SpeechRecognizer
from funasr_lite.serve.engine import ServeEngine, ServeOptions


@pytest.fixture(scope="module")
def plain(model_dirs):
    engine = ServeEngine(ServeOptions(model_dir=model_dirs["offline"], model_name="tiny"))
    with running_server(engine) as (http, ws, server):
        yield engine, http


@pytest.fixture(scope="module")
def longform(model_dirs):
    from funasr_lite.models.vad.model import released_vad_model_dir

    engine = ServeEngine(ServeOptions(model_dir=model_dirs["offline"], vad_model_dir=released_vad_model_dir(),
                                      punc_model_dir=model_dirs["punc"], decode_options={"sentence_marks": "，。？"}))
    with running_server(engine) as (http, ws, server):
        yield engine, http


def client(http):
    return openai.OpenAI(base_url=http + "/v1", api_key="unused", max_retries=0, timeout=120)


def test_openai_package_transcribes_to_the_apis_text(plain, model_dirs):
    engine, http = plain
    api = SpeechRecognizer.from_model_dir(model_dirs["offline"])
    wavs = model_dirs["wavs"]
    for wav in wavs:
        expected = api(str(wav))[0]
        with open(wav, "rb") as f:
            got = client(http).audio.transcriptions.create(model="whisper-1", file=f)
        assert got.text == expected["text"]
    assert sum(len(api(str(w))[0]["text"]) for w in wavs) >= 10  # not a comparison of empty texts


def test_every_response_format(plain, model_dirs, recording):
    engine, http = plain
    samples, path = recording
    expected = SpeechRecognizer.from_model_dir(model_dirs["offline"])(path)[0]
    with open(path, "rb") as f:
        verbose = client(http).audio.transcriptions.create(model="tiny", file=f, response_format="verbose_json",
                                                          timestamp_granularities=["word", "segment"])
    assert verbose.text == expected["text"] and verbose.language == "zh"
    assert abs(verbose.duration - samples.size / 16000) < 1e-3
    words = verbose.words
    assert [w.word for w in words] == expected["token"]
    assert [[round(w.start * 1000), round(w.end * 1000)] for w in words] == expected["timestamp"]
    assert len(verbose.segments) == 1 and verbose.segments[0].text == expected["text"]
    assert verbose.segments[0].start == expected["timestamp"][0][0] / 1000
    with open(path, "rb") as f:
        text = client(http).audio.transcriptions.create(model="tiny", file=f, response_format="text")
    assert text.strip() == expected["text"]
    for fmt, first_line in (("srt", "1"), ("vtt", "WEBVTT")):
        with open(path, "rb") as f:
            subtitles = client(http).audio.transcriptions.create(model="tiny", file=f, response_format=fmt)
        lines = subtitles.strip().split("\n")
        assert lines[0] == first_line and expected["text"] in lines and "-->" in subtitles


def test_sentences_with_vad_and_punctuation(longform, model_dirs, recording):
    from funasr_lite.models.vad.model import released_vad_model_dir

    engine, http = longform
    samples, path = recording
    api = SpeechRecognizer.from_model_dir(model_dirs["offline"], vad_model=released_vad_model_dir(),
                                          punc_model=model_dirs["punc"], sentence_marks="，。？")
    expected = api(path)[0]
    assert len(expected["sentence_info"]) >= 2
    with open(path, "rb") as f:
        verbose = client(http).audio.transcriptions.create(model="x", file=f, response_format="verbose_json")
    assert verbose.text == expected["text"]
    assert [(s.text, round(s.start * 1000), round(s.end * 1000)) for s in verbose.segments] == [
        (s["text"], s["start"], s["end"]) for s in expected["sentence_info"]]
    with open(path, "rb") as f:
        srt = client(http).audio.transcriptions.create(model="x", file=f, response_format="srt")
    assert srt.count(" --> ") == len(expected["sentence_info"])


def _get(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def test_models_and_health(plain):
    engine, http = plain
    assert [m.id for m in client(http).models.list().data] == ["tiny"]
    health = _get(http + "/health")
    assert health["status"] == "ok" and health["model"] == "tiny" and health["modes"] == ["offline"]


def test_bad_uploads_are_named_400s(plain):
    engine, http = plain
    with pytest.raises(openai.BadRequestError) as caught:
        client(http).audio.transcriptions.create(model="tiny", file=("broken.wav", b"RIFF\x00\x01garbage"))
    assert "broken.wav" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        client(http).audio.transcriptions.create(model="tiny", file=("odd.pcm", b"\x01\x02\x03"))
    assert "odd.pcm" in str(caught.value)
    with pytest.raises(openai.BadRequestError) as caught:
        client(http).audio.transcriptions.create(model="tiny", file=("a.wav", b""), response_format="xml")
    assert "response_format" in str(caught.value)


def test_raw_pcm_upload_is_16k_pcm(plain, model_dirs, recording):
    engine, http = plain
    samples, path = recording
    expected = SpeechRecognizer.from_model_dir(model_dirs["offline"])(path)[0]
    got = client(http).audio.transcriptions.create(model="tiny", file=("a.pcm", samples.astype("<i2").tobytes()))
    assert got.text == expected["text"]


def test_an_upload_too_long_for_a_model_without_vad_is_a_named_400(plain, recording):
    engine, http = plain
    samples, _ = recording
    long = np.tile(samples, 60)  # 12 minutes as one utterance: past the model's max_frames
    with pytest.raises(openai.BadRequestError) as caught:
        client(http).audio.transcriptions.create(model="tiny", file=("meeting.pcm", long.astype("<i2").tobytes()))
    assert "meeting.pcm" in str(caught.value)
    assert client(http).audio.transcriptions.create(model="tiny", file=("short.pcm", samples.tobytes())).text


def test_an_int8_server_transcribes_to_the_int8_apis_text(model_dirs):
    """``serve --quantized`` (decode_options quantized): the offline model's Linears int8, and the
    openai client gets what the int8 API gives."""
    import torch

    engine = ServeEngine(ServeOptions(model_dir=model_dirs["offline"], decode_options={"quantized": True}))
    linear = engine.recognizer.loaded.model.encoder.encoders[0].self_attn.linear_q_k_v
    assert type(linear) is torch.ao.nn.quantized.dynamic.Linear
    api = SpeechRecognizer.from_model_dir(model_dirs["offline"], quantized=True)
    with running_server(engine) as (http, ws, server):
        for wav in model_dirs["wavs"][:2]:
            with open(wav, "rb") as f:
                got = client(http).audio.transcriptions.create(model="whisper-1", file=f)
            assert got.text == api(str(wav))[0]["text"]
