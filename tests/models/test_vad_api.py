"""``VAD.from_model_dir(DIR)(audio)``: every input form, and bad input, against documented behaviour.

Documented (docs/vad.md): a file with 0 samples or pure digital silence has no
segments (``[]``, not an error); stereo is downmixed (mean) and 8 kHz resampled, as funasr does, so
both give funasr's segments; a truncated WAV is refused with its path named (``generate`` over
several recordings names and counts it and still returns the others); a model dir that is not a
FunASR FSMN-VAD dir is refused naming the file.
"""

import io
import logging
import os
import shutil
import wave

import numpy as np
import pytest
import soundfile
import torch

from funasr_lite import VAD
from funasr_lite.frontend.audio import AudioCorruptError
from funasr_lite.models.load import CheckpointError
from funasr_lite.models.vad import VadModelDirError
from funasr_lite.models.vad.audio_blocks import read_audio_blocks
from funasr_lite.models.vad.model import released_vad_model_dir
from vad_recordings import SAMPLE_RATE, build_recording, funasr_segments, load_funasr_vad


@pytest.fixture(scope="module")
def vad():
    return VAD.from_model_dir(released_vad_model_dir())


@pytest.fixture(scope="module")
def funasr_vad():
    return load_funasr_vad(released_vad_model_dir())


@pytest.fixture(scope="module")
def recording():
    audio, _ = build_recording(51, 40.0, 20.0, level=0.6)
    return audio


@pytest.fixture(scope="module")
def expected(vad, recording):
    segments = vad.model.segment(recording)
    assert len(segments) >= 3
    return segments


def pcm16_wav(path, samples, rate=SAMPLE_RATE):
    soundfile.write(path, samples, rate, subtype="PCM_16")
    return path


def test_every_input_form_gives_the_same_segments(vad, recording, expected, tmp_path):
    assert vad(recording) == expected  # float array
    quantised = np.round(recording * 32767).astype(np.int16)
    reference = vad(quantised)  # int16 array: the same audio as every form below
    assert reference == vad(quantised.astype(np.float32) / 32768.0)
    path = pcm16_wav(str(tmp_path / "a.wav"), quantised)
    assert vad(path) == reference
    with open(path, "rb") as f:
        assert vad(f.read()) == reference  # WAV bytes
    assert vad(quantised.tobytes(), audio_fs=SAMPLE_RATE) == reference  # raw PCM bytes
    assert vad(torch.from_numpy(quantised)) == reference
    flac = str(tmp_path / "a.flac")
    soundfile.write(flac, quantised, SAMPLE_RATE)
    assert vad(flac) == reference


def test_generate_over_many_and_call_over_one(vad, recording, tmp_path):
    path = pcm16_wav(str(tmp_path / "rec.wav"), recording)
    scp = tmp_path / "wav.scp"
    scp.write_text(f"first {path}\npiped cat {path} |\n")
    results = vad.generate(str(scp))
    assert [r["key"] for r in results] == ["first", "piped"]
    assert results[0]["value"] == results[1]["value"] == vad(path)  # a file, and a Kaldi pipe
    with pytest.raises(ValueError, match="2 recordings given"):
        vad([path, path])


def test_8khz_is_resampled_like_funasr(vad, funasr_vad, recording, tmp_path):
    import torchaudio.functional

    narrow = torchaudio.functional.resample(torch.from_numpy(recording), SAMPLE_RATE, 8000).numpy()
    path = str(tmp_path / "narrow.wav")
    soundfile.write(path, narrow, 8000, subtype="FLOAT")
    ours = vad(path)
    assert ours and ours == funasr_segments(funasr_vad, path)
    assert vad(narrow, audio_fs=8000) == ours


def test_stereo_is_downmixed_like_funasr(vad, funasr_vad, recording, tmp_path):
    rng = np.random.default_rng(3)
    right = recording * 0.5 + 0.01 * rng.standard_normal(recording.size).astype(np.float32)
    stereo = np.stack([recording, right], axis=1)
    path = str(tmp_path / "stereo.wav")
    soundfile.write(path, stereo, SAMPLE_RATE, subtype="FLOAT")
    ours = vad(path)
    assert ours and ours == funasr_segments(funasr_vad, path)
    assert ours == vad(stereo.mean(axis=1).astype(np.float32))


def test_empty_silent_and_noise_recordings(vad, funasr_vad, tmp_path):
    empty = str(tmp_path / "empty.wav")
    with wave.open(empty, "wb") as w:  # a valid header with 0 samples
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
    assert vad(empty) == [] == funasr_segments(funasr_vad, empty)
    silence = str(tmp_path / "silence.wav")
    pcm16_wav(silence, np.zeros(30 * SAMPLE_RATE, dtype=np.float32))
    assert vad(silence) == [] == funasr_segments(funasr_vad, silence)
    assert vad(np.zeros(100, dtype=np.float32)) == []  # shorter than one 25 ms frame
    noise = 0.1 * np.random.default_rng(0).standard_normal(30 * SAMPLE_RATE).astype(np.float32)
    assert vad(noise) == funasr_segments(funasr_vad, noise)


def test_truncated_wav_is_refused_and_named(vad, recording, tmp_path, caplog):
    good = pcm16_wav(str(tmp_path / "good.wav"), recording)
    truncated = str(tmp_path / "cut.wav")
    with open(good, "rb") as f:
        data = f.read()
    with open(truncated, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(AudioCorruptError, match="cut.wav.*truncated"):
        vad(truncated)
    with caplog.at_level(logging.WARNING):
        results = vad.generate([good, truncated])
    assert results[0]["key"] == "good" and results[0]["value"] == vad(good)
    assert results[1]["key"] == "cut" and "truncated" in results[1]["error"] and "value" not in results[1]
    assert "cut: no VAD segments" in caplog.text and "1 of 2 recordings could not be read" in caplog.text


def test_float_file_far_outside_the_range_is_named(vad, tmp_path):
    loud = str(tmp_path / "loud.wav")
    soundfile.write(loud, np.full(16000, 3.0, dtype=np.float32), SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioCorruptError, match="loud.wav.*outside"):
        vad(loud)


def test_16khz_files_are_read_in_blocks(recording, tmp_path):
    path = pcm16_wav(str(tmp_path / "long.wav"), recording)
    blocks = list(read_audio_blocks(path, SAMPLE_RATE, 10 * SAMPLE_RATE))
    assert [b.size for b in blocks] == [10 * SAMPLE_RATE] * 4
    quantised = soundfile.read(path, dtype="float32")[0]
    np.testing.assert_array_equal(np.concatenate(blocks), quantised)


def test_model_dir_problems_are_named(tmp_path):
    source = released_vad_model_dir()
    with pytest.raises(VadModelDirError, match="no config.yaml"):
        VAD.from_model_dir(str(tmp_path))
    broken = tmp_path / "vad"
    shutil.copytree(source, broken)
    config = (broken / "config.yaml").read_text()
    (broken / "config.yaml").write_text(config.replace("model: FsmnVADStreaming", "model: Paraformer"))
    with pytest.raises(VadModelDirError, match="config.yaml: model is 'Paraformer'"):
        VAD.from_model_dir(str(broken))
    (broken / "config.yaml").write_text(config)
    with open(broken / "model.pt", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(CheckpointError, match="model.pt"):
        VAD.from_model_dir(str(broken))
