"""One frontend from frontend_conf: stage 1 (make_fbank.sh --fbank-config), training and decoding agree.

A config with non-default fbank options (n_mels 40, 32 ms window) goes through the whole path:
features by make_fbank.sh (recorded in fbank.json), am.mvn, two training steps, then decoding the
stored features and the wavs (infer and the Python API) gives identical model input and results.
Features made with other options are refused by training and by decoding, naming both settings.
"""

import copy
import json
import os
import random
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile
import torch
import torchaudio

from funasr_lite.bin import infer as infer_cli
from funasr_lite.data.dataset import DatasetError, build_dataset
from funasr_lite.data.tokenizer import CharTokenizer
from funasr_lite.inference.speech2text import (
    DecodeError,
    Speech2Text,
    items_from_data_dir,
    items_from_wav_scp,
)
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.writers import read_1best_recog
from funasr_lite.frontend.wav_frontend import WavFrontend, read_fbank_options
from funasr_lite.train.config import resolve_training_config
from funasr_lite.train.tasks.asr import run_training
from funasr_lite.utils.config import dump_config
from test_infer import REPO_ROOT, TOKENS, assert_same_results, synth_wave, tiny_config, write_wav

OPTIONS = {"n_mels": 40, "frame_length": 32, "frame_shift": 10, "window": "hamming", "fs": 16000}
UTTERANCES = {f"utt{i}": 1.2 + 0.25 * i for i in range(6)}


def training_config():
    config = tiny_config(ctc_weight=0.3)
    config["frontend_conf"] = {**OPTIONS, "lfr_m": 7, "lfr_n": 6}
    config.update({
        "optim": "adam", "optim_conf": {"lr": 0.001}, "scheduler": "warmuplr",
        "scheduler_conf": {"warmup_steps": 10}, "seed": 1,
        "train_conf": {"max_epoch": 1, "max_steps": 2, "log_interval": 1, "keep_nbest_models": 1,
                       "avg_nbest_model": 1, "validate_cer": False, "best_metric": "loss", "oom_check": False},
        "dataset_conf": {"batch_bins": 120, "bucket_size": 8, "num_workers": 0},
    })
    return config


def run_script(*args):
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1",
               PATH=os.path.join(REPO_ROOT, "utils") + os.pathsep + os.environ["PATH"],
               PYTHONPATH=REPO_ROOT)
    return subprocess.run(list(args), capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)


