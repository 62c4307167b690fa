"""bin/finetune on a BiCifParaformer model dir built by the funasr package: the upsampled timestamp
head trains with the rest (loss_pre2 logged and changed), the output dir is a BiCif dir that
FunASR's AutoModel decodes to our text and timestamps."""

import json
import logging
import os

import pytest
import torch
import yaml

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import finetune as finetune_cli
from funasr_lite.models.load import load_state_dict_file
from finetune_data import make_example_data, write_funasr_model_dir
from test_finetune import FAST

logging.getLogger("funasr").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_bicif")
    data_dir, waves, _ = make_example_data(str(root), num_train=8, num_valid=3)
    model_dir = write_funasr_model_dir(str(root / "released"), waves.values(), bicif=True)
    out = root / "checkpoint"
    rc = finetune_cli.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
                            "--max_epoch", "2", "--lr", "1e-3", "--batch_bins", "1200", "--num_avg", "2", *FAST])
    assert rc == 0
    return root, model_dir, out, waves


def test_the_timestamp_head_is_fine_tuned_and_logged(finetuned):
    _, model_dir, out, _ = finetuned
    config = yaml.safe_load((out / "model_dir" / "config.yaml").read_text())
    assert config["model"] == "BiCifParaformer" and config["predictor"] == "CifPredictorV3"
    assert config["predictor_conf"]["upsample_type"] == "cnn_blstm"
    before = load_state_dict_file(os.path.join(model_dir, "model.pt"))
    after = load_state_dict_file(str(out / "model_dir" / "model.pt"))
    assert set(before) == set(after)
    for name in ("predictor.cif_output2.weight", "predictor.blstm.weight_ih_l0", "predictor.upsample_cnn.weight"):
        assert not torch.equal(before[name], after[name]), name
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert all("loss_pre2" in e["train"] for e in epochs), epochs[0]["train"]


def test_funasr_automodel_decodes_the_output_to_our_text_and_timestamps(finetuned):
    from funasr import AutoModel

    root, _, out, waves = finetuned
    model_dir = str(out / "model_dir")
    ours = SpeechRecognizer.from_model_dir(model_dir)
    automodel = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    stamps = 0
    for path in sorted(str(root / "wavs" / f"{utt}.wav") for utt in waves)[:4]:
        expected = automodel.generate(input=path)[0]
        got = ours(path)[0]
        assert got["text"] == expected["text"].replace(" ", ""), path
        assert got["timestamp"] == expected["timestamp"], path
        stamps += len(got["timestamp"])
    assert stamps >= 4
