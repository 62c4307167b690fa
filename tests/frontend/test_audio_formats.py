"""Odd WAV formats through frontend.audio (the toolkit's one audio reader).

Files written here with soundfile in every sample format libsndfile writes into WAV/RF64, and the
odd WAVs shipped in scipy's own test data. Expected samples come from an independent decoder:
the hand-chosen values themselves (exact in every format), the G.711 decoding tables (written
here from the ITU-T G.711 rules, and checked against Python's audioop where it exists: it is gone
in Python 3.13) for u-law/A-law, and scipy.io.wavfile for scipy's files.
"""

import importlib
import os
import struct
import warnings

import numpy as np
import pytest
import scipy
import scipy.io.wavfile
import soundfile as sf

from funasr_lite.frontend.audio import AudioChannelError, AudioCorruptError, load_audio, read_audio

SCIPY_DATA = os.path.join(os.path.dirname(scipy.__file__), "io", "tests", "data")

# k / 128 for k in -128..127: exact in 8-bit unsigned, 16/24/32-bit int and 32/64-bit float.
EXACT_VALUES = np.arange(-128, 128, dtype=np.float64) / 128.0


@pytest.mark.parametrize("container, subtype", [
    ("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
    ("WAV", "DOUBLE"), ("WAVEX", "PCM_24"), ("RF64", "PCM_16"), ("RF64", "PCM_32"), ("RF64", "FLOAT"),
])
def test_integer_and_float_samples_are_read_exactly(tmp_path, container, subtype):
    path = str(tmp_path / f"x_{container}_{subtype}.wav")
    sf.write(path, EXACT_VALUES, 16000, format=container, subtype=subtype)
    samples, rate, info = read_audio(path)
    assert rate == 16000 and info.num_channels == 1 and samples.dtype == np.float32
    np.testing.assert_array_equal(samples, EXACT_VALUES.astype(np.float32))


def _data_chunk(path):
    """The bytes of a RIFF/WAVE file's data chunk (parsed by hand)."""
    with open(path, "rb") as f:
        blob = f.read()
    position = 12
    while position + 8 <= len(blob):
        chunk_id, size = struct.unpack("<4sI", blob[position:position + 8])
        if chunk_id == b"data":
            return blob[position + 8:position + 8 + size]
        position += 8 + size + (size & 1)
    raise AssertionError(f"{path}: no data chunk")


def _ulaw_to_linear16(code: int) -> int:
    """G.711 u-law byte -> 16-bit linear (the bits are stored inverted; bias 0x84 = 132)."""
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    return 0x84 - magnitude if code & 0x80 else magnitude - 0x84


def _alaw_to_linear16(code: int) -> int:
    """G.711 A-law byte -> 16-bit linear (even bits inverted: XOR 0x55; segment 0 has no leading 1)."""
    code ^= 0x55
    mantissa, segment = (code & 0x0F) << 4, (code & 0x70) >> 4
    magnitude = mantissa + 8 if segment == 0 else (mantissa + 0x108) << (segment - 1)
    return magnitude if code & 0x80 else -magnitude


G711_TABLES = {name: np.array([decode(code) for code in range(256)], dtype="<i2")
               for name, decode in (("ulaw", _ulaw_to_linear16), ("alaw", _alaw_to_linear16))}


def _g711_to_linear16(data: bytes, law: str) -> np.ndarray:
    return G711_TABLES[law][np.frombuffer(data, dtype=np.uint8)]


def _audioop():
    """Python's audioop (deprecated in 3.11, removed in 3.13), or None."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return importlib.import_module("audioop")
        except ModuleNotFoundError:
            return None


def test_g711_tables_follow_the_standard():
    ulaw, alaw = G711_TABLES["ulaw"], G711_TABLES["alaw"]
    # G.711's end points and zeros: u-law +-32124 (0x80/0x00) and 0 (0xFF/0x7F); A-law
    # +-32256 (0xAA/0x2A) and +-8 (0xD5/0x55); both odd-symmetric under the sign bit
    assert (ulaw[0x80], ulaw[0x00], ulaw[0xFF], ulaw[0x7F]) == (32124, -32124, 0, 0)
    assert (alaw[0xAA], alaw[0x2A], alaw[0xD5], alaw[0x55]) == (32256, -32256, 8, -8)
    np.testing.assert_array_equal(ulaw[:128], -ulaw[128:])
    np.testing.assert_array_equal(alaw[:128], -alaw[128:])
    # each table is monotonic along its codes' magnitude order: 8 segments of 16 steps
    assert np.all(np.diff(ulaw[128:].astype(int)) < 0) and np.all(np.diff(alaw[0xD5 ^ np.arange(128)].astype(int)) > 0)
    audioop = _audioop()
    if audioop is not None:  # where Python still has audioop, its tables are these, all 256 codes
        codes = bytes(range(256))
        np.testing.assert_array_equal(np.frombuffer(audioop.ulaw2lin(codes, 2), dtype="<i2"), ulaw)
        np.testing.assert_array_equal(np.frombuffer(audioop.alaw2lin(codes, 2), dtype="<i2"), alaw)


@pytest.mark.parametrize("subtype, law", [("ULAW", "ulaw"), ("ALAW", "alaw")])
def test_g711_samples_match_the_standard_tables(tmp_path, subtype, law):
    path = str(tmp_path / f"x_{subtype}.wav")
    rng = np.random.default_rng(0)
    sf.write(path, rng.uniform(-0.9, 0.9, 800), 8000, subtype=subtype)
    linear = _g711_to_linear16(_data_chunk(path), law)
    samples, rate, _ = read_audio(path, target_sr=None)
    assert rate == 8000
    np.testing.assert_array_equal(samples, linear.astype(np.float32) / 32768.0)


def _scipy_reference(path):
    """(N, C) float64 in [-1, 1] decoded by scipy.io.wavfile (integers scaled by their container)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rate, data = scipy.io.wavfile.read(path)
    data = data.reshape(len(data), -1)
    if data.dtype.kind == "f":
        return rate, data.astype(np.float64)
    if data.dtype == np.uint8:
        return rate, (data.astype(np.float64) - 128.0) / 128.0
    return rate, data.astype(np.float64) / float(2 ** (8 * data.dtype.itemsize - 1))


# scipy's odd files that libsndfile decodes: big-endian, RF64, WAVE_FORMAT_EXTENSIBLE, 8-bit
# unsigned, 24-bit, 12 bits in 16, 5 bits in 8, 3-5 channels, a 20-bit file with an extra chunk.
READABLE = [
    "test-1234Hz-le-1ch-10S-20bit-extra.wav", "test-44100Hz-2ch-32bit-float-be.wav",
    "test-44100Hz-2ch-32bit-float-le.wav", "test-44100Hz-be-1ch-4bytes.wav", "test-44100Hz-le-1ch-4bytes-rf64.wav",
    "test-44100Hz-le-1ch-4bytes.wav", "test-48000Hz-2ch-64bit-float-le-wavex.wav", "test-8000Hz-be-3ch-5S-24bit.wav",
    "test-8000Hz-le-2ch-1byteu.wav", "test-8000Hz-le-3ch-5S-24bit-rf64.wav", "test-8000Hz-le-3ch-5S-24bit.wav",
    "test-8000Hz-le-4ch-9S-12bit.wav", "test-8000Hz-le-5ch-9S-5bit.wav",
]


@pytest.mark.parametrize("name", READABLE)
def test_scipys_odd_wavs_read_as_scipy_reads_them(name):
    path = os.path.join(SCIPY_DATA, name)
    expected_rate, expected = _scipy_reference(path)
    samples, rate = load_audio(path)
    assert rate == expected_rate and samples.shape == expected.shape
    np.testing.assert_allclose(samples, expected, rtol=0, atol=1e-7)
    mono, _, info = read_audio(path, target_sr=None)  # default: the channel mean (FunASR's choice)
    assert info.num_channels == expected.shape[1]
    np.testing.assert_allclose(mono, expected.mean(axis=1), rtol=0, atol=1e-6)
    last, _, _ = read_audio(path, target_sr=None, channel=expected.shape[1] - 1)
    np.testing.assert_allclose(last, expected[:, -1], rtol=0, atol=1e-7)
    with pytest.raises(AudioChannelError, match=f"{name}: channel {expected.shape[1]} requested"):
        read_audio(path, channel=expected.shape[1])


def test_scipys_ulaw_file_reads_as_g711():
    path = os.path.join(SCIPY_DATA, "test-8000Hz-le-1ch-1byte-ulaw.wav")
    linear = _g711_to_linear16(_data_chunk(path), "ulaw")
    samples, rate, _ = read_audio(path, target_sr=None)
    assert rate == 8000
    np.testing.assert_array_equal(samples, linear.astype(np.float32) / 32768.0)


@pytest.mark.parametrize("name, message", [
    ("test-44100Hz-le-1ch-4bytes-early-eof.wav", "truncated: data chunk declares 17640 bytes, file holds 944"),
    ("test-44100Hz-le-1ch-4bytes-early-eof-no-data.wav", "No 'data' chunk"),
    ("test-44100Hz-le-1ch-4bytes-incomplete-chunk.wav", "No 'data' chunk"),
    ("test-8000Hz-le-3ch-5S-36bit.wav", "unimplemented format"),
    ("test-8000Hz-le-3ch-5S-45bit.wav", "unimplemented format"),
    ("test-8000Hz-le-3ch-5S-53bit.wav", "unimplemented format"),
    ("test-8000Hz-le-3ch-5S-64bit.wav", "unimplemented format"),
])
def test_scipys_unusable_wavs_are_refused_naming_the_file(name, message):
    with pytest.raises(AudioCorruptError, match=name) as raised:
        read_audio(os.path.join(SCIPY_DATA, name))
    assert message in str(raised.value)
    assert raised.value.reason == "corrupt"
