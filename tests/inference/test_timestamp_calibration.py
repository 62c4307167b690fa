"""Fire-delay calibration (bin/calibrate_timestamps): the mean start bias measured on a data dir
with true character times becomes timestamp_conf.time_shift_frames, which moves every time of the
next decode (PyTorch and ONNX) by that much; FunASR's AutoModel still loads the dir."""

import os
import shutil

import pytest
import yaml

from funasr_lite.bin import calibrate_timestamps, export as export_cli
from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.model_dir import ModelDirError, load_model_dir
from funasr_lite.inference.onnx_backend import load_onnx_model_dir
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_files
from funasr_lite.inference.writers import read_1best_recog
from test_bicif_model_dir import bicif_funasr_config, write_bicif_dir
from test_funasr_model_dir import corpus, wav_paths  # noqa: F401 (fixtures)

LATE_MS = 100  # the made-up truth is this much earlier than the model's times


def write_truth(data_dir, results, late_ms=LATE_MS):
    """text = the hypotheses; char_timestamps = their times moved earlier by late_ms."""
    os.makedirs(data_dir, exist_ok=True)
    with open(os.path.join(data_dir, "text"), "w", encoding="utf-8") as f:
        f.writelines(f"{r['key']} {' '.join(r['token'])}\n" for r in results)
    with open(os.path.join(data_dir, "char_timestamps"), "w", encoding="utf-8") as f:
        for r in results:
            spans = " ".join(f"{t} {a - late_ms} {b - late_ms}" for t, (a, b) in zip(r["token"], r["timestamp"]))
            f.write(f"{r['key']} {spans}\n")


def test_calibration_moves_the_times_by_the_measured_bias(tmp_path, corpus, wav_paths):
    model_dir = write_bicif_dir(str(tmp_path / "bicif"), bicif_funasr_config(), corpus[1].values())
    assert infer_cli.main(["--model_dir", model_dir, "--wav", *wav_paths, "--output_dir", str(tmp_path / "dec")]) == 0
    before = read_1best_recog(tmp_path / "dec" / "1best_recog")
    assert sum(len(r["token"]) for r in before) >= 12
    # every token of every utterance, several hundred needed: repeat the utterances under new keys
    many = [dict(r, key=f"{r['key']}_{i}") for i in range(40) for r in before]
    write_truth(str(tmp_path / "data"), many)
    shutil.copytree(tmp_path / "dec", tmp_path / "dec_many")
    recog = tmp_path / "dec_many" / "1best_recog"
    for name, field in (("text", None), ("token", None), ("time_stamp", None)):
        lines = (recog / name).read_text(encoding="utf-8").splitlines()
        by_key = {line.split(" ", 1)[0]: line.split(" ", 1)[1] if " " in line else "" for line in lines}
        (recog / name).write_text("".join(f"{r['key']} {by_key[r['key'].rsplit('_', 1)[0]]}\n" for r in many),
                                  encoding="utf-8")
    assert calibrate_timestamps.main(["--data_dir", str(tmp_path / "data"), "--decode_dir", str(tmp_path / "dec_many"),
                                      "--model_dir", model_dir]) == 0
    config = yaml.safe_load(open(os.path.join(model_dir, "config.yaml"), encoding="utf-8"))
    shift = config["timestamp_conf"]["time_shift_frames"]
    assert shift == pytest.approx(-1.5 - LATE_MS / 20.0, abs=0.05)
    loaded = load_model_dir(model_dir)
    assert loaded.timestamp_shift_frames == shift
    after = Speech2Text(loaded).decode(items_from_wav_files(wav_paths))
    for old, new in zip(before, after):
        assert new["token"] == old["token"]
        starts = [b[0] - a[0] for a, b in zip(old["timestamp"], new["timestamp"])]
        assert all(abs(d + LATE_MS) <= 2 for d in starts), starts  # earlier by the bias (ms rounding)
    # the ONNX export carries it; FunASR ignores the key
    assert export_cli.main(["--model_dir", model_dir]) == 0
    onnx = Speech2Text(load_onnx_model_dir(model_dir)).decode(items_from_wav_files(wav_paths))
    assert [r["timestamp"] for r in onnx] == [r["timestamp"] for r in after]
    from test_funasr_model_dir import funasr_automodel

    assert funasr_automodel(model_dir).generate(input=wav_paths[0])[0]["text"]


def test_a_bad_timestamp_conf_is_named(tmp_path, corpus):
    model_dir = write_bicif_dir(str(tmp_path / "bicif"), bicif_funasr_config(), corpus[1].values())
    path = os.path.join(model_dir, "config.yaml")
    config = yaml.safe_load(open(path, encoding="utf-8"))
    config["timestamp_conf"] = {"time_shift_frames": "late"}
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True)
    with pytest.raises(ModelDirError, match="timestamp_conf.time_shift_frames must be a number"):
        load_model_dir(model_dir)
