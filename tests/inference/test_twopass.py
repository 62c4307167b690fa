"""2-pass (inference/twopass.py): a streaming dir and an offline dir (random weights from funasr's
classes) with the released FSMN-VAD on a recording with pauses. The offline results come at the
streaming VAD's segment ends and equal the offline model on exactly those samples; streaming
partials come while speech goes on; a segment open at the end is closed and decoded; memory holds
the open segment only."""

import os
import sys

import numpy as np
import pytest

from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming

from funasr_lite.api import VAD, SpeechRecognizer, TwoPass
from funasr_lite.models.vad.model import released_vad_model_dir
from funasr_lite.models.vad.streaming import VadStream
from funasr_dirs import build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py
from test_funasr_model_dir import corpus, funasr_dir  # noqa: F401 (fixtures)
from test_infer import TOKENS, write_cmvn_from_waves
from test_streaming_parity import streaming_config

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models"))
from vad_recordings import build_recording  # noqa: E402 (tests/models/)

PIECE = 1600  # 100 ms a call


@pytest.fixture(scope="module")
def two_pass(tmp_path_factory, corpus, funasr_dir):
    config = streaming_config(5)
    model = build_funasr_model(FunasrParaformerStreaming, config, len(TOKENS), seed=0, alpha_bias=-0.9)
    online_dir = save_funasr_dir(str(tmp_path_factory.mktemp("online")), config, model, TOKENS,
                                 lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values()))
    assert os.path.isfile(os.path.join(released_vad_model_dir(), "model.pt")), "run bash tools/setup.sh --test"
    return TwoPass.from_model_dirs(online_dir, funasr_dir[0])


@pytest.fixture(scope="module")
def recording():
    audio, _ = build_recording(5, 20.0, 25.0)
    return audio


def run(session, audio, stop=None, piece=PIECE):
    events, held = [], 0
    end = audio.size if stop is None else stop
    for start in range(0, end, piece):
        piece_audio = audio[start:min(start + piece, end)]
        events += session.feed(piece_audio)
        held = max(held, session._audio.size)
    events += session.finish()
    return events, held


def test_offline_results_at_the_vad_ends_equal_the_offline_model_on_those_samples(two_pass, recording):
    session = two_pass.stream(max_end_silence_time=500)
    events, held = run(session, recording)
    offline = [e for e in events if e["mode"] == "2pass-offline"]
    vad = VadStream(two_pass.vad.model, 60, max_end_silence_time=500)
    vad_events = [e for start in range(0, recording.size, PIECE)
                  for e in vad.feed(recording[start:start + PIECE], is_final=start + PIECE >= recording.size)]
    ends = [e[1] for e in vad_events if e[1] >= 0]
    assert [e["end_ms"] for e in offline] == ends and len(ends) >= 3
    for event in offline:
        segment = recording[event["start_ms"] * 16:event["end_ms"] * 16]
        expected = two_pass.offline(segment, audio_fs=16000)[0]
        assert event["text"] == expected["text"] and event["token"] == expected["token"]
        assert all(event["start_ms"] <= s <= e <= event["end_ms"] + 120 for s, e in event["timestamp"])
    assert sum(len(e["text"]) for e in offline) >= 3
    # partials while speech goes on: some before the first offline result
    first_offline = next(i for i, e in enumerate(events) if e["mode"] == "2pass-offline")
    assert any(e["mode"] == "2pass-online" and e["text"] for e in events[:first_offline])
    longest = max(e["end_ms"] - e["start_ms"] for e in offline) * 16
    assert held <= longest + 16000 + 2 * PIECE  # the open segment and a second before it, not the recording


def test_a_segment_open_at_the_end_is_closed_and_decoded(two_pass, recording):
    session = two_pass.stream(max_end_silence_time=500)
    full, _ = run(session, recording)
    longest = max((e for e in full if e["mode"] == "2pass-offline"), key=lambda e: e["end_ms"] - e["start_ms"])
    assert longest["end_ms"] - longest["start_ms"] >= 1000
    cut = (longest["start_ms"] + longest["end_ms"]) // 2 * 16  # in the middle of its longest segment
    session.reset()
    events, _ = run(session, recording, stop=cut)
    last = [e for e in events if e["mode"] == "2pass-offline"][-1]
    assert cut // 16 - 60 <= last["end_ms"] <= cut // 16  # the VAD closes it at its last frame
    assert last["start_ms"] == longest["start_ms"] and last["text"]
    with pytest.raises(RuntimeError, match="finished"):
        session.feed(recording[:100])


def test_the_command_line_prints_and_writes_the_events(two_pass, recording, tmp_path):
    import json

    import soundfile

    from funasr_lite.bin import twopass as twopass_cli

    wav = str(tmp_path / "rec.wav")
    soundfile.write(wav, recording, 16000, subtype="FLOAT")
    out = tmp_path / "out"
    online_dir = two_pass.online.loaded.files.model_dir
    offline_dir = two_pass.offline.loaded.files.model_dir
    rc = twopass_cli.main(["--online_model_dir", online_dir, "--offline_model_dir", offline_dir, "--wav", wav,
                           str(tmp_path / "missing.wav"), "--max_end_silence_time", "500", "--output_dir", str(out)])
    assert rc == 3  # the missing file is named and skipped, the other done
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    offline = [e for e in events if e["mode"] == "2pass-offline"]
    session = two_pass.stream(max_end_silence_time=500)
    expected, _ = run(session, recording, piece=960)
    assert [e["text"] for e in offline] == [e["text"] for e in expected if e["mode"] == "2pass-offline"]
    assert (out / "text").read_text().startswith("rec ")
