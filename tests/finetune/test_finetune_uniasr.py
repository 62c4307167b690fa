"""bin/finetune on a UniASR model dir built by the funasr package (the seed card's 2-pass model
class): both passes train, the output dir keeps FunASR's UniASR names, and FunASR's AutoModel
decodes it to our text."""

import json
import logging
import os
import sys

import pytest

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import finetune as finetune_cli
from funasr_dirs import save_funasr_dir  # tests/funasr_dirs.py
from finetune_data import TOKENS, make_example_data, write_cmvn_from_waves
from test_finetune import FAST

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "inference"))
from test_uniasr_model_dir import build_funasr_uniasr, uniasr_config  # noqa: E402 (tests/inference/)

logging.getLogger("funasr").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_uniasr")
    data_dir, waves, _ = make_example_data(str(root), num_train=8, num_valid=3)
    config = uniasr_config()
    model = build_funasr_uniasr(config, TOKENS)
    model_dir = save_funasr_dir(str(root / "released"), config, model, TOKENS,
                                lambda mvn: write_cmvn_from_waves(mvn, list(waves.values())))
    out = root / "checkpoint"
    rc = finetune_cli.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
                            "--max_epoch", "2", "--lr", "1e-3", "--batch_bins", "1200", "--num_avg", "2", *FAST])
    assert rc == 0
    return root, out, waves


def test_both_passes_train_and_the_output_is_a_uniasr_dir(finetuned):
    import yaml

    _, out, _ = finetuned
    config = yaml.safe_load((out / "model_dir" / "config.yaml").read_text())
    assert config["model"] == "UniASR" and config["decoder2"] == "FsmnDecoderSCAMAOpt"
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert all({"loss_att", "loss_att2", "loss_pre2"} <= set(e["train"]) for e in epochs)
    assert epochs[1]["train"]["loss"] < epochs[0]["train"]["loss"]


def test_automodel_decodes_the_output_to_our_text(finetuned):
    from funasr import AutoModel

    root, out, waves = finetuned
    model_dir = str(out / "model_dir")
    ours = SpeechRecognizer.from_model_dir(model_dir, decode_mode="beam", beam_size=5)
    automodel = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    for path in sorted(str(root / "wavs" / f"{utt}.wav") for utt in waves)[:3]:
        expected = automodel.generate(input=path, decoding_model="normal")[0]["text"].replace(" ", "")
        assert ours(path)[0]["text"] == expected, path
