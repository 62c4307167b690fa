"""The server under load and faults (loopback only, bounded loops): concurrent streams and uploads
all get the API's results; past the limits the server answers busy (503 / close 1013) instead of
queueing; protocol faults (JSON garbage, audio before the configuration, a 100 MB frame, silence,
a client vanishing mid-stream) close that stream with a code and a reason, are logged, free the
stream, and leave every other client's results intact. Hotwords arrive as words, never as paths."""

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import running_server
from funasr_lite.api import VAD, SpeechRecognizer, TwoPass
from funasr_lite.serve.engine import ServeEngine, ServeOptions
from funasr_lite.serve.funasr_ws import client_hotwords
from test_funasr_ws import PIECE, stream


def upload(http, data: bytes, name="a.wav", fields=None, timeout=300):
    """POST multipart to /v1/audio/transcriptions -> (status, body text)."""
    boundary = "----funasrlitetest"
    parts = []
    for key, value in {"model": "x", **(fields or {})}.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(http + "/v1/audio/transcriptions", data=body, method="POST",
                                     headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wav_bytes(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def engine(model_dirs):
    return ServeEngine(ServeOptions(model_dir=model_dirs["offline"], online_model_dir=model_dirs["online"],
                                    max_connections=6, idle_timeout_s=2.0))


@pytest.fixture(scope="module")
def served(engine):
    with running_server(engine) as (http, ws, server):
        yield http, ws


def wait_until(condition, what, limit_s=60.0):
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def close_code(ws_url, send):
    """Open a stream, ``send(ws)``, return the server's close (code, reason)."""
    with connect(ws_url, open_timeout=30, max_size=None) as ws:
        try:
            send(ws)
            while True:
                ws.recv(timeout=60)
        except ConnectionClosed as e:
            return e.rcvd.code, e.rcvd.reason


def test_concurrent_streams_and_uploads_get_the_apis_results(served, engine, model_dirs, recording):
    http, ws = served
    samples, path = recording
    offline = SpeechRecognizer.from_model_dir(model_dirs["offline"])
    online = SpeechRecognizer.from_model_dir(model_dirs["online"])
    session = TwoPass(online, offline, VAD.from_model_dir()).stream((5, 10, 5), 4, 0)
    expected_events = []
    for i in range(0, samples.size, PIECE // 2):
        expected_events += session.feed(samples[i:i + PIECE // 2].astype(np.float32) / 32768)
    expected_events += session.finish()
    expected_upload = {key: offline(wav)[0]["text"] for key, wav in zip(sorted(model_dirs["waves"]), model_dirs["wavs"])}
    results, errors = {}, []

    def run_stream(i):
        try:
            results[f"s{i}"] = stream(ws, {"mode": "2pass"}, samples.astype("<i2").tobytes())
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(repr(e))

    def run_upload(i, key, wav):
        try:
            results[f"u{i}"] = (key, upload(http, wav_bytes(wav)))
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))

    threads = [threading.Thread(target=run_stream, args=(i,)) for i in range(4)]
    threads += [threading.Thread(target=run_upload, args=(i, key, wav))
                for i, (key, wav) in enumerate(zip(sorted(model_dirs["waves"]), model_dirs["wavs"]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not errors
    for i in range(4):
        assert [(m["mode"], m["text"]) for m in results[f"s{i}"]] == [(e["mode"], e["text"]) for e in expected_events]
    for i in range(5):
        key, (status, body) = results[f"u{i}"]
        assert status == 200 and json.loads(body)["text"] == expected_upload[key]
    wait_until(lambda: engine.connections == 0 and engine.pending == 0, "the streams to be freed")


def test_past_the_connection_limit_a_stream_is_closed_busy(served, engine):
    http, ws = served
    with contextlib.ExitStack() as stack:
        opened = [stack.enter_context(connect(ws, open_timeout=30)) for _ in range(engine.options.max_connections)]
        for client in opened:  # each is served (a configuration, an empty utterance)
            client.send(json.dumps({"mode": "offline", "wav_name": "x", "is_speaking": True}))
        wait_until(lambda: engine.connections == engine.options.max_connections, "all streams open")
        code, reason = close_code(ws, lambda c: None)
        assert code == 1013 and "busy" in reason
    wait_until(lambda: engine.connections == 0, "the streams to be freed")
    with connect(ws, open_timeout=30) as client:  # room again
        client.send(json.dumps({"mode": "offline", "wav_name": "x", "is_speaking": True}))
        client.send(json.dumps({"is_speaking": False}))
        assert json.loads(client.recv(timeout=60))["is_final"] is True


def test_past_the_queue_limit_uploads_get_503(model_dirs, recording):
    """max_pending 1: while one call runs (held by a gate), the next upload is refused with 503 and
    Retry-After; once the gate opens the held one completes with its text."""
    engine = ServeEngine(ServeOptions(model_dir=model_dirs["offline"], max_pending=1, workers=1))
    gate, entered = threading.Event(), threading.Event()
    original = engine.transcribe

    def gated(*args, **kwargs):
        entered.set()
        assert gate.wait(120)
        return original(*args, **kwargs)

    engine.transcribe = gated
    samples, path = recording
    with running_server(engine) as (http, ws, _):
        held = {}
        thread = threading.Thread(target=lambda: held.setdefault("r", upload(http, wav_bytes(path))))
        thread.start()
        assert entered.wait(120)
        status, body = upload(http, wav_bytes(path))
        assert status == 503 and "busy" in json.loads(body)["error"]["message"]
        with connect(ws, open_timeout=30) as client:  # a stream's model call is refused the same way
            client.send(json.dumps({"mode": "offline", "wav_name": "x", "is_speaking": True}))
            client.send(samples[:1600].astype("<i2").tobytes())
            client.send(json.dumps({"is_speaking": False}))
            with pytest.raises(ConnectionClosed) as caught:
                client.recv(timeout=60)
            assert caught.value.rcvd.code == 1013
        gate.set()
        thread.join(300)
        assert held["r"][0] == 200
        assert json.loads(held["r"][1])["text"] == SpeechRecognizer.from_model_dir(model_dirs["offline"])(path)[0]["text"]
        assert engine.stats["busy"] == 2


def test_protocol_faults_close_the_stream_with_a_reason(served, engine, caplog):
    http, ws = served
    assert close_code(ws, lambda c: c.send("{not json")) == (1007, "a text message that is not JSON: '{not json'")
    assert close_code(ws, lambda c: c.send("[1, 2]"))[0] == 1007
    code, reason = close_code(ws, lambda c: c.send(b"\x00\x01" * 100))
    assert code == 1008 and "before the JSON configuration" in reason
    code, reason = close_code(ws, lambda c: c.send(json.dumps({"mode": "3pass"})))
    assert code == 1008 and "3pass" in reason
    code, reason = close_code(ws, lambda c: c.send(json.dumps({"mode": "online", "chunk_size": "a,b"})))
    assert code == 1007 and "chunk_size" in reason
    code, reason = close_code(ws, lambda c: c.send(json.dumps({"audio_fs": -5})))
    assert code == 1007 and "audio_fs" in reason
    wait_until(lambda: engine.connections == 0, "the streams to be freed")


def _rss_mb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_a_100_mb_frame_is_refused_without_holding_it(served, engine):
    """The protocol library refuses a message past max_message_mb (16) from its header (1009),
    so the 100 MB are never buffered whole: the server's memory does not grow by them."""
    http, ws = served
    frame = bytes(100 * 1024 * 1024)
    before = _rss_mb()

    def send(client):
        client.send(json.dumps({"mode": "offline", "wav_name": "big", "is_speaking": True}))
        try:
            client.send(frame)
        except ConnectionClosed:
            pass

    code, _ = close_code(ws, send)
    assert code == 1009
    # the client's own 100 MB frame is in this process too: allow it, not a second copy
    assert _rss_mb() - before < 100 + 60
    wait_until(lambda: engine.connections == 0, "the stream to be freed")


def test_a_silent_client_is_closed_after_the_idle_timeout(served, engine):
    http, ws = served
    code, reason = close_code(ws, lambda c: c.send(json.dumps({"mode": "online", "is_speaking": True})))
    assert code == 1001 and "idle" in reason


def test_a_client_vanishing_mid_stream_is_freed_and_others_keep_their_results(served, engine, recording, caplog):
    http, ws = served
    samples, _ = recording
    pcm = samples.astype("<i2").tobytes()
    steady = {}
    thread = threading.Thread(target=lambda: steady.setdefault("m", stream(ws, {"mode": "online"}, pcm)))
    thread.start()
    for _ in range(3):  # three clients drop their TCP connection (no close frame) halfway through
        with contextlib.suppress(ConnectionClosed, OSError), connect(ws, open_timeout=30, close_timeout=1) as client:
            client.send(json.dumps({"mode": "2pass", "wav_name": "vanishing", "is_speaking": True}))
            for start in range(0, len(pcm) // 2, PIECE):
                client.send(pcm[start:start + PIECE])
            client.socket.shutdown(socket.SHUT_RDWR)
            client.socket.close()
    thread.join(600)
    reference = stream(ws, {"mode": "online"}, pcm)
    assert [m["text"] for m in steady["m"]] == [m["text"] for m in reference] and steady["m"][-1]["is_final"]
    wait_until(lambda: engine.connections == 0, "the vanished streams to be freed")
    assert any("vanishing" in r.getMessage() and "left" in r.getMessage() for r in caplog.records)


def test_client_values_never_name_files():
    """Hotwords from a client become a word list (our list form), which is never opened or fetched."""
    assert client_hotwords("/etc/hosts.txt") == ["/etc/hosts.txt"]
    assert client_hotwords("https://example.com/hw.txt") == ["https://example.com/hw.txt"]
    assert client_hotwords('{"阿里巴巴": 20, "达摩院": 10}') == ["阿里巴巴", "达摩院"]
    assert client_hotwords("张三，李四 王五") == ["张三", "李四", "王五"]
