"""The user-facing recogniser: every audio_in form gives the result of the same audio."""

import functools
import http.server
import io
import os

import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from funasr_lite.api import AudioInputError, fetch_url
from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.writers import read_1best_recog
from test_infer import SAMPLE_RATE, assert_same_results, synth_wave, write_model_dir, write_wav
from local_http import local_http_server  # tests/local_http.py

RESULT_KEYS = ["key", "text", "token", "score", "timestamp"]


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """speech.wav (16 kHz), other.wav, speech8k.wav (8 kHz) and raw PCM of speech."""
    root = tmp_path_factory.mktemp("audio")
    samples = synth_wave(2.2, seed=11)
    write_wav(root / "speech.wav", samples)
    write_wav(root / "other.wav", synth_wave(1.4, seed=12))
    write_wav(root / "speech8k.wav", synth_wave(2.2, seed=13, sample_rate=8000), sample_rate=8000)
    (root / "speech.pcm").write_bytes(samples.astype("<i2").tobytes())
    with open(root / "wav.scp", "w") as f:
        f.write(f"first {root / 'speech.wav'}\nsecond {root / 'other.wav'}\n")
    return root


@pytest.fixture(scope="module")
def asr(tmp_path_factory, audio_dir):
    from funasr_lite import SpeechRecognizer  # the lazy package-level name

    model_dir = write_model_dir(str(tmp_path_factory.mktemp("model")),
                                [synth_wave(2.0, seed=s) for s in range(3)])
    return SpeechRecognizer.from_model_dir(model_dir)


@pytest.fixture(scope="module")
def reference(asr, audio_dir):
    """The result of decoding speech.wav by its path."""
    results = asr(str(audio_dir / "speech.wav"))
    assert len(results) == 1 and len(results[0]["token"]) >= 3
    return results[0]


