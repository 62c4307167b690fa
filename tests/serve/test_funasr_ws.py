"""FunASR's WebSocket protocol (serve/funasr_ws.py) in all three modes: a raw protocol client, the
PyPI clients ``funasr-client`` and ``funasr-python`` (unchanged) get the text our API gives for the
same audio; one final message per utterance; a connection carries several utterances."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from websockets.sync.client import connect

from conftest import running_server
from funasr_lite.api import VAD, SpeechRecognizer, TwoPass
from funasr_lite.serve.engine import ServeEngine, ServeOptions

PIECE = 1920  # bytes: 60 ms at 16 kHz, what FunASR's clients send


@pytest.fixture(scope="module")
def server(model_dirs):
    engine = ServeEngine(ServeOptions(model_dir=model_dirs["offline"], online_model_dir=model_dirs["online"],
                                      punc_model_dir=model_dirs["punc"]))
    with running_server(engine) as (http, ws, _):
        yield engine, ws


@pytest.fixture(scope="module")
def api(model_dirs):
    offline = SpeechRecognizer.from_model_dir(model_dirs["offline"])
    online = SpeechRecognizer.from_model_dir(model_dirs["online"])
    from funasr_lite.models.punc import Punctuator

    # What the server's offline answers are: the offline model with the server's punctuation model.
    punctuated = SpeechRecognizer.from_model_dir(model_dirs["offline"], punc_model=model_dirs["punc"])
    return punctuated, online, TwoPass(online, offline, VAD.from_model_dir(), Punctuator.from_model_dir(model_dirs["punc"]))


def stream(ws_url, config, pcm: bytes, piece=PIECE, end=None):
    """One utterance through a raw protocol client -> every message the server sent."""
    messages = []
    with connect(ws_url, subprotocols=["binary"], max_size=None, open_timeout=30) as ws:
        ws.send(json.dumps({"chunk_size": [5, 10, 5], "chunk_interval": 10, "encoder_chunk_look_back": 4,
                            "decoder_chunk_look_back": 0, "wav_name": "rec", "is_speaking": True, "wav_format": "pcm",
                            "audio_fs": 16000, "itn": True, **config}))
        for start in range(0, len(pcm), piece):
            ws.send(pcm[start:start + piece])
        ws.send(json.dumps(end or {"is_speaking": False}))
        while True:
            message = json.loads(ws.recv(timeout=120))
            messages.append(message)
            if message["is_final"]:
                return messages


def check_common(messages, mode_names):
    assert [m["is_final"] for m in messages] == [False] * (len(messages) - 1) + [True]
    for m in messages:
        assert m["mode"] in mode_names and m["wav_name"] == "rec" and isinstance(m["text"], str)
        if "timestamp" in m:
            assert isinstance(m["timestamp"], str) and isinstance(json.loads(m["timestamp"]), list)


def test_offline_mode_gives_the_apis_text_timestamps_and_sentences(server, api, recording):
    engine, ws = server
    samples, path = recording
    messages = stream(ws, {"mode": "offline"}, samples.astype("<i2").tobytes())
    check_common(messages, ["offline"])
    assert len(messages) == 1
    expected = api[0](path)[0]
    assert messages[0]["text"] == expected["text"] and expected["text"]
    assert json.loads(messages[0]["timestamp"]) == expected["timestamp"]
    sentences = messages[0]["stamp_sents"]
    assert len(sentences) == len(expected["sentence_info"]) >= 2
    for got, want in zip(sentences, expected["sentence_info"]):
        assert got["text_seg"].replace(" ", "") + got["punc"] == want["text"] and got["punc"] in "，。？、"
        assert [got["start"], got["end"]] == [want["start"], want["end"]] and got["ts_list"] == want["timestamp"]


def test_online_mode_gives_the_apis_streaming_text(server, api, recording):
    engine, ws = server
    samples, _ = recording
    messages = stream(ws, {"mode": "online"}, samples.astype("<i2").tobytes())
    check_common(messages, ["online"])
    session = api[1].stream((5, 10, 5), 4, 0)
    texts = [session.feed(samples[i:i + PIECE // 2].astype(np.float32) / 32768) for i in range(0, samples.size, PIECE // 2)]
    final = session.finish()
    assert [m["text"] for m in messages[:-1]] == [t for t in texts if t]
    assert messages[-1]["text"] == final.last_text
    assert "".join(m["text"] for m in messages) == final.text and len(final.text) >= 5


def test_2pass_mode_gives_the_apis_two_pass_events(server, api, recording):
    engine, ws = server
    samples, _ = recording
    messages = stream(ws, {"mode": "2pass"}, samples.astype("<i2").tobytes())
    check_common(messages, ["2pass-online", "2pass-offline"])
    session = api[2].stream((5, 10, 5), 4, 0)
    events = []
    for i in range(0, samples.size, PIECE // 2):
        events += session.feed(samples[i:i + PIECE // 2].astype(np.float32) / 32768)
    events += session.finish()
    assert [(m["mode"], m["text"]) for m in messages] == [(e["mode"], e["text"]) for e in events]
    offline = [m for m in messages if m["mode"] == "2pass-offline"]
    assert len(offline) >= 2 and all(m["stamp_sents"] for m in offline if m["text"])
    assert [json.loads(m["timestamp"]) for m in offline] == [e["timestamp"] for e in events
                                                             if e["mode"] == "2pass-offline"]


def test_one_connection_carries_several_utterances_and_acknowledges_is_end(server, api, model_dirs):
    engine, ws = server
    waves = model_dirs["waves"]
    with connect(ws, open_timeout=30) as client:
        for key in sorted(waves)[:3]:
            client.send(json.dumps({"mode": "offline", "wav_name": key, "is_speaking": True}))
            client.send(waves[key].astype("<i2").tobytes())
            client.send(json.dumps({"is_speaking": False, "is_end": True}))
            message = json.loads(client.recv(timeout=60))
            assert message["is_final"] and message["is_end"] and message["wav_name"] == key
            assert message["text"] == api[0](waves[key], audio_fs=16000)[0]["text"]


def test_pypi_funasr_client_in_2pass_mode(server, api, recording):
    """funasr-client 0.1.6 (``async_file_asr``, mode 2pass): its merged text is our 2-pass text. (Its
    synchronous ``file_asr`` deadlocks in its own ``close()``, a threading.Lock taken twice, whatever
    the server does: docs/server.md.)"""
    import asyncio

    from funasr_client import async_file_asr

    engine, ws = server
    samples, path = recording
    result = asyncio.run(asyncio.wait_for(async_file_asr(path, ws, mode="2pass"), 300))
    session = api[2].stream((5, 10, 5), 4, 0)
    for i in range(0, samples.size, PIECE // 2):
        session.feed(samples[i:i + PIECE // 2].astype(np.float32) / 32768)
    session.finish()
    expected = "".join(segment["text"] for segment in session.segments)
    assert result["text"] == expected and len(expected) >= 5


def test_pypi_funasr_python_in_offline_mode(server, api, recording):
    """funasr-python 0.1.5 (it ships a package also named funasr_client, so it runs from its own
    directory in a child process): ``FunASRClient.recognize_file`` in offline mode gives the API's
    text. (Its ``recognize_file_async`` helper fails in its own ``async with``: docs/server.md.)"""
    engine, ws = server
    samples, path = recording
    target = os.path.join(sys.prefix, "share", "funasr_lite", "funasr_python")
    assert os.path.isdir(os.path.join(target, "funasr_client")), "run bash tools/setup.sh --test"
    code = ("import json, sys\n"
            "from funasr_client import FunASRClient\n"
            "client = FunASRClient(server_url=sys.argv[1], mode='offline', timeout=120)\n"
            "print(json.dumps({'text': client.recognize_file(sys.argv[2]).text}, ensure_ascii=False))\n")
    env = {**os.environ, "PYTHONPATH": target}
    out = subprocess.run([sys.executable, "-c", code, ws, path], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["text"] == api[0](path)[0]["text"]
