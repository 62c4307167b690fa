"""WavFrontend: fbank -> LFR -> CMVN from frontend_conf + am.mvn, and the fbank.json record."""

import json

import numpy as np
import pytest
import torch
import torchaudio

from funasr_lite.frontend.cmvn import CmvnError, write_am_mvn
from funasr_lite.frontend.wav_frontend import (
    FeatureOptionsError,
    WavFrontend,
    check_feature_options,
    fbank_options,
    read_fbank_options,
    write_fbank_options,
)
from funasr_lite.utils.config import FRONTEND_DEFAULTS


def _lfr_by_hand(x, m, n):
    frames = []
    t = x.shape[0]
    for i in range(-(-t // n)):
        frames.append(np.concatenate([x[min(max(n * i + k, 0), t - 1)] for k in range(-((m - 1) // 2), m - (m - 1) // 2)]))
    return np.stack(frames)


def test_call_is_kaldi_fbank_then_lfr_then_cmvn(tmp_path):
    conf = {"n_mels": 24, "frame_length": 20, "frame_shift": 8, "window": "povey", "lfr_m": 3, "lfr_n": 2}
    rng = np.random.default_rng(1)
    shift, scale = rng.normal(size=72), rng.uniform(0.5, 2.0, size=72)
    write_am_mvn(tmp_path / "am.mvn", shift, scale)
    frontend = WavFrontend(conf, tmp_path / "am.mvn")
    wave = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    # Independent: torchaudio's Kaldi fbank with the options spelled out, LFR and CMVN by hand.
    fbank = torchaudio.compliance.kaldi.fbank(torch.from_numpy(wave)[None] * 32768, num_mel_bins=24,
                                              frame_length=20.0, frame_shift=8.0, window_type="povey",
                                              dither=0.0, energy_floor=0.0, sample_frequency=16000).numpy()
    assert torch.equal(frontend.fbank(wave), torch.from_numpy(fbank))
    expected = (_lfr_by_hand(fbank.astype(np.float64), 3, 2) + shift) * scale
    out = frontend(wave)
    assert out.dtype == torch.float32 and out.shape == (-(-fbank.shape[0] // 2), 72)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-4)
    assert torch.equal(frontend.lfr_cmvn(fbank), out)  # the raw-fbank entry is the same path
    assert frontend.num_frames(8000) == out.shape[0]
    assert frontend.output_frame_ms == 16.0


def test_defaults_are_funasr_wav_frontend_and_dither_is_off():
    frontend = WavFrontend({"dither": 1.0})  # a FunASR config's training dither is not used here
    assert frontend.conf["fs"] == 16000 and frontend.n_mels == 80 and frontend.conf["window"] == "hamming"
    assert frontend.dither == 0.0 and frontend.fbank_options()["dither"] == 0.0
    wave = np.sin(np.arange(4000) / 7.0).astype(np.float32) * 0.3
    assert torch.equal(frontend.fbank(wave), frontend.fbank(wave))
    assert FRONTEND_DEFAULTS["n_mels"] == 80 and FRONTEND_DEFAULTS["frame_length"] == 25


def test_cmvn_of_another_dim_is_refused(tmp_path):
    write_am_mvn(tmp_path / "am.mvn", np.zeros(80), np.ones(80))
    with pytest.raises(CmvnError, match=r"am.mvn has 80 dims but .* n_mels \* lfr_m = 80 \* 7 = 560"):
        WavFrontend({"lfr_m": 7, "lfr_n": 6}, tmp_path / "am.mvn")


def test_feature_options_record_round_trip_and_check(tmp_path):
    options = fbank_options(WavFrontend({"n_mels": 40, "frame_length": 32}).conf)
    assert options["frame_length"] == 32.0 and options["n_mels"] == 40 and options["snip_edges"] is True
    write_fbank_options(tmp_path / "fbank.json", options)
    assert read_fbank_options(tmp_path / "fbank.json") == options
    assert json.loads((tmp_path / "fbank.json").read_text()) == options
    assert check_feature_options(tmp_path, {**options, "frame_length": 32, "dither": 1.0}, "conf.yaml")
    with pytest.raises(FeatureOptionsError, match=r"fbank.json: features were made with window=hamming n_mels=40 "
                                                  r"but conf.yaml has window=povey n_mels=80"):
        check_feature_options(tmp_path, {**options, "n_mels": 80, "window": "povey"}, "conf.yaml")
    (tmp_path / "fbank.json").write_text("[1, 2]")
    with pytest.raises(FeatureOptionsError, match="expected a JSON object"):
        check_feature_options(tmp_path, options, "conf.yaml")
    assert not check_feature_options(tmp_path / "nowhere", options, "conf.yaml")  # no record: warned only
