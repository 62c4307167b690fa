"""FunASR SeacoParaformer and ContextualParaformer model dirs (random weights from funasr's classes): with the same hotwords
(a string, a .txt file, a URL) our text and timestamps equal AutoModel's; the hotword lists equal
funasr's generate_hotwords_list ids; no hotwords gives the BiCif decode; the deliberate
differences (missing file, empty lines, BOM, lists) are named."""

import functools
import http.server
import os

import pytest
import torch

from funasr.models.seaco_paraformer.model import SeacoParaformer as FunasrSeacoParaformer

from funasr_lite import SpeechRecognizer
from funasr_lite.bin import infer as infer_cli
from funasr_lite.data.hotwords import HotwordError, hotword_units
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import DecodeError, DecodeOptions, Speech2Text, items_from_wav_files
from funasr_lite.inference.writers import read_1best_recog
from local_http import local_http_server  # tests/local_http.py
from test_bicif_model_dir import V3_PREDICTOR_CONF, UTTERANCES, automodel_results
from test_funasr_model_dir import corpus, funasr_automodel, wav_paths  # noqa: F401 (fixtures)
from funasr_configs import funasr_paraformer_config, funasr_sanm_confs
from funasr_dirs import assert_off_cif_thresholds, build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py
from test_infer import TOKENS, synth_wave, write_cmvn_from_waves, write_model_dir

ENCODER_CONF, DECODER_CONF = funasr_sanm_confs(output_size=64, linear_units=128, kernel_size=11)
NO_BIAS = 0  # <blank>: never a target, so free to mean "no hotword" (FunASR's 8377 fits its vocabulary only)
HOTWORDS = "地个 大你 他们 中"


def seaco_funasr_config():
    config = funasr_paraformer_config(ENCODER_CONF, DECODER_CONF)
    config.update(model="SeacoParaformer", predictor="CifPredictorV3", predictor_conf=dict(V3_PREDICTOR_CONF),
                  seaco_decoder="ParaformerSANMDecoder",
                  seaco_decoder_conf={"attention_heads": 4, "linear_units": 64, "num_blocks": 4, "kernel_size": 11,
                                      "sanm_shfit": 0, "use_output_layer": False, "wo_input_layer": True,
                                      "dropout_rate": 0.1, "self_attention_dropout_rate": 0.1,
                                      "src_attention_dropout_rate": 0.1})
    config["model_conf"].update(inner_dim=64, bias_encoder_type="lstm", bias_encoder_bid=False,
                                seaco_lsm_weight=0.1, train_decoder=True, NO_BIAS=NO_BIAS)
    return config


def write_seaco_dir(path, waves, seg_dict=True, seed=0):
    config = seaco_funasr_config()
    model = build_funasr_model(FunasrSeacoParaformer, config, len(TOKENS), seed)
    with torch.no_grad():
        model.decoder.output_layer.bias[TOKENS.index("<unk>")] = -100.0
        model.hotword_output_layer.bias[NO_BIAS] += 1.5  # the bias head fires on part of the tokens
        model.hotword_output_layer.bias[TOKENS.index("<unk>")] = -100.0  # neither head says <unk>
    return save_funasr_dir(path, config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, waves), seg_dict)


@pytest.fixture(scope="module")
def seaco_dir(tmp_path_factory, corpus):
    # seed 1: every CIF count and fire of the three wavs is off its threshold (checked in the test)
    return write_seaco_dir(str(tmp_path_factory.mktemp("seaco")), corpus[1].values(), seed=1)


def automodel_with_hotwords(model_dir, wav_paths, hotword):
    automodel = funasr_automodel(model_dir)
    return {r["key"]: r for path in wav_paths for r in automodel.generate(input=path, hotword=hotword)}


def assert_equal_to(expected, ours):
    assert sorted(r["key"] for r in ours) == sorted(expected)
    for result in ours:
        assert result["text"] == expected[result["key"]]["text"].replace(" ", ""), result["key"]
        assert result["timestamp"] == expected[result["key"]]["timestamp"], result["key"]


def test_hotword_string_gives_automodels_text_and_timestamps(seaco_dir, wav_paths):
    asr = SpeechRecognizer.from_model_dir(seaco_dir)
    assert_off_cif_thresholds(asr.loaded, items_from_wav_files(wav_paths))  # hotwords leave the CIF as it is
    biased = asr(wav_paths, hotword=HOTWORDS)
    assert_equal_to(automodel_with_hotwords(seaco_dir, wav_paths, HOTWORDS), biased)
    plain = asr(wav_paths)
    assert_equal_to(automodel_results(seaco_dir, wav_paths), plain)  # no hotwords: the BiCif decode
    assert [r["text"] for r in biased] != [r["text"] for r in plain]  # the hotwords changed the output
    # batched (one padded batch) = one by one: the filter and the switch are per utterance
    batched = SpeechRecognizer.from_model_dir(seaco_dir, hotword=HOTWORDS, batch_bins=100000)(wav_paths)
    assert [r["text"] for r in batched] == [r["text"] for r in biased]


def test_many_hotwords_use_the_filter_as_automodel(seaco_dir, wav_paths, tmp_path):
    words = [a + b for a in TOKENS[3:12] for b in TOKENS[12:20]]  # 72 > nfilter 50
    path = tmp_path / "hotwords.txt"
    path.write_text("\n".join(words) + "\n", encoding="utf-8")
    expected = automodel_with_hotwords(seaco_dir, wav_paths, str(path))
    assert infer_cli.main(["--model_dir", seaco_dir, "--wav", *wav_paths, "--output_dir", str(tmp_path / "out"),
                           "--hotword", str(path)]) == 0
    assert_equal_to(expected, read_1best_recog(tmp_path / "out" / "1best_recog"))


