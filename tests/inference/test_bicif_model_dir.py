"""A FunASR BiCifParaformer model dir (random weights from funasr's own class): our text and
timestamps equal AutoModel's from the same wavs; the exported dir round-trips and FunASR reads it;
bin/finetune fine-tunes it."""

import logging
import os

import pytest
import torch
import yaml

from funasr.models.bicif_paraformer.model import BiCifParaformer as FunasrBiCifParaformer

from funasr_lite.bin import infer as infer_cli
from funasr_lite.export.model_dir import export_model_dir
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import Speech2Text, DecodeOptions, items_from_wav_files
from funasr_lite.inference.writers import read_1best_recog
from funasr_configs import funasr_paraformer_config, funasr_sanm_confs  # tests/funasr_configs.py
from funasr_dirs import assert_off_cif_thresholds, build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py
from test_funasr_model_dir import UTTERANCES, corpus, funasr_automodel, wav_paths  # noqa: F401 (fixtures)
from test_infer import TOKENS, write_cmvn_from_waves

logging.getLogger("funasr").setLevel(logging.WARNING)

ENCODER_CONF, DECODER_CONF = funasr_sanm_confs(output_size=64, linear_units=128, kernel_size=11)
# The released paraformer-large-vad-punc predictor_conf, at width 64.
V3_PREDICTOR_CONF = {"idim": 64, "threshold": 1.0, "l_order": 1, "r_order": 1, "tail_threshold": 0.45,
                     "smooth_factor2": 0.25, "noise_threshold2": 0.01, "upsample_times": 3,
                     "use_cif1_cnn": False, "upsample_type": "cnn_blstm"}


def bicif_funasr_config():
    config = funasr_paraformer_config(ENCODER_CONF, DECODER_CONF)
    config.update(model="BiCifParaformer", predictor="CifPredictorV3", predictor_conf=dict(V3_PREDICTOR_CONF))
    return config


def write_bicif_dir(path, config, waves, seed=0, alpha_bias=-0.9, emit_unk=False):
    model = build_funasr_model(FunasrBiCifParaformer, config, len(TOKENS), seed, alpha_bias)
    if not emit_unk:  # a trained model rarely says <unk>; FunASR misplaces the times after one
        with torch.no_grad():
            model.decoder.output_layer.bias[TOKENS.index("<unk>")] = -100.0
    return save_funasr_dir(path, config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, waves))


@pytest.fixture(scope="module")
def bicif_dir(tmp_path_factory, corpus):
    # seed 1: every CIF count and fire of the three wavs is off its threshold (checked in the test)
    return write_bicif_dir(str(tmp_path_factory.mktemp("bicif_model")), bicif_funasr_config(), corpus[1].values(),
                           seed=1)


@pytest.fixture(scope="module")
def unk_dir(tmp_path_factory, corpus):
    return write_bicif_dir(str(tmp_path_factory.mktemp("bicif_unk")), bicif_funasr_config(), corpus[1].values(),
                           emit_unk=True)


def automodel_results(model_dir, wav_paths):
    automodel = funasr_automodel(model_dir)
    return {r["key"]: r for path in wav_paths for r in automodel.generate(input=path)}


def test_automodel_text_and_timestamps_equal_ours(bicif_dir, wav_paths, tmp_path):
    loaded = load_model_dir(bicif_dir)
    assert type(loaded.model).__name__ == "BiCifParaformer"
    assert loaded.encoder_frame_ms == 60.0 and loaded.timestamp_frame_ms == 20.0
    assert_off_cif_thresholds(loaded, items_from_wav_files(wav_paths))  # exact equality holds on any CPU
    expected = automodel_results(bicif_dir, wav_paths)
    assert infer_cli.main(["--model_dir", bicif_dir, "--wav", *wav_paths, "--output_dir", str(tmp_path)]) == 0
    ours = {r["key"]: r for r in read_1best_recog(tmp_path / "1best_recog")}
    assert sorted(ours) == sorted(expected)
    stamps = 0
    for key, result in expected.items():
        # FunASR joins a timestamped model's words with spaces (sentence_postprocess); our text is
        # the same for every model class (docs/decisions.md): the same characters, no spaces.
        assert ours[key]["text"] == result["text"].replace(" ", ""), key
        assert ours[key]["timestamp"] == result["timestamp"], key
        stamps += len(result["timestamp"])
    assert stamps >= 12  # several tokens per utterance: not a vacuous comparison


