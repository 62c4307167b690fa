"""8 kHz model dirs (issue #25: the seed's 8 kHz Paraformer/UniASR models differ from the 16 kHz
ones only by ``frontend_conf.fs: 8000``): a random-weight FunASR Paraformer dir at 8 kHz decodes
8 kHz wavs to AutoModel's text, features made at 8 kHz (never resampled up); 16 kHz
input is resampled down to the model's rate. (UniASR at 8 kHz: test_uniasr_model_dir.py.)"""

import copy

import numpy as np
import soundfile

from funasr_lite.api import SpeechRecognizer
from funasr_lite.frontend.audio import resample_waveform
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_files
from funasr_dirs import assert_off_cif_thresholds, save_funasr_dir
from test_funasr_model_dir import build_funasr_model, corpus, funasr_automodel, funasr_style_config  # noqa: F401
from test_infer import TOKENS, write_cmvn_from_waves


def _waves_8k(corpus):
    return {key: resample_waveform(wave.astype(np.float32) / 32768.0, 16000, 8000) for key, wave in corpus[1].items()}


def test_an_8khz_paraformer_dir_decodes_8khz_audio_as_automodel(tmp_path, corpus):
    waves = _waves_8k(corpus)
    config = copy.deepcopy(funasr_style_config())
    config["frontend_conf"]["fs"] = 8000
    model = build_funasr_model(config, len(TOKENS), seed=2)
    # am.mvn from 8 kHz features, as an 8 kHz model's own statistics are
    model_dir = save_funasr_dir(str(tmp_path / "paraformer8k"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(
                                    mvn, [np.round(w * 32767).astype(np.int16) for w in waves.values()]))
    paths = []
    for key, wave in sorted(waves.items()):
        paths.append(str(tmp_path / f"{key}_8k.wav"))
        soundfile.write(paths[-1], wave, 8000, subtype="FLOAT")
    loaded = load_model_dir(model_dir)
    assert loaded.sample_rate == 8000
    speech2text = Speech2Text(loaded)
    prepared = speech2text.prepare(0, items_from_wav_files(paths[:1])[0])
    # 8 kHz features: 10 ms frames of the 8 kHz signal (not of a 16 kHz version of it)
    frames = 1 + (waves[sorted(waves)[0]].size - 200) // 80  # 25 ms windows (200 samples) every 10 ms (80)
    assert prepared.num_frames == -(-frames // 6)  # LFR 7/6 over them
    assert_off_cif_thresholds(loaded, items_from_wav_files(paths))
    ours = SpeechRecognizer.from_model_dir(model_dir)
    automodel = funasr_automodel(model_dir)
    said = 0
    for path in paths:
        expected = automodel.generate(input=path)[0]
        got = ours(path)[0]
        assert got["text"] == expected["text"].replace(" ", ""), path
        said += len(got["text"])
    assert said >= 5
    # 16 kHz input to an 8 kHz model: resampled down to 8 kHz first, the same text as the 8 kHz file
    path16 = str(tmp_path / "a_16k.wav")
    key = sorted(waves)[0]
    soundfile.write(path16, corpus[1][key], 16000, subtype="PCM_16")
    down = resample_waveform(corpus[1][key].astype(np.float32) / 32768.0, 16000, 8000)
    assert ours(path16)[0]["text"] == ours(down, audio_fs=8000)[0]["text"]
