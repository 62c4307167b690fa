"""bin/finetune on a ParaformerStreaming model dir built by the funasr package: training runs
through the SCAMA chunking (both chunk configurations drawn), the output dir keeps FunASR's
streaming names, and FunASR's AutoModel decodes it to our text, whole files and stream by stream."""

import json
import logging

import numpy as np
import pytest
import soundfile
import yaml

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import finetune as finetune_cli
from finetune_data import make_example_data, write_funasr_model_dir
from test_finetune import FAST

logging.getLogger("funasr").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune_streaming")
    data_dir, waves, _ = make_example_data(str(root), num_train=8, num_valid=3)
    model_dir = write_funasr_model_dir(str(root / "released"), waves.values(), streaming=True)
    out = root / "checkpoint"
    rc = finetune_cli.main(["--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
                            "--max_epoch", "2", "--lr", "1e-3", "--batch_bins", "1200", "--num_avg", "2", *FAST])
    assert rc == 0
    return root, model_dir, out, waves


def test_the_output_keeps_funasrs_streaming_names_and_trained(finetuned):
    _, _, out, _ = finetuned
    config = yaml.safe_load((out / "model_dir" / "config.yaml").read_text())
    assert config["model"] == "ParaformerStreaming" and config["encoder"] == "SANMEncoderChunkOpt"
    assert config["encoder_conf"]["chunk_size"] == [12, 15] and config["encoder_conf"]["input_layer"] == "pe_online"
    epochs = [json.loads(line) for line in (out / "epochs.jsonl").read_text().splitlines()]
    assert len(epochs) == 2 and epochs[1]["train"]["loss"] < epochs[0]["train"]["loss"]
    assert all(np.isfinite(e["valid"]["cer"]) for e in epochs)  # validation decodes in streaming steps


def test_funasr_decodes_the_output_to_our_text(finetuned):
    from funasr import AutoModel

    root, _, out, waves = finetuned
    model_dir = str(out / "model_dir")
    ours = SpeechRecognizer.from_model_dir(model_dir)
    automodel = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    options = dict(chunk_size=[0, 10, 5], encoder_chunk_look_back=4, decoder_chunk_look_back=1)
    said = 0
    for path in sorted(str(root / "wavs" / f"{utt}.wav") for utt in waves)[:3]:
        assert ours(path)[0]["text"] == automodel.generate(input=path, **options)[0]["text"].replace(" ", "")
        audio, _ = soundfile.read(path, dtype="float32")
        stream, cache, theirs = ours.stream(), {}, []
        ours_texts = []
        for start in range(0, audio.size, 4800):
            piece, final = audio[start:start + 4800], start + 4800 >= audio.size
            ours_texts.append(stream.feed(piece, is_final=final))
            result = automodel.generate(input=piece, cache=cache, is_final=final, **options)
            theirs.append(result[0]["text"].replace(" ", "") if result else "")
        assert ours_texts == theirs, path
        said += len("".join(ours_texts))
    assert said >= 3  # not a comparison of empty texts