def test_hotword_url_as_automodel(seaco_dir, wav_paths, tmp_path):
    (tmp_path / "hw.txt").write_text("大你\n他们\n", encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    with local_http_server(handler) as base:
        url = f"{base}/hw.txt"
        expected = automodel_with_hotwords(seaco_dir, wav_paths, url)
        ours = SpeechRecognizer.from_model_dir(seaco_dir, hotword=url)(wav_paths)
    assert_equal_to(expected, ours)


def test_hotword_ids_equal_funasrs_with_and_without_seg_dict(seaco_dir, corpus, tmp_path):
    from funasr_lite.data.hotwords import hotword_ids, read_seg_dict
    from funasr_lite.data.tokenizer import CharTokenizer

    no_seg = write_seaco_dir(str(tmp_path / "no_seg"), corpus[1].values(), seg_dict=False)
    spec = "地个 Ab 12 大\t你\n他们 Hello"
    for model_dir, seg in ((seaco_dir, read_seg_dict(os.path.join(seaco_dir, "seg_dict"))), (no_seg, None)):
        automodel = funasr_automodel(model_dir)
        expected = automodel.model.generate_hotwords_list(spec, tokenizer=automodel.kwargs["tokenizer"],
                                                          frontend=automodel.kwargs["frontend"])
        _, ids = hotword_ids(spec, CharTokenizer(TOKENS), 1, seg)
        assert ids == expected


def test_our_deliberate_differences_are_named(seaco_dir, tmp_path):
    with pytest.raises(HotwordError, match="does not exist"):
        hotword_units(str(tmp_path / "missing.txt"))  # FunASR: silently no hotwords
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeff大你\n\n他们 中\n".encode("utf-8"))  # FunASR: <unk> for the BOM, a crash on the empty line
    assert hotword_units(str(path)) == [["大你"], ["他们", "中"]]
    assert hotword_units(["大你", "他们 中"]) == [["大你"], ["他们", "中"]]  # FunASR: a list crashes
    assert hotword_units(None) is None and hotword_units("") == []
    paraformer = write_model_dir(str(tmp_path / "paraformer"), [synth_wave(1.0, seed=1)])
    with pytest.raises(DecodeError, match="takes no hotwords"):
        Speech2Text(load_model_dir(paraformer), DecodeOptions(hotword="大你"))
    with pytest.raises(DecodeError, match="seaco_weight"):
        DecodeOptions(seaco_weight=0.0).check()


def write_contextual_dir(path, waves, seed=0):
    from funasr.models.contextual_paraformer.model import ContextualParaformer as FunasrContextualParaformer

    config = funasr_paraformer_config(ENCODER_CONF, DECODER_CONF)
    config["decoder"] = "ContextualParaformerDecoder"
    config["model"] = "ContextualParaformer"
    config["model_conf"].update(inner_dim=64)
    model = build_funasr_model(FunasrContextualParaformer, config, len(TOKENS), seed)
    with torch.no_grad():
        model.decoder.output_layer.bias[TOKENS.index("<unk>")] = -100.0
        model.decoder.bias_output.weight.mul_(4.0)  # a strong bias path: hotwords change the output
    return save_funasr_dir(path, config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, waves), True)


def test_contextual_dir_gives_automodels_text_with_and_without_hotwords(corpus, wav_paths, tmp_path):
    model_dir = write_contextual_dir(str(tmp_path / "contextual"), corpus[1].values())
    asr = SpeechRecognizer.from_model_dir(model_dir)
    biased = asr(wav_paths, hotword=HOTWORDS)
    plain = asr(wav_paths)
    for ours, hotword in ((biased, HOTWORDS), (plain, None)):
        expected = automodel_with_hotwords(model_dir, wav_paths, hotword)
        assert [r["text"] for r in ours] == [expected[r["key"]]["text"].replace(" ", "") for r in ours]
    assert [r["text"] for r in biased] != [r["text"] for r in plain]
    assert sum(len(r["token"]) for r in biased) >= 8


def test_bad_hotword_lists_are_named_and_decoding_goes_on(seaco_dir, wav_paths, tmp_path, caplog):
    asr = SpeechRecognizer.from_model_dir(seaco_dir)
    plain = [r["text"] for r in asr(wav_paths)]
    with caplog.at_level("WARNING"):
        assert [r["text"] for r in asr(wav_paths, hotword="   ")] == plain  # empty: no hotwords
    assert "hotword list is empty" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        asr(wav_paths, hotword="大你 大你 Hello 甲乙 他们")
    assert "2 of 5 hotwords hold tokens outside the vocabulary" in caplog.text and "Hello" in caplog.text
    assert "1 duplicate hotwords" in caplog.text
    big = tmp_path / "big.txt"
    big.write_text("\n".join(f"{TOKENS[3 + i % 20]}{TOKENS[3 + (i // 20) % 20]}{i}" for i in range(100000)),
                   encoding="utf-8")
    caplog.clear()
    with caplog.at_level("WARNING"):
        results = asr(wav_paths[:1], hotword=str(big))
    assert results[0]["text"] and "100000 hotwords" in caplog.text
    with pytest.raises(DecodeError, match="hotword URL http://127.0.0.1:9/none.txt"):
        asr(wav_paths[:1], hotword="http://127.0.0.1:9/none.txt")
