"""Shared set-up for the server tests: tiny model dirs (random weights; the streaming one from
funasr's own class), a recording with pauses, and a server run in this process on a loopback port."""

import contextlib
import os
import socket
import sys
import threading
import time

import numpy as np
import pytest
import torch

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for sub in ("inference", "models"):
    if os.path.join(TESTS, sub) not in sys.path:
        sys.path.insert(0, os.path.join(TESTS, sub))

from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming  # noqa: E402

from funasr_dirs import build_funasr_model, save_funasr_dir  # noqa: E402
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus, write_model_dir, write_wav  # noqa: E402
from test_longform import write_punc_model_dir  # noqa: E402
from test_streaming_parity import streaming_config  # noqa: E402
from vad_recordings import build_recording  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
    """{"offline", "online", "punc"} dirs, "waves" (the corpus's int16 waves), "wavs" (their files)."""
    root = tmp_path_factory.mktemp("serve_models")
    _, waves = write_corpus(str(root / "corpus"), with_feats=False)
    wavs = [str(root / "corpus" / "wav" / f"{key}.wav") for key in sorted(waves)]
    offline = write_model_dir(str(root / "offline"), waves.values())
    config = streaming_config(5)
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    online = save_funasr_dir(str(root / "online"), config, model, TOKENS,
                             lambda mvn: write_cmvn_from_waves(mvn, waves.values()))
    punc = write_punc_model_dir(str(root / "punc"), TOKENS)
    return {"offline": offline, "online": online, "punc": punc, "waves": waves, "wavs": wavs}


@pytest.fixture(scope="session")
def recording(tmp_path_factory):
    """(int16 samples, wav path): ~12 s of espeak speech with pauses (3 streaming-VAD segments)."""
    audio, _ = build_recording(3, 12.0, 25.0, min_pause=1.5)
    samples = np.round(np.clip(audio, -1, 1 - 1 / 32768) * 32768).astype(np.int16)
    path = write_wav(tmp_path_factory.mktemp("rec") / "recording.wav", samples)
    return samples, path


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def running_server(engine, **uvicorn_options):
    """Serve ``engine`` on a free loopback port in a thread; yields ``(http_base, ws_base, server)``."""
    import uvicorn

    from funasr_lite.serve.app import create_app

    sock = free_socket()
    port = sock.getsockname()[1]
    options = {"ws_max_size": int(engine.options.max_message_mb * 1024 * 1024), "log_config": None,
               "access_log": False, "timeout_graceful_shutdown": 30, **uvicorn_options}
    server = uvicorn.Server(uvicorn.Config(create_app(engine), **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(60)
        sock.close()
