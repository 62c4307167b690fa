"""Model dirs: a FunASR-format dir built BY funasr decodes as funasr decodes it; exported dirs
round-trip (and load in funasr); disagreeing parts are refused, naming the mismatch and files."""

import copy
import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch
import yaml

from funasr import AutoModel
from funasr.models.paraformer.model import Paraformer as FunasrParaformer

from funasr_lite.bin import export_model_dir as export_cli
from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_files
from funasr_lite.inference.model_dir import ModelDirError, load_model_dir
from funasr_lite.export.model_dir import export_model_dir
from funasr_lite.inference.writers import read_1best_recog
from funasr_lite.frontend.cmvn import write_am_mvn
from funasr_lite.models import build_model
from funasr_lite.train.config import resolve_training_config
from funasr_lite.utils.config import write_config
from test_infer import (
    TOKENS,
    assert_same_results,
    tiny_config,
    write_cmvn_from_waves,
    write_corpus,
)
from funasr_configs import funasr_paraformer_config, funasr_sanm_confs  # tests/funasr_configs.py
from funasr_dirs import build_funasr_model as build_funasr_class, save_funasr_dir  # tests/funasr_dirs.py

logging.getLogger("funasr").setLevel(logging.WARNING)

# FunASR's model dirs list (encoder|decoder)_conf keys our classes accept for compatibility.
FUNASR_ENCODER_CONF, FUNASR_DECODER_CONF = funasr_sanm_confs(output_size=64, linear_units=128, kernel_size=11)
UTTERANCES = {"utt_a": 2.6, "utt_b": 1.2, "utt_c": 3.4}


def funasr_style_config():
    """config.yaml as a FunASR/ModelScope dir has it: no token_list or cmvn_file (the files sit in
    the dir), SpecAugLFR and training sections present."""
    return funasr_paraformer_config(FUNASR_ENCODER_CONF, FUNASR_DECODER_CONF)


def build_funasr_model(config, vocab_size, seed=0, alpha_bias=-0.9):
    """funasr's own Paraformer, from the config, with the CIF output bias set so that it fires often."""
    return build_funasr_class(FunasrParaformer, config, vocab_size, seed, alpha_bias)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")), UTTERANCES, with_feats=False)


@pytest.fixture(scope="module")
def wav_paths(corpus):
    wav_dir = os.path.join(os.path.dirname(corpus[0]), "wav")
    return [os.path.join(wav_dir, f"{key}.wav") for key in sorted(UTTERANCES)]


@pytest.fixture(scope="module")
def funasr_dir(tmp_path_factory, corpus):
    """A FunASR-format model dir whose weights come from funasr's Paraformer."""
    path = str(tmp_path_factory.mktemp("funasr_model"))
    config = funasr_style_config()
    model = build_funasr_model(config, len(TOKENS))
    save_funasr_dir(path, config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values()))
    return path, model


def funasr_automodel(model_dir):
    return AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)


def copy_dir(src, dst):
    shutil.copytree(src, dst)
    return str(dst)


# ---------------------------------------------------------------- parity with funasr


def test_funasr_dir_decodes_to_funasrs_tokens_on_identical_features(funasr_dir, wav_paths):
    model_dir, funasr_model = funasr_dir
    speech2text = Speech2Text(load_model_dir(model_dir))
    ours = speech2text.decode(items_from_wav_files(wav_paths))
    assert sum(len(r["token"]) for r in ours) >= 15  # not a vacuous comparison of empty outputs
    for index, (path, result) in enumerate(zip(wav_paths, ours)):
        prepared = speech2text.prepare(index, items_from_wav_files([path])[0])
        feats = prepared.model_input[None]  # the same LFR + CMVN features, batch of 1
        lengths = torch.tensor([[feats.shape[1]]])
        expected, _ = funasr_model.inference(feats, lengths, key=[result["key"]], tokenizer=None, device="cpu",
                                             data_type="fbank")
        assert result["token_int"] == expected[0]["token_int"], result["key"]
        with torch.no_grad():
            encoder_out, encoder_lengths = funasr_model.encode(feats, lengths[:, 0])
            embeds, token_num, _, _ = funasr_model.calc_predictor(encoder_out, encoder_lengths)
            token_num = token_num.round().long()
            log_probs, _ = funasr_model.cal_decoder_with_predictor(encoder_out, encoder_lengths, embeds, token_num)
        expected_score = float(log_probs[0, : int(token_num)].max(-1)[0].sum())
        assert result["score"] == pytest.approx(expected_score, abs=1e-3, rel=1e-4)


