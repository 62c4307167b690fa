"""Hotwords through the server (a SeACo dir, random weights from funasr's class): the OpenAI
``prompt`` and the WebSocket ``hotwords`` (FunASR's JSON object of word -> weight) give the API's
hotword-biased text, which differs from the unbiased one; without them, the unbiased text."""

import json

import openai
import pytest
from websockets.sync.client import connect

from conftest import running_server
from funasr_lite.api import SpeechRecognizer
from funasr_lite.serve.engine import ServeEngine, ServeOptions
from test_funasr_model_dir import corpus, wav_paths  # noqa: F401 (fixtures)
from test_hotword_model_dirs import HOTWORDS, write_seaco_dir


@pytest.fixture(scope="module")
def seaco(tmp_path_factory, corpus):  # noqa: F811
    model_dir = write_seaco_dir(str(tmp_path_factory.mktemp("seaco")), corpus[1].values(), seed=1)
    engine = ServeEngine(ServeOptions(model_dir=model_dir))
    assert engine.takes_hotwords and engine.describe()["hotwords"]
    with running_server(engine) as (http, ws, _):
        yield SpeechRecognizer.from_model_dir(model_dir), http, ws


def test_prompt_and_hotwords_bias_as_the_api(seaco, wav_paths):  # noqa: F811
    asr, http, ws = seaco
    client = openai.OpenAI(base_url=http + "/v1", api_key="unused", max_retries=0, timeout=120)
    biased, plain = [], []
    for path in wav_paths:
        with open(path, "rb") as f:
            got = client.audio.transcriptions.create(model="x", file=f, prompt=HOTWORDS).text
        assert got == asr(path, hotword=HOTWORDS)[0]["text"]
        biased.append(got)
        with open(path, "rb") as f:
            unbiased = client.audio.transcriptions.create(model="x", file=f).text
        assert unbiased == asr(path)[0]["text"]
        plain.append(unbiased)
        with open(path, "rb") as f:
            data = f.read()
        with connect(ws, open_timeout=30) as stream:
            stream.send(json.dumps({"mode": "offline", "wav_name": "a", "is_speaking": True, "wav_format": "wav",
                                    "hotwords": json.dumps({word: 20 for word in HOTWORDS.split()})}))
            stream.send(data)
            stream.send(json.dumps({"is_speaking": False}))
            assert json.loads(stream.recv(timeout=60))["text"] == got
    assert biased != plain  # the hotwords reached the model
