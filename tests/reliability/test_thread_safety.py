"""One Paraformer object called from 8 threads at once (a web server's pattern) gives exactly
the results of serial calls, and nothing crashes."""

import os
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "drills"))
import drill_kit as kit  # noqa: E402

THREADS = 8


@pytest.fixture(scope="module")
def asr(tmp_path_factory):
    from funasr_lite import SpeechRecognizer

    torch.set_num_threads(1)
    return SpeechRecognizer.from_model_dir(kit.write_model_dir(str(tmp_path_factory.mktemp("model")), d_model=32))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """24 requests of three kinds: float arrays (16 and 8 kHz), wav files, wav bytes."""
    root = tmp_path_factory.mktemp("audio")
    requests = []
    for i in range(24):
        seconds = 0.6 + 0.15 * (i % 7)
        if i % 3 == 0:
            rate = 8000 if i % 2 else 16000
            requests.append(((kit.synth_wave(seconds, seed=i, sample_rate=rate),), {"audio_fs": rate}))
        elif i % 3 == 1:
            requests.append(((kit.write_wav(str(root / f"r{i}.wav"), kit.synth_wave(seconds, seed=i)),), {}))
        else:
            path = kit.write_wav(str(root / f"b{i}.wav"), kit.synth_wave(seconds, seed=i))
            with open(path, "rb") as f:
                requests.append(((f.read(),), {}))
    return requests


def _call(asr, request):
    args, kwargs = request
    return asr(*args, **kwargs)


def test_eight_threads_give_the_serial_results(asr, inputs):
    serial = [_call(asr, request) for request in inputs]
    assert sum(len(r[0]["token"]) for r in serial) > 0  # a model that says something
    for _ in range(2):  # twice: different interleavings
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            parallel = list(pool.map(lambda request: _call(asr, request), inputs))
        for one, other in zip(serial, parallel):
            assert len(one) == len(other) == 1
            a, b = one[0], other[0]
            assert (a["key"], a["text"], a["token"], a["timestamp"]) == (b["key"], b["text"], b["token"], b["timestamp"])
            assert a["score"] == pytest.approx(b["score"], abs=1e-5)


def test_threads_with_lists_and_a_bad_item_each(asr, inputs, tmp_path):
    """Lists with a bad element, from 8 threads: the bad one is reported (an "error" entry in its
    place, no text) each time, the rest equal the serial results."""
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    good = [request[0][0] for request in inputs if isinstance(request[0][0], str)][:3]
    expected = asr(good)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        results = list(pool.map(lambda _: asr([good[0], str(bad), *good[1:]]), range(THREADS)))
    for result in results:
        assert [r["key"] for r in result] == [expected[0]["key"], "bad", *[r["key"] for r in expected[1:]]]
        assert "error" in result[1] and "text" not in result[1]
        decoded = [r for r in result if "error" not in r]
        assert [r["token"] for r in decoded] == [r["token"] for r in expected]