def test_funasr_automodel_gives_our_text_from_the_same_wavs(funasr_dir, wav_paths, tmp_path):
    """funasr's whole pipeline (its audio loading, fbank, LFR, CMVN) on the model dir vs our CLI."""
    model_dir, _ = funasr_dir
    assert infer_cli.main(["--model_dir", model_dir, "--wav", *wav_paths, "--output_dir", str(tmp_path)]) == 0
    ours = {r["key"]: r["text"] for r in read_1best_recog(tmp_path / "1best_recog")}
    automodel = funasr_automodel(model_dir)
    for path in wav_paths:
        expected = automodel.generate(input=path)[0]
        assert ours[expected["key"]] == expected["text"]


# ---------------------------------------------------------------- layouts


def test_2023_layout_model_pb_tokens_txt_wrapped_state_dict(funasr_dir, wav_paths, tmp_path):
    model_dir, funasr_model = funasr_dir
    old = copy_dir(model_dir, tmp_path / "old_layout")
    os.remove(os.path.join(old, "model.pt"))
    os.remove(os.path.join(old, "tokens.json"))
    state = {f"module.{k}": v for k, v in funasr_model.state_dict().items()}
    torch.save({"state_dict": state}, os.path.join(old, "model.pb"))
    with open(os.path.join(old, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(TOKENS) + "\n")
    items = items_from_wav_files(wav_paths)
    assert_same_results(Speech2Text(load_model_dir(old)).decode(items),
                        Speech2Text(load_model_dir(model_dir)).decode(items), score_tol=0)


def test_configuration_json_and_config_named_files(funasr_dir, tmp_path):
    model_dir, _ = funasr_dir
    renamed = copy_dir(model_dir, tmp_path / "renamed")
    os.rename(os.path.join(renamed, "model.pt"), os.path.join(renamed, "weights.bin"))
    os.rename(os.path.join(renamed, "am.mvn"), os.path.join(renamed, "cmvn.txt"))
    with open(os.path.join(renamed, "configuration.json"), "w") as f:
        json.dump({"framework": "pytorch", "file_path_metas": {"init_param": "weights.bin"}}, f)
    with open(os.path.join(renamed, "config.yaml")) as f:
        config = yaml.safe_load(f)
    config["frontend_conf"]["cmvn_file"] = "cmvn.txt"
    with open(os.path.join(renamed, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    loaded = load_model_dir(renamed)
    assert os.path.basename(loaded.files.weights) == "weights.bin"
    assert os.path.basename(loaded.files.cmvn) == "cmvn.txt"
    assert os.path.basename(loaded.files.token_list) == "tokens.json"


# ---------------------------------------------------------------- refusals


def edit_config(model_dir, edit):
    path = os.path.join(model_dir, "config.yaml")
    with open(path) as f:
        config = yaml.safe_load(f)
    edit(config)
    with open(path, "w") as f:
        yaml.safe_dump(config, f)


def test_vocab_size_mismatches_are_named(funasr_dir, tmp_path):
    model_dir, _ = funasr_dir
    more_tokens = copy_dir(model_dir, tmp_path / "more_tokens")
    with open(os.path.join(more_tokens, "tokens.json"), "w", encoding="utf-8") as f:
        json.dump(TOKENS[:-1] + ["新", "<unk>"], f, ensure_ascii=False)
    with pytest.raises(ModelDirError) as error:
        load_model_dir(more_tokens)
    assert "refused" in str(error.value) and more_tokens in str(error.value)
    assert "vocab size: model.pt decoder.output_layer.weight has 28 rows but tokens.json has 29 tokens" in str(error.value)

    config_vocab = copy_dir(model_dir, tmp_path / "config_vocab")
    edit_config(config_vocab, lambda c: c.update(vocab_size=30))
    with pytest.raises(ModelDirError, match="vocab size: config.yaml vocab_size=30 but tokens.json has 28 tokens"):
        load_model_dir(config_vocab)


def test_input_dim_mismatches_are_named(funasr_dir, tmp_path):
    model_dir, _ = funasr_dir
    small_mvn = copy_dir(model_dir, tmp_path / "small_mvn")
    write_am_mvn(os.path.join(small_mvn, "am.mvn"), np.zeros(400), np.ones(400))
    with pytest.raises(ModelDirError, match=r"input dim: am.mvn has 400 dims but config.yaml frontend_conf gives "
                                            r"n_mels \* lfr_m = 80 \* 7 = 560"):
        load_model_dir(small_mvn)
    # am.mvn and config agree (400 = 80 * 5) but the weights were trained on 560-dim input.
    edit_config(small_mvn, lambda c: c["frontend_conf"].update(lfr_m=5))
    with pytest.raises(ModelDirError, match=r"input dim: model.pt encoder.encoders0.0.self_attn.linear_q_k_v.weight "
                                            r"takes 560-dim input but config.yaml .* = 400"):
        load_model_dir(small_mvn)


def test_weights_of_another_architecture_are_named_by_tensor(funasr_dir, tmp_path):
    model_dir, _ = funasr_dir
    wider = copy_dir(model_dir, tmp_path / "wider")
    edit_config(wider, lambda c: c["encoder_conf"].update(linear_units=96))
    with pytest.raises(ModelDirError, match=r"do not fit the model of .*config.yaml:\n  \d+ shape mismatches: "
                                            r"encoder\.encoders\.0\.feed_forward\.w_1\.bias"):
        load_model_dir(wider)


def test_missing_parts_are_named(funasr_dir, tmp_path):
    model_dir, _ = funasr_dir
    no_mvn = copy_dir(model_dir, tmp_path / "no_mvn")
    os.remove(os.path.join(no_mvn, "am.mvn"))
    with pytest.raises(ModelDirError, match=r"no CMVN file \(am.mvn\) \(tried am.mvn\)"):
        load_model_dir(no_mvn)
    no_weights = copy_dir(model_dir, tmp_path / "no_weights")
    os.remove(os.path.join(no_weights, "model.pt"))
    with pytest.raises(ModelDirError, match="no weights .*pass --checkpoint"):
        load_model_dir(no_weights)
    with pytest.raises(ModelDirError, match="checkpoint nothing.pt not found"):
        load_model_dir(model_dir, "nothing.pt")


# ---------------------------------------------------------------- exp dir and export


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory, corpus):
    """A training exp dir as the trainer leaves it: resolved config.yaml (absolute token_list and
    cmvn_file outside the dir), model.avg2.pt (plain state dict), epoch_1.pt (full state), best.json."""
    root = tmp_path_factory.mktemp("exp_root")
    lang, exp = root / "lang", root / "exp"
    lang.mkdir()
    exp.mkdir()
    with open(lang / "tokens.txt", "w", encoding="utf-8") as f:
        f.write("\n".join(TOKENS) + "\n")
    write_cmvn_from_waves(str(lang / "am.mvn"), corpus[1].values())
    # registry aliases (as conf/demo.yaml has them); export writes FunASR's class names
    train_yaml = dict(tiny_config(), encoder="sanm", specaug="specaug_lfr",
                      specaug_conf={"apply_time_warp": False, "apply_freq_mask": True, "freq_mask_width_range": [0, 10],
                                    "num_freq_mask": 1, "lfr_rate": 6, "apply_time_mask": True,
                                    "time_mask_width_range": [0, 4], "num_time_mask": 1})
    for key in ("frontend", "tokenizer", "tokenizer_conf"):
        train_yaml.pop(key)
    train_yaml["frontend_conf"] = {"n_mels": 80, "lfr_m": 7, "lfr_n": 6}
    with open(root / "train.yaml", "w") as f:
        yaml.safe_dump(train_yaml, f)
    config = resolve_training_config(str(root / "train.yaml"), token_list=str(lang / "tokens.txt"),
                                     cmvn_file=str(lang / "am.mvn"), output_dir=str(exp))
    write_config(config, str(exp / "config.yaml"))
    torch.manual_seed(3)
    model = build_model(copy.deepcopy(config))
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(-0.8)
    torch.save(model.state_dict(), exp / "model.avg2.pt")
    torch.manual_seed(4)
    torch.save({"model": build_model(copy.deepcopy(config)).state_dict(), "epoch": 1, "step": 10}, exp / "epoch_1.pt")
    with open(exp / "best.json", "w") as f:
        json.dump({"ranking": [{"checkpoint": "epoch_1.pt", "epoch": 1, "cer": 50.0}]}, f)
    return str(exp)


def test_export_round_trip_and_funasr_loads_the_export(exp_dir, wav_paths, tmp_path):
    out = str(tmp_path / "model_dir")
    assert export_cli.main(["--exp_dir", exp_dir, "--checkpoint", "model.avg2.pt", "--out_dir", out]) == 0
    assert sorted(os.listdir(out)) == ["am.mvn", "config.yaml", "model.pt", "tokens.txt"]
    with open(os.path.join(out, "config.yaml")) as f:
        config = yaml.safe_load(f)
    assert config["frontend_conf"]["cmvn_file"] == "am.mvn" and config["tokenizer_conf"]["token_list"] == "tokens.txt"
    assert config["encoder"] == "SANMEncoder" and config["specaug"] == "SpecAugLFR"
    assert config["frontend_conf"]["dither"] == 0.0
    assert not any(key in config for key in ("token_list", "cmvn_file", "output_dir"))
    exported_state = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    original_state = torch.load(os.path.join(exp_dir, "model.avg2.pt"), weights_only=True)
    assert exported_state.keys() == original_state.keys()
    assert all(torch.equal(exported_state[k], original_state[k]) for k in original_state)

    items = items_from_wav_files(wav_paths)
    from_export = Speech2Text(load_model_dir(out)).decode(items)
    from_exp = Speech2Text(load_model_dir(exp_dir, "model.avg2.pt")).decode(items)
    assert sum(len(r["token"]) for r in from_export) >= 10
    assert_same_results(from_export, from_exp, score_tol=0)
    automodel = funasr_automodel(out)
    for path, result in zip(wav_paths, from_export):
        assert automodel.generate(input=path)[0]["text"] == result["text"]


def test_export_replaces_atomically_and_refuses_a_broken_exp_dir(exp_dir, tmp_path):
    out = str(tmp_path / "model_dir")
    export_model_dir(exp_dir, out, "model.avg2.pt")
    export_model_dir(exp_dir, out, "epoch_1.pt")  # over an existing dir: replaced
    replaced = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    epoch_state = torch.load(os.path.join(exp_dir, "epoch_1.pt"), weights_only=True)["model"]
    assert all(torch.equal(replaced[k], epoch_state[k]) for k in epoch_state)

    broken = copy_dir(exp_dir, tmp_path / "broken_exp")
    edit_config(broken, lambda c: c.update(vocab_size=99))
    assert export_cli.main(["--exp_dir", broken, "--checkpoint", "model.avg2.pt", "--out_dir", out]) == 1
    still = torch.load(os.path.join(out, "model.pt"), weights_only=True)
    assert all(torch.equal(still[k], epoch_state[k]) for k in epoch_state)  # the old export is untouched
    assert sorted(os.listdir(tmp_path)) == ["broken_exp", "model_dir"]  # no temp dirs left


def test_exp_dir_default_checkpoint(exp_dir, tmp_path):
    assert os.path.basename(load_model_dir(exp_dir).files.weights) == "model.avg2.pt"  # the only average
    two = copy_dir(exp_dir, tmp_path / "two_averages")
    shutil.copy(os.path.join(two, "model.avg2.pt"), os.path.join(two, "model.avg5.pt"))
    with pytest.raises(ModelDirError, match=r"several averaged models \(model.avg2.pt, model.avg5.pt\)"):
        load_model_dir(two)
    best_only = copy_dir(exp_dir, tmp_path / "best_only")
    os.remove(os.path.join(best_only, "model.avg2.pt"))
    assert os.path.basename(load_model_dir(best_only).files.weights) == "epoch_1.pt"


def test_cli_decodes_an_exp_dir_with_a_checkpoint(exp_dir, wav_paths, tmp_path):
    args = ["--exp_dir", exp_dir, "--checkpoint", "model.avg2.pt", "--wav", *wav_paths, "--output_dir", str(tmp_path)]
    assert infer_cli.main(args) == 0
    written = read_1best_recog(tmp_path / "1best_recog")
    expected = Speech2Text(load_model_dir(exp_dir, "model.avg2.pt")).decode(items_from_wav_files(wav_paths))
    assert_same_results(written, expected, score_tol=0)