def test_batched_and_beam_decodes_give_the_same_timestamps_as_alone(bicif_dir, wav_paths):
    """The BLSTM runs on packed sequences: padding in a batch does not move an utterance's times."""
    loaded = load_model_dir(bicif_dir)
    items = items_from_wav_files(wav_paths)
    alone = [Speech2Text(loaded, DecodeOptions(batch_bins=1)).decode([item])[0] for item in items]
    batched = Speech2Text(loaded, DecodeOptions(batch_bins=100000)).decode(items)
    beam = Speech2Text(loaded, DecodeOptions(decode_mode="beam", ctc_weight=0.0, batch_bins=100000)).decode(items)
    for one, many, searched in zip(alone, batched, beam):
        assert one["token"] == many["token"] and one["timestamp"] == many["timestamp"]
        if searched["token"] == one["token"]:  # a beam path equal to greedy gets greedy's times
            assert searched["timestamp"] == one["timestamp"]


def test_export_round_trip_and_funasr_reads_the_export(bicif_dir, wav_paths, tmp_path):
    out = str(tmp_path / "exported")
    export_model_dir(bicif_dir, out)
    with open(os.path.join(out, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    assert config["model"] == "BiCifParaformer" and config["predictor"] == "CifPredictorV3"
    ours = Speech2Text(load_model_dir(out)).decode(items_from_wav_files(wav_paths))
    expected = automodel_results(out, wav_paths)
    for result in ours:
        assert result["text"] == expected[result["key"]]["text"].replace(" ", "")
        assert result["timestamp"] == expected[result["key"]]["timestamp"]


def test_after_an_unk_funasr_shifts_the_times_and_we_keep_one_per_token(unk_dir, wav_paths):
    """FunASR's sentence_postprocess drops <unk> from the words but not its timestamp, then keeps
    the first len(words) stamps: every word after an <unk> gets its left neighbour's time. Ours keep
    one stamp per token of 1best_recog/token (<unk> included; the text drops it)."""
    expected = automodel_results(unk_dir, wav_paths)
    ours = Speech2Text(load_model_dir(unk_dir)).decode(items_from_wav_files(wav_paths))
    with_unk = 0
    for result in ours:
        stamps, funasr_stamps = result["timestamp"], expected[result["key"]]["timestamp"]
        assert len(stamps) == len(result["token"])
        words = [t for t in result["token"] if t != "<unk>"]
        assert result["text"] == "".join(words) == expected[result["key"]]["text"].replace(" ", "")
        assert funasr_stamps == stamps[: len(words)]
        if "<unk>" in result["token"][: len(words)]:
            with_unk += 1
            first = result["token"].index("<unk>")
            assert funasr_stamps[first] != stamps[result["token"].index(words[first], first)]
    assert with_unk >= 1  # the random model says <unk> early in some utterance


def test_timestamp_source_cif_gives_the_cif_fires_times_of_the_same_model(bicif_dir, wav_paths, tmp_path):
    """--timestamp_source cif: a BiCif model's forward-CIF times (60 ms frames), FunASR's rule in
    the right order on its CIF signals; the same text as the upsampled head's decode."""
    import copy

    from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

    loaded = load_model_dir(bicif_dir)
    default = Speech2Text(loaded).decode(items_from_wav_files(wav_paths))
    assert infer_cli.main(["--model_dir", bicif_dir, "--wav", *wav_paths, "--output_dir", str(tmp_path),
                           "--timestamp_source", "cif"]) == 0
    cif = {r["key"]: r for r in read_1best_recog(tmp_path / "1best_recog")}
    speech2text = Speech2Text(loaded)
    differ = 0
    for index, (path, result) in enumerate(zip(wav_paths, default)):
        assert cif[result["key"]]["token"] == result["token"]
        prepared = speech2text.prepare(index, items_from_wav_files([path])[0])
        with torch.no_grad():
            encoder_out, lengths = loaded.model.encode(prepared.model_input[None], torch.tensor([prepared.num_frames]))
            _, _, alphas, peaks = loaded.model.calc_predictor(encoder_out, lengths)
        _, expected = ts_prediction_lfr6_standard(alphas[0].clone(), peaks[0].clone(), copy.copy(result["token"]),
                                                  upsample_rate=1)
        assert cif[result["key"]]["timestamp"] == expected
        differ += expected != result["timestamp"]
    assert differ >= 1
    with pytest.raises(Exception, match="timestamp_source"):
        DecodeOptions(timestamp_source="upsampled").check()
