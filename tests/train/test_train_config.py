import os

import pytest
import yaml

from funasr_lite.train.config import resolve_training_config
from funasr_lite.utils.config import (
    ConfigError,
    apply_overrides,
    config_differences,
    parse_override,
    read_config,
    validate_config,
    write_config,
)
from train_testkit import make_experiment


def _resolve(paths, overrides=()):
    return resolve_training_config(
        paths["config"],
        list(overrides),
        token_list=paths["token_list"],
        cmvn_file=paths["cmvn_file"],
        train_data=paths["train_data"],
        valid_data=paths["valid_data"],
        output_dir=paths["output_dir"],
    )


def test_config_differences_lists_changed_missing_and_added_keys():
    old = {"lm": "transformer", "seed": 0, "lm_conf": {"layer": 2}, "gone": 1}
    new = {"lm": "transformer", "seed": 1, "lm_conf": {"layer": 3}, "added": None}
    assert config_differences(old, new) == ["gone", "lm_conf", "seed"]  # None == missing
    assert config_differences(old, new, keys=("seed", "lm", "lm_conf")) == ["seed", "lm_conf"]


def test_override_values_are_typed_as_yaml():
    assert parse_override("++train_conf.max_epoch=20") == (["train_conf", "max_epoch"], 20)
    assert parse_override("++optim_conf.lr=1e-3") == (["optim_conf", "lr"], 0.001)
    assert parse_override("++specaug_conf.freq_mask_width_range=[0, 30]")[1] == [0, 30]
    assert parse_override("++specaug=null")[1] is None
    assert parse_override("++dataset_conf.shuffle=false")[1] is False
    assert parse_override("++encoder=SANMEncoder")[1] == "SANMEncoder"
    with pytest.raises(ConfigError, match="expected \\+\\+key.sub=value"):
        parse_override("--train_conf.max_epoch=3")


def test_overrides_create_nested_keys_and_refuse_non_mappings():
    config = {"train_conf": {"max_epoch": 1}, "seed": 1}
    out = apply_overrides(config, ["++train_conf.max_epoch=7", "++encoder_conf.new.deep=3", "++seed=9"])
    assert out == {"train_conf": {"max_epoch": 7}, "encoder_conf": {"new": {"deep": 3}}, "seed": 9}
    assert config["train_conf"]["max_epoch"] == 1  # the input is not modified
    with pytest.raises(ConfigError, match="seed is 1, not a mapping"):
        apply_overrides(config, ["++seed.x=1"])


def test_resolved_config_is_complete_and_written(tmp_path):
    paths = make_experiment(tmp_path)
    config = _resolve(paths, ["++train_conf.max_epoch=5", "++optim_conf.lr=2e-4"])
    assert config["train_conf"]["max_epoch"] == 5
    assert config["optim_conf"]["lr"] == pytest.approx(2e-4)
    assert config["input_size"] == 4 * 3  # n_mels * lfr_m
    assert config["vocab_size"] == 10  # tokens in tokens.txt
    assert config["token_list"] == os.path.abspath(paths["token_list"])
    assert config["cmvn_file"] == os.path.abspath(paths["cmvn_file"])
    # Defaults are filled in so the written config says everything.
    assert config["train_conf"]["accum_grad"] == 1 and config["dataset_conf"]["shuffle"] is True
    out = os.path.join(paths["output_dir"], "config.yaml")
    write_config(config, out)
    with open(out, encoding="utf-8") as f:
        on_disk = yaml.safe_load(f)
    assert on_disk == config
    assert read_config(out)["frontend_conf"]["lfr_m"] == 3
    assert not [name for name in os.listdir(paths["output_dir"]) if name.endswith(".tmp")]


def test_unknown_top_level_key_suggests_close_match(tmp_path):
    paths = make_experiment(tmp_path)
    with pytest.raises(ConfigError, match="unknown key 'encoder_cnf'.*did you mean 'encoder_conf'"):
        _resolve(paths, ["++encoder_cnf.output_size=4"])
    with pytest.raises(ConfigError, match="unknown key 'max_epochs' in train_conf.*did you mean 'max_epoch'"):
        _resolve(paths, ["++train_conf.max_epochs=4"])


def test_wrong_scalar_types_are_errors(tmp_path):
    paths = make_experiment(tmp_path)
    with pytest.raises(ConfigError, match="train_conf.max_epoch must be int, got 'ten'"):
        _resolve(paths, ["++train_conf.max_epoch=ten"])
    with pytest.raises(ConfigError, match="seed must be int, got 1.5"):
        _resolve(paths, ["++seed=1.5"])
    with pytest.raises(ConfigError, match="oom_check must be bool"):
        _resolve(paths, ["++train_conf.oom_check=1"])
    with pytest.raises(ConfigError, match="best_metric must be one of"):
        _resolve(paths, ["++train_conf.best_metric=wer"])


def test_derived_size_disagreement_and_lfr_specaug_mismatch(tmp_path):
    paths = make_experiment(tmp_path)
    with pytest.raises(ConfigError, match="vocab_size 99 disagrees with the token list"):
        _resolve(paths, ["++vocab_size=99"])
    with pytest.raises(ConfigError, match="input_size 80 disagrees"):
        _resolve(paths, ["++input_size=80"])
    with pytest.raises(ConfigError, match="SpecAugLFR stacks 7 sub-frames"):
        _resolve(paths, ["++specaug_conf.lfr_rate=6"])


def test_funasr_only_keys_are_dropped_with_a_warning(caplog):
    config = validate_config(
        {
            "model": "Paraformer",
            "encoder": "SANMEncoder",
            "decoder": "ParaformerSANMDecoder",
            "predictor": "CifPredictorV2",
            "frontend_conf": {"n_mels": 80, "lfr_m": 7, "lfr_n": 6},
            "dataset": "AudioDataset",
            "train_conf": {"validate_interval": 2000, "max_epoch": 3},
            "dataset_conf": {"batch_type": "length"},
        }
    )
    assert "dataset" not in config and "validate_interval" not in config["train_conf"]
    assert config["train_conf"]["max_epoch"] == 3
    assert "does not use" in caplog.text


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        resolve_training_config(tmp_path / "nope.yaml", token_list="x", cmvn_file="y")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        resolve_training_config(bad, token_list="x", cmvn_file="y")


def test_train_cli_reports_bad_overrides_and_arguments(tmp_path, capsys):
    from funasr_lite.bin.train import main

    paths = make_experiment(tmp_path)
    base = ["--config", paths["config"], "--token_list", paths["token_list"], "--cmvn_file", paths["cmvn_file"],
            "--train_data", paths["train_data"], "--output_dir", paths["output_dir"]]
    assert main(base + ["++dataset_conf.batch_binz=100"]) == 2
    assert "unknown key 'batch_binz' in dataset_conf; did you mean 'batch_bins'?" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--max_epoch", "3"])
    assert "config overrides look like ++key.sub=value" in capsys.readouterr().err
    assert not os.path.exists(paths["output_dir"])  # nothing was started
