"""``python -m funasr_lite.bin.serve`` as a user starts it: TLS with --certfile/--keyfile (https and
wss), localhost by default, and a graceful shutdown: SIGTERM while an upload is being decoded lets
it finish with its text, then the process ends (uvicorn re-raises the SIGTERM)."""

import json
import os
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest
from websockets.sync.client import connect

from conftest import free_socket
from funasr_lite.api import SpeechRecognizer
from funasr_lite.models.vad.model import released_vad_model_dir
from test_infer import write_wav
from test_limits_and_faults import upload

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_server(args, log_path):
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # the server binds it next (a tiny race with other processes, on loopback only)
    log = open(log_path, "w")
    process = subprocess.Popen([sys.executable, "-m", "funasr_lite.bin.serve", "--port", str(port), *args],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    return process, port


def wait_healthy(url, process, log_path, context=None, limit_s=180):
    deadline = time.monotonic() + limit_s
    while True:
        assert process.poll() is None, open(log_path).read()[-3000:]
        try:
            with urllib.request.urlopen(url + "/health", timeout=5, context=context) as response:
                return json.loads(response.read())
        except OSError:
            assert time.monotonic() < deadline, open(log_path).read()[-3000:]
            time.sleep(0.2)


def stop(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_tls_serves_https_and_wss(model_dirs, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                           str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    log_path = tmp_path / "serve.log"
    process, port = start_server(["--model_dir", model_dirs["offline"], "--certfile", str(cert), "--keyfile", str(key)],
                                 log_path)
    try:
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        health = wait_healthy(f"https://127.0.0.1:{port}", process, log_path, context)
        assert health["modes"] == ["offline"]
        waves = model_dirs["waves"]
        key_name = sorted(waves)[0]
        with connect(f"wss://127.0.0.1:{port}", ssl=context, open_timeout=30) as client:
            client.send(json.dumps({"mode": "offline", "wav_name": key_name, "is_speaking": True}))
            client.send(waves[key_name].astype("<i2").tobytes())
            client.send(json.dumps({"is_speaking": False}))
            message = json.loads(client.recv(timeout=60))
        expected = SpeechRecognizer.from_model_dir(model_dirs["offline"])(waves[key_name], audio_fs=16000)[0]
        assert message["text"] == expected["text"] and message["is_final"]
        with pytest.raises(OSError):  # plain http is not served on a TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10).read()
        assert "serving" in open(log_path).read() and "127.0.0.1" in open(log_path).read()
    finally:
        stop(process)


def test_sigterm_finishes_the_running_upload(model_dirs, recording, tmp_path):
    samples, _ = recording
    long_path = write_wav(tmp_path / "long.wav", np.tile(samples, 20))  # 4 minutes: VAD + decode take a while
    log_path = tmp_path / "serve.log"
    process, port = start_server(["--model_dir", model_dirs["offline"], "--vad_model_dir", released_vad_model_dir(),
                                  "--graceful_timeout_s", "300"], log_path)
    http = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(http, process, log_path)
        with open(long_path, "rb") as f:
            data = f.read()
        answer = {}
        thread = threading.Thread(target=lambda: answer.setdefault("r", upload(http, data)))
        thread.start()
        # progress, not the clock: SIGTERM once the server reports the call running
        deadline = time.monotonic() + 120
        while wait_healthy(http, process, log_path)["pending"] < 1:
            assert thread.is_alive() and time.monotonic() < deadline, f"the upload never ran: {answer}"
            time.sleep(0.01)
        process.send_signal(signal.SIGTERM)
        thread.join(300)
        # uvicorn re-raises the signal once it has shut down, so the parent sees "terminated by SIGTERM"
        assert process.wait(120) in (0, -signal.SIGTERM)
        status, body = answer["r"]
        assert status == 200
        expected = SpeechRecognizer.from_model_dir(model_dirs["offline"], vad_model=released_vad_model_dir())(long_path)[0]
        assert json.loads(body)["text"] == expected["text"] and len(expected["text"]) > 50
        log = open(log_path).read()
        assert log.index("Shutting down") < log.index("upload 'a.wav'") < log.index("Finished server process")
    finally:
        stop(process)
