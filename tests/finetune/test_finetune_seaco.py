"""bin/finetune on a SeacoParaformer model dir built by the funasr package: hotwords are sampled
from the training transcripts, the output dir (with a seg_dict) is a SeACo dir that AutoModel
decodes with hotwords to our text."""

import json
import logging
import os

import pytest
import yaml

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import finetune as finetune_cli
from finetune_data import TOKENS, make_example_data, write_funasr_model_dir
from test_finetune import FAST

logging.getLogger("funasr").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_seaco")
    data_dir, waves, texts = make_example_data(str(root), num_train=8, num_valid=3)
    model_dir = write_funasr_model_dir(str(root / "released"), waves.values(), seaco=True)
    out = root / "checkpoint"
    rc = finetune_cli.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
                            "--max_epoch", "2", "--lr", "1e-3", "--batch_bins", "1200", "--num_avg", "2", *FAST])
    assert rc == 0
    return root, out, waves, texts


def test_hotword_loss_trained_and_the_output_is_a_seaco_dir(finetuned):
    _, out, _, _ = finetuned
    config = yaml.safe_load((out / "model_dir" / "config.yaml").read_text())
    assert config["model"] == "SeacoParaformer" and config["seaco_decoder"] == "ParaformerSANMDecoder"
    assert config["model_conf"]["NO_BIAS"] == 0
    seg_dict = (out / "model_dir" / "seg_dict").read_text(encoding="utf-8").splitlines()
    assert f"{TOKENS[5]} {TOKENS[5]}" in seg_dict and not any(line.startswith("<") for line in seg_dict)
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert all(e["train"]["loss_seaco"] > 0 for e in epochs)


def test_automodel_decodes_the_output_with_hotwords_to_our_text(finetuned):
    from funasr import AutoModel

    root, out, waves, texts = finetuned
    model_dir = str(out / "model_dir")
    hotwords = " ".join(sorted({text[:2] for text in texts.values() if len(text) >= 2})[:5])
    automodel = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    ours = SpeechRecognizer.from_model_dir(model_dir)
    for path in sorted(str(root / "wavs" / f"{utt}.wav") for utt in waves)[:3]:
        expected = automodel.generate(input=path, hotword=hotwords)[0]
        got = ours(path, hotword=hotwords)[0]
        assert got["text"] == expected["text"].replace(" ", ""), path


def test_the_exp_dir_reads_hotwords_as_its_export_does(finetuned, caplog):
    """The training exp dir holds a seg_dict (its am.mvn is the data dir's), so a Chinese hotword
    is split into characters there too, not read whole as <unk>."""
    root, out, waves, texts = finetuned
    assert (out / "seg_dict").read_text(encoding="utf-8") == (out / "model_dir" / "seg_dict").read_text(encoding="utf-8")
    hotwords = " ".join(sorted({text[:2] for text in texts.values() if len(text) >= 2})[:5])
    exp = SpeechRecognizer.from_model_dir(str(out), checkpoint="model.avg2.pt")
    exported = SpeechRecognizer.from_model_dir(str(out / "model_dir"))
    with caplog.at_level(logging.WARNING):
        for path in sorted(str(root / "wavs" / f"{utt}.wav") for utt in waves)[:3]:
            assert exp(path, hotword=hotwords)[0]["text"] == exported(path, hotword=hotwords)[0]["text"]
    assert "outside the vocabulary" not in caplog.text