@pytest.fixture(scope="module")
def http_root(audio_dir):
    """A local HTTP server (in a thread) serving audio_dir; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(audio_dir))
    handler.log_message = lambda *args: None
    with local_http_server(handler) as url:
        yield url


def same_as(result, expected, key=None):
    assert list(result) == RESULT_KEYS
    assert result["key"] == (key or expected["key"])
    assert_same_results([dict(result, key="x")], [dict(expected, key="x")])


def test_result_has_the_documented_fields(reference):
    assert reference["key"] == "speech"
    assert isinstance(reference["text"], str) and isinstance(reference["score"], float)
    assert len(reference["timestamp"]) == len(reference["token"])
    assert all(start <= end for start, end in reference["timestamp"])


def test_wav_bytes(asr, audio_dir, reference):
    same_as(asr((audio_dir / "speech.wav").read_bytes())[0], reference, key="utt1")


def test_raw_pcm_bytes_with_audio_fs(asr, audio_dir, reference):
    same_as(asr((audio_dir / "speech.pcm").read_bytes(), audio_fs=16000)[0], reference, key="utt1")
    same_as(asr(str(audio_dir / "speech.pcm"), audio_fs=16000)[0], reference)


def test_numpy_float_and_int16_tensor(asr, audio_dir, reference):
    float_samples, rate = soundfile.read(str(audio_dir / "speech.wav"))  # float64 in [-1, 1]
    assert rate == SAMPLE_RATE and float_samples.dtype == np.float64
    same_as(asr(float_samples, audio_fs=16000)[0], reference, key="utt1")
    int_samples, _ = soundfile.read(str(audio_dir / "speech.wav"), dtype="int16")
    same_as(asr(torch.from_numpy(int_samples))[0], reference, key="utt1")  # audio_fs defaults to the model's
    same_as(asr(torch.from_numpy(float_samples).float()[None, :], audio_fs=16000)[0], reference, key="utt1")


def test_8khz_numpy_is_resampled_to_the_model_rate(asr, audio_dir):
    samples, rate = soundfile.read(str(audio_dir / "speech8k.wav"), dtype="float32")
    assert rate == 8000
    from_array = asr(samples, audio_fs=8000)[0]
    # Independent path: resample here, then give 16 kHz samples.
    upsampled = torchaudio.functional.resample(torch.from_numpy(samples), 8000, SAMPLE_RATE).numpy()
    same_as(from_array, asr(upsampled, audio_fs=SAMPLE_RATE)[0])
    same_as(asr(str(audio_dir / "speech8k.wav"))[0], from_array, key="speech8k")
    assert from_array["token"] != asr(samples, audio_fs=SAMPLE_RATE)[0]["token"]  # the rate matters


def test_wav_scp_with_two_entries(asr, audio_dir, reference):
    results = asr(str(audio_dir / "wav.scp"))
    assert [r["key"] for r in results] == ["first", "second"]
    same_as(results[0], reference, key="first")
    same_as(results[1], asr(str(audio_dir / "other.wav"))[0], key="second")


def test_list_input_and_explicit_keys(asr, audio_dir, reference):
    samples, _ = soundfile.read(str(audio_dir / "speech.wav"), dtype="int16")
    results = asr([str(audio_dir / "speech.wav"), samples, str(audio_dir / "speech.wav")])
    assert [r["key"] for r in results] == ["speech", "utt2", "speech_2"]
    for result in results:
        same_as(result, reference, key=result["key"])
    assert asr(samples, key="mine")[0]["key"] == "mine"


def test_http_url(asr, http_root, reference):
    same_as(asr(f"{http_root}/speech.wav")[0], reference)
    same_as(asr(f"{http_root}/speech.pcm", audio_fs=16000)[0], reference)


def test_http_errors_are_clear(asr, http_root):
    with pytest.raises(AudioInputError, match=r"/missing\.wav: HTTP 404"):
        asr(f"{http_root}/missing.wav")
    with pytest.raises(AudioInputError, match=r"more than the limit of 1000"):
        fetch_url(f"{http_root}/speech.wav", max_bytes=1000)
    with pytest.raises(AudioInputError, match=r"127\.0\.0\.1:9/x\.wav: cannot fetch"):
        fetch_url("http://127.0.0.1:9/x.wav", timeout=5)


def test_output_dir_writes_1best_recog(asr, audio_dir, tmp_path, reference):
    results = asr(str(audio_dir / "wav.scp"), output_dir=str(tmp_path))
    recog = tmp_path / "1best_recog"
    assert sorted(os.listdir(recog)) == ["rtf", "score", "text", "time_stamp", "token"]
    written = read_1best_recog(recog)
    assert [w["key"] for w in written] == ["first", "second"]
    for result, row in zip(results, written):
        assert row["text"] == result["text"] and row["token"] == result["token"]
        assert row["score"] == result["score"] and row["timestamp"] == result["timestamp"]
        assert row["audio_s"] > 0 and row["compute_s"] > 0


def test_bad_inputs_are_refused_with_a_reason(asr, audio_dir):
    samples, _ = soundfile.read(str(audio_dir / "speech.wav"), dtype="int16")
    with pytest.raises(AudioInputError, match=r"float samples reach .*pass int16 samples as an int16 array"):
        asr(samples.astype(np.float32))
    with pytest.raises(AudioInputError, match="not a whole number of 16-bit samples"):
        asr(b"\x01\x02\x03")
    with pytest.raises(AudioInputError, match="dtype int64"):
        asr(samples.astype(np.int64))
    with pytest.raises(AudioInputError, match="expected mono samples"):
        asr(np.zeros((2, 1000), dtype=np.float32))
    with pytest.raises(AudioInputError, match="no such file"):
        asr(str(audio_dir / "nothing.wav"))
    with pytest.raises(AudioInputError, match="of type dict is not supported"):
        asr({"audio": 1})
    stereo = io.BytesIO()
    soundfile.write(stereo, np.zeros((1600, 2), dtype=np.int16), SAMPLE_RATE, format="WAV")
    with pytest.raises(AudioInputError, match=r"channel 2 requested but the file has 2 channel\(s\)"):
        asr(stereo.getvalue(), channel=2)


def test_cli_audio_option_wraps_the_api(asr, audio_dir, http_root, reference, capsys):
    model_dir = asr.loaded.files.model_dir
    assert infer_cli.main(["--model_dir", model_dir, "--audio", f"{http_root}/speech.wav"]) == 0
    assert capsys.readouterr().out == f"speech {reference['text']}\n"


def test_old_api_name_still_works_with_a_deprecation_warning():
    """``funasr_lite.Paraformer`` was this API's name; the model class keeps that name alone now."""
    import funasr_lite
    from funasr_lite.api import SpeechRecognizer
    from funasr_lite.models.paraformer.model import Paraformer as ParaformerModel

    with pytest.warns(DeprecationWarning, match="SpeechRecognizer"):
        assert funasr_lite.Paraformer is SpeechRecognizer
    assert ParaformerModel is not SpeechRecognizer