def make_data_dir(root, name, config_path=None):
    """wav.scp/text/utt2spk of the synthetic utterances, then make_fbank.sh (--config if given)."""
    data = os.path.join(root, name)
    os.makedirs(data)
    rng = random.Random(5)
    with open(os.path.join(data, "wav.scp"), "w") as wav_scp, open(os.path.join(data, "text"), "w") as text, \
            open(os.path.join(data, "utt2spk"), "w") as utt2spk:
        for index, (key, seconds) in enumerate(sorted(UTTERANCES.items())):
            wav = write_wav(os.path.join(root, f"{key}.wav"), synth_wave(seconds, seed=index))
            wav_scp.write(f"{key} {wav}\n")
            text.write(f"{key} {''.join(rng.choice(TOKENS[3:-1]) for _ in range(3))}\n")
            utt2spk.write(f"{key} {key}\n")
    config_opts = ["--fbank-config", config_path] if config_path else []
    result = run_script("bash", "utils/make_fbank.sh", "--nj", "2", "--cmd", "run_local.py", *config_opts,
                        data, os.path.join(root, f"log_{name}"), os.path.join(root, f"fbank_{name}"))
    assert result.returncode == 0, result.stderr
    return data


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Features with OPTIONS, am.mvn, two training steps; returns paths."""
    root = str(tmp_path_factory.mktemp("options"))
    config_path = os.path.join(root, "conf.yaml")
    with open(config_path, "w", encoding="utf-8") as f:
        f.write(dump_config(training_config()))
    data = make_data_dir(root, "train", config_path)
    cmvn = os.path.join(root, "am.mvn")
    result = run_script(sys.executable, "-m", "funasr_lite.bin.compute_cmvn", "--feats_scp",
                        os.path.join(data, "feats.scp"), "--out_mvn", cmvn, "--out_json",
                        os.path.join(root, "cmvn.json"), "--lfr_m", "7")
    assert result.returncode == 0, result.stderr
    tokens = os.path.join(root, "tokens.txt")
    with open(tokens, "w", encoding="utf-8") as f:
        f.write("\n".join(TOKENS) + "\n")
    exp = os.path.join(root, "exp")
    config = resolve_training_config(config_path, [], token_list=tokens, cmvn_file=cmvn, train_data=data,
                                     valid_data=data, output_dir=exp)
    torch.set_num_threads(1)
    assert run_training(config, device="cpu")
    return {"root": root, "config": config_path, "data": data, "cmvn": cmvn, "tokens": tokens, "exp": exp}


def test_stage1_records_the_config_options_and_computes_with_them(experiment):
    options = read_fbank_options(os.path.join(experiment["data"], "fbank.json"))
    assert {key: options[key] for key in OPTIONS} == {**OPTIONS, "frame_length": 32.0, "frame_shift": 10.0}
    assert options["dither"] == 0.0
    # Independent: torchaudio's Kaldi fbank called with the options by hand.
    key, feats = next(iter(kaldiio.load_scp(os.path.join(experiment["data"], "feats.scp")).items()))
    samples, rate = soundfile.read(os.path.join(experiment["root"], f"{key}.wav"), dtype="float32")
    samples = torch.from_numpy(samples)[None]
    expected = torchaudio.compliance.kaldi.fbank(samples * 32768, num_mel_bins=40, frame_length=32.0,
                                                 frame_shift=10.0, dither=0.0, energy_floor=0.0,
                                                 window_type="hamming", sample_frequency=rate)
    assert feats.shape == (1 + (samples.shape[1] - 512) // 160, 40)
    torch.testing.assert_close(torch.from_numpy(np.array(feats)), expected, rtol=0, atol=0)


def test_stage1_features_and_api_audio_give_identical_model_input(experiment):
    loaded = load_model_dir(experiment["exp"])
    assert loaded.frontend.n_mels == 40 and loaded.input_size == 280
    tokenizer = CharTokenizer(TOKENS)
    dataset = build_dataset(experiment["data"], tokenizer, experiment["cmvn"],
                            loaded.config["frontend_conf"], {})
    speech2text = Speech2Text(loaded)
    wav_items = items_from_wav_scp(os.path.join(experiment["data"], "wav.scp"))
    feats_items = items_from_data_dir(experiment["data"], loaded.frontend)
    assert {item.kind for item in feats_items} == {"feats"}
    for index, (wav_item, feats_item) in enumerate(zip(wav_items, feats_items)):
        from_wav = speech2text.prepare(index, wav_item).model_input
        from_feats = speech2text.prepare(index, feats_item).model_input
        from_training = dataset.load_features(dataset.utt_ids.index(wav_item.key))
        assert from_wav.shape[1] == 280
        assert torch.equal(from_wav, from_feats) and torch.equal(from_wav, from_training), wav_item.key


def test_trained_model_decodes_features_wavs_and_api_alike(experiment, tmp_path):
    from funasr_lite import SpeechRecognizer

    out = tmp_path / "decode"
    assert infer_cli.main(["--exp_dir", experiment["exp"], "--data_dir", experiment["data"],
                           "--output_dir", str(out)]) == 0
    from_feats = read_1best_recog(out / "1best_recog")
    asr = SpeechRecognizer.from_model_dir(experiment["exp"])
    from_api = asr(os.path.join(experiment["data"], "wav.scp"))
    assert [r["key"] for r in from_api] == sorted(UTTERANCES)
    for result in from_feats:
        result.pop("audio_s"), result.pop("compute_s")
    assert_same_results(from_api, from_feats)


def test_features_made_with_other_options_are_refused(experiment, tmp_path):
    default_data = make_data_dir(str(tmp_path), "default")  # no --config: 80 bins, 25 ms
    assert read_fbank_options(os.path.join(default_data, "fbank.json"))["n_mels"] == 80
    with pytest.raises(DatasetError, match=r"fbank.json: features were made with n_mels=80 frame_length=25 but "
                                           r"the training config has n_mels=40 frame_length=32"):
        build_dataset(default_data, CharTokenizer(TOKENS), experiment["cmvn"], training_config()["frontend_conf"], {})
    loaded = load_model_dir(experiment["exp"])
    with pytest.raises(DecodeError, match=r"features were made with n_mels=80 frame_length=25 but "
                                          r".*config.yaml has n_mels=40 frame_length=32"):
        items_from_data_dir(default_data, loaded.frontend)
    assert infer_cli.main(["--exp_dir", experiment["exp"], "--data_dir", default_data,
                           "--output_dir", str(tmp_path / "refused")]) == 1
    assert not os.path.exists(tmp_path / "refused" / "1best_recog")
    # Same n_mels but another window length: the dims agree, the record still refuses.
    record = os.path.join(default_data, "fbank.json")
    options = read_fbank_options(record)
    with open(record, "w") as f:
        json.dump({**options, "n_mels": 40}, f)
    with pytest.raises(DecodeError, match=r"made with frame_length=25 but .* has frame_length=32"):
        items_from_data_dir(default_data, loaded.frontend)


def test_frontend_conf_values_are_checked():
    from funasr_lite.utils.config import ConfigError

    with pytest.raises(ConfigError, match="frontend_conf.window must be one of"):
        WavFrontend({"window": "hann"})
    with pytest.raises(ConfigError, match=r"frontend_conf.frame_length must be a positive number"):
        WavFrontend({"frame_length": 0})
    frontend = WavFrontend(copy.deepcopy(OPTIONS))
    assert frontend.n_mels == 40 and frontend.output_size == 40 and frontend.sample_rate == 16000
    assert frontend.num_frames(16000) == 1 + (16000 - 512) // 160  # lfr 1/1: raw frames


def test_data_dir_without_record_is_checked_by_dimension_only(experiment, tmp_path, caplog):
    import logging
    import shutil

    legacy = tmp_path / "legacy"
    shutil.copytree(experiment["data"], legacy)
    os.unlink(legacy / "fbank.json")
    loaded = load_model_dir(experiment["exp"])
    with caplog.at_level(logging.WARNING):
        items = items_from_data_dir(str(legacy), loaded.frontend)
    assert len(items) == len(UTTERANCES) and "no fbank.json" in caplog.text
    default_data = make_data_dir(str(tmp_path), "default")
    os.unlink(os.path.join(default_data, "fbank.json"))
    with pytest.raises(DatasetError, match=r"has 80-dim features but the training config frontend_conf has n_mels=40"):
        build_dataset(default_data, CharTokenizer(TOKENS), experiment["cmvn"], training_config()["frontend_conf"], {})
