"""The streaming FSMN-VAD (models/vad/streaming.py) against funasr's on the released model: fed the
same pieces, every call returns FunASR's events ([start, -1], [-1, end], [start, end]) — with its
end-silence schedule, and with a fixed end silence."""

import os

import numpy as np
import pytest

from funasr_lite.models.vad import FsmnVad
from funasr_lite.models.vad.model import released_vad_model_dir
from funasr_lite.models.vad.streaming import VadStream
from vad_recordings import build_recording, load_funasr_vad


@pytest.fixture(scope="module")
def models():
    path = released_vad_model_dir()
    assert os.path.isfile(os.path.join(path, "model.pt")), f"{path} missing: run bash tools/setup.sh --test"
    return load_funasr_vad(path), FsmnVad.from_model_dir(path)


def calls(audio, piece, feed):
    out = []
    for start in range(0, audio.size, piece):
        out.append(feed(audio[start:start + piece], start + piece >= audio.size))
    return out


@pytest.mark.parametrize("seed,seconds,chunk_ms,piece,silence", [
    (1, 25.0, 60, 960, None), (2, 40.0, 200, 3200, None), (2, 40.0, 60, 1000, None), (3, 30.0, 60, 960, 500),
])
def test_every_call_returns_funasrs_events(models, seed, seconds, chunk_ms, piece, silence):
    funasr_vad, ours = models
    audio, _ = build_recording(seed, seconds, 20.0)
    options = {} if silence is None else {"max_end_silence_time": silence}
    cache = {}
    theirs = calls(audio, piece, lambda p, final: funasr_vad.generate(
        input=p, cache=cache, is_final=final, chunk_size=chunk_ms, disable_pbar=True, **options)[0]["value"])
    stream = VadStream(ours, chunk_ms, max_end_silence_time=silence)
    mine = calls(audio, piece, lambda p, final: stream.feed(p, is_final=final))
    assert mine == theirs
    events = [e for call in mine for e in call]
    assert len(events) >= 4 and events[0][1] == -1  # segments open before they close: a real stream
    with pytest.raises(RuntimeError, match="finished"):
        stream.feed(audio[:100])
    stream.reset()
    again = calls(audio, piece, lambda p, final: stream.feed(p, is_final=final))
    assert again == mine


def test_piece_sizes_only_regroup_the_events(models):
    _, ours = models
    audio, _ = build_recording(4, 20.0, 15.0)
    flat = []
    for piece in (960, 7, 48000):
        stream = VadStream(ours, 60)
        flat.append([e for call in calls(audio, piece, lambda p, final: stream.feed(p, is_final=final)) for e in call])
    assert flat[0] == flat[1] == flat[2] and flat[0]
    assert np.all(np.diff([e[0] for e in flat[0] if e[0] >= 0]) > 0)
