"""The fine-tuning entry point on a model dir built by the funasr package: the output model dir
keeps the input's frontend, am.mvn and vocabulary, holds new weights, and FunASR's AutoModel
decodes it to the same (non-empty) text as our API."""

import json
import logging
import os

import pytest
import torch
import yaml

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import finetune as finetune_cli
from funasr_lite.data.datadir import read_kv
from funasr_lite.data.tokenizer import read_token_list
from funasr_lite.models.load import load_state_dict_file
from finetune_data import TOKENS, make_example_data, write_funasr_model_dir

logging.getLogger("funasr").setLevel(logging.WARNING)

FAST = ["++train_conf.log_interval=1", "++dataset_conf.num_workers=0", "++train_conf.keep_nbest_models=0"]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    data_dir, waves, texts = make_example_data(str(root), num_train=8, num_valid=3)
    model_dir = write_funasr_model_dir(str(root / "released"), waves.values())
    return root, data_dir, model_dir, waves, texts


@pytest.fixture(scope="module")
def finetuned(released):
    root, data_dir, model_dir, _, _ = released
    out = root / "checkpoint"
    rc = finetune_cli.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
                            "--max_epoch", "2", "--lr", "1e-3", "--batch_bins", "1200", "--num_avg", "2", *FAST])
    assert rc == 0
    return out


def test_output_model_dir_keeps_the_released_frontend_cmvn_and_vocabulary(released, finetuned):
    _, _, model_dir, _, _ = released
    out = finetuned / "model_dir"
    assert sorted(os.listdir(out)) == ["am.mvn", "config.yaml", "model.pt", "tokens.txt"]
    assert (out / "am.mvn").read_bytes() == open(os.path.join(model_dir, "am.mvn"), "rb").read()
    assert read_token_list(str(out / "tokens.txt")) == TOKENS
    config = yaml.safe_load((out / "config.yaml").read_text())
    released_config = yaml.safe_load(open(os.path.join(model_dir, "config.yaml")).read())
    for key in ("encoder", "decoder", "predictor", "encoder_conf", "decoder_conf", "predictor_conf"):
        assert config[key] == released_config[key], key
    for key in ("fs", "n_mels", "frame_length", "frame_shift", "lfr_m", "lfr_n", "window"):
        assert config["frontend_conf"][key] == released_config["frontend_conf"][key], key
    # fine-tuning changed the weights (2 epochs, lr 1e-3), all of the same names and shapes
    before = load_state_dict_file(os.path.join(model_dir, "model.pt"))
    after = load_state_dict_file(str(out / "model.pt"))
    assert set(before) == set(after)
    changed = [k for k in before if before[k].dtype.is_floating_point and not torch.equal(before[k], after[k])]
    assert len(changed) > len(before) // 2
    # the trainer's own record: 2 epochs, validation CER measured, the data counts logged
    epochs = [json.loads(line) for line in (finetuned / "epochs.jsonl").read_text().splitlines()]
    assert [e["epoch"] for e in epochs] == [1, 2] and all("cer" in e["valid"] for e in epochs)
    prepared = json.loads((finetuned / "data" / ".prepared").read_text())
    assert prepared["counts"]["train"]["kept"] == 8 and prepared["counts"]["validation"]["kept"] == 3
    assert "train (" in (finetuned / "finetune.log").read_text()


def test_funasr_automodel_decodes_the_output_dir_to_our_text(released, finetuned):
    from funasr import AutoModel

    root, _, _, waves, _ = released
    out = str(finetuned / "model_dir")
    ours = SpeechRecognizer.from_model_dir(out)
    automodel = AutoModel(model=out, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    wav_paths = sorted(str(root / "wavs" / f"{utt}.wav") for utt in waves)[:4]
    texts = []
    for path in wav_paths:
        expected = automodel.generate(input=path)[0]["text"]
        got = ours(path)[0]["text"]
        assert got == expected, path
        texts.append(got)
    assert sum(len(t.replace(" ", "")) for t in texts) >= 4  # a comparison of real outputs, not of empty strings


def test_bad_data_is_named_and_the_rest_used(released, tmp_path):
    root, data_dir, model_dir, _, _ = released
    bad = tmp_path / "bad_data"
    for split in ("train", "validation"):
        (bad / split).mkdir(parents=True)
    train_wavs = read_kv(os.path.join(data_dir, "train", "wav.scp"))
    train_text = read_kv(os.path.join(data_dir, "train", "text"))
    keys = sorted(train_wavs)
    wav_lines = [f"{k} {train_wavs[k]}" for k in keys] + [f"ghost {tmp_path / 'ghost.wav'}"]
    (bad / "train" / "wav.scp").write_text("\n".join(wav_lines) + "\n")
    text = "".join(f"{k} {train_text[k]}\n" for k in keys) + f"ghost 的一\n{keys[0]} 的的\n"
    (bad / "train" / "text").write_bytes(text.encode() + b"bin \xff\n")
    out = tmp_path / "out"
    rc = finetune_cli.main(["--model_dir", model_dir, "--data_dir", str(bad), "--output_dir", str(out),
                            "--max_epoch", "1", "--batch_bins", "1200", "--num_avg", "1", *FAST])
    assert rc == 0
    report = (out / "data" / "train" / "data_check.txt").read_text()
    assert f"{bad}/train/text:10: duplicate key (1): {keys[0]} (line 10)" in report
    assert f"{bad}/train/text:11: line not valid UTF-8 (1): bin (line 11)" in report
    assert f"dropped, audio missing: 1: ghost ({bad}/train/wav.scp:9: {tmp_path}/ghost.wav: no such file)" in report
    assert sorted(read_kv(str(out / "data" / "train" / "text"))) == keys[1:]  # the rest is used
    log = (out / "finetune.log").read_text()
    assert "no usable utterance; training without validation" in log
    assert os.path.isfile(out / "model_dir" / "model.pt")


def test_model_dir_without_am_mvn_is_refused_by_name(released, tmp_path, capsys, caplog):
    _, data_dir, model_dir, _, _ = released
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.yaml", "model.pt", "tokens.json"):
        (broken / name).write_bytes(open(os.path.join(model_dir, name), "rb").read())
    rc = finetune_cli.main(["--model_dir", str(broken), "--data_dir", data_dir, "--output_dir", str(tmp_path / "o")])
    assert rc == 1
    assert f"{broken}: no CMVN file (am.mvn) (tried am.mvn)" in caplog.text
