"""Paraformer-tiny command-word model dirs (issue #25; the seed's
speech_paraformer-tiny-commandword_asr_nat-zh-cn-16k-vocab544): the recipe's layout
(egs/aishell1/conf/paraformer_tiny_commandword.yaml: Conformer encoder, SAN decoder, CIF v1,
share_embedding, 80-dim fbank without LFR, 544 tokens) built by funasr's own Paraformer class with
random weights, saved as a FunASR dir: it loads unchanged (no decoder.embed weights) and decodes to
AutoModel's text."""

import os

import pytest
import yaml

from funasr.models.paraformer.model import Paraformer as FunasrParaformer

from funasr_lite.api import SpeechRecognizer
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import items_from_wav_files
from funasr_configs import funasr_common_sections
from funasr_dirs import assert_off_cif_thresholds, build_funasr_model, save_funasr_dir
from test_funasr_model_dir import corpus, funasr_automodel, wav_paths  # noqa: F401 (fixtures)
from test_infer import write_cmvn_from_waves

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE_CONFIG = os.path.join(REPO, "egs", "aishell1", "conf", "paraformer_tiny_commandword.yaml")
# FunASR's registry names for the recipe's components
FUNASR_NAMES = {"model": "Paraformer", "encoder": "ConformerEncoder", "decoder": "ParaformerSANDecoder",
                "predictor": "CifPredictor"}
TOKENS = ["<blank>", "<s>", "</s>", *(chr(0x4E00 + i) for i in range(540)), "<unk>"]  # 544, as the seed's


def tiny_commandword_config():
    with open(RECIPE_CONFIG, encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    config = {key: recipe[key] for key in ("model_conf", "encoder_conf", "decoder_conf", "predictor_conf")}
    config.update(FUNASR_NAMES)
    config["predictor_conf"]["idim"] = recipe["encoder_conf"]["output_size"]
    config.update(funasr_common_sections(lfr_m=1, lfr_n=1))
    return config


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, corpus):  # noqa: F811
    config = tiny_commandword_config()
    model = build_funasr_model(FunasrParaformer, config, len(TOKENS), seed=4, alpha_bias=-0.9, input_size=80)
    path = save_funasr_dir(str(tmp_path_factory.mktemp("tiny_cmd")), config, model, TOKENS,
                           lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values(), lfr_m=1, lfr_n=1))
    return path, model


def test_the_layout_is_the_seed_cards_five_million_parameters(tiny_dir):
    _, model = tiny_dir
    assert model.share_embedding and not any(k.startswith("decoder.embed") for k in model.state_dict())
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    assert 3.3e6 < count(model.encoder) < 3.8e6  # the card: encoder ~3.5 M
    assert 1.6e6 < count(model.decoder) < 1.8e6  # the card: decoder 1.6-1.8 M
    assert 5.0e6 < count(model) < 5.8e6


def test_a_funasr_tiny_dir_decodes_to_automodels_text(tiny_dir, wav_paths):  # noqa: F811
    path, _ = tiny_dir
    loaded = load_model_dir(path)
    assert loaded.model.share_embedding and loaded.sample_rate == 16000
    assert_off_cif_thresholds(loaded, items_from_wav_files(wav_paths))
    ours = SpeechRecognizer.from_model_dir(path)
    automodel = funasr_automodel(path)
    said = 0
    for wav in wav_paths:
        expected = automodel.generate(input=wav)[0]
        got = ours(wav)[0]
        assert got["text"] == expected["text"].replace(" ", ""), wav
        said += len(got["text"])
    assert said >= 5  # the comparison is over real output, not empty strings
