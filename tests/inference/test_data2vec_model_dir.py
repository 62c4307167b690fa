"""A FunASR-layout model dir of a Paraformer fine-tuned from data2vec (FunASR's
egs/aishell/data2vec_paraformer_finetune layout: encoder data2vec_encoder over 80-dim fbank, SAN
decoder, CIF), built BY funasr with random weights, loads in ours and decodes as funasr decodes it.

funasr 1.4.16 does not register Data2VecEncoder in its tables, so AutoModel cannot build such a
dir as shipped; the test registers funasr's own class under FunASR's config name first.
"""

import logging
import os

import pytest
import torch

from funasr import AutoModel
from funasr.models.data2vec.data2vec_encoder import Data2VecEncoder as FunasrData2VecEncoder
from funasr.models.paraformer.model import Paraformer as FunasrParaformer
from funasr.register import tables

from funasr_lite.bin import infer as infer_cli
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.inference.speech2text import Speech2Text, items_from_wav_files
from funasr_lite.inference.writers import read_1best_recog
from funasr_lite.models.data2vec.encoder import Data2VecEncoder
from test_infer import TOKENS, write_cmvn_from_waves, write_corpus
from funasr_configs import funasr_common_sections  # tests/funasr_configs.py
from funasr_dirs import build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py

logging.getLogger("funasr").setLevel(logging.WARNING)
tables.register("encoder_classes", "data2vec_encoder")(FunasrData2VecEncoder)

UTTERANCES = {"utt_a": 2.6, "utt_b": 1.2, "utt_c": 3.4}
# The released fine-tuning config's encoder_conf keys (pretraining ones included), tiny sizes.
ENCODER_CONF = {
    "extractor_mode": "layer_norm", "conv_feature_layers": "[(32,2,2)] + [(32,2,2)]", "encoder_layers": 2,
    "encoder_embed_dim": 64, "encoder_ffn_embed_dim": 128, "encoder_attention_heads": 4, "encoder_layerdrop": 0.1,
    "dropout_input": 0.0, "dropout_features": 0.0, "feature_grad_mult": 0.0, "mask_prob": 0.65, "mask_length": 10,
    "loss_beta": 0, "loss_scale": None, "instance_norm_target_layer": True, "average_top_k_layers": 2,
    "pos_conv_depth": 2, "conv_pos": 10, "conv_pos_groups": 4, "ema_decay": 0.999, "ema_end_decay": 0.9999,
    "ema_anneal_end_step": 30000, "ema_transformer_only": True, "ema_layers_only": True, "require_same_masks": True,
    "mask_dropout": 0,
}


def data2vec_paraformer_config():
    config = {
        "model": "Paraformer",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "predictor_weight": 1.0, "sampling_ratio": 0.4},
        "encoder": "data2vec_encoder", "encoder_conf": dict(ENCODER_CONF),
        "decoder": "ParaformerSANDecoder",
        "decoder_conf": {"attention_heads": 4, "linear_units": 128, "num_blocks": 2, "dropout_rate": 0.1,
                         "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0,
                         "src_attention_dropout_rate": 0.0},
        "predictor": "CifPredictor",
        "predictor_conf": {"idim": 64, "threshold": 1.0, "l_order": 1, "r_order": 1},
        **funasr_common_sections(lfr_m=1, lfr_n=1),
    }
    config["frontend_conf"]["lfr_m"] = config["frontend_conf"]["lfr_n"] = 1
    return config


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(str(tmp_path_factory.mktemp("corpus")), UTTERANCES, with_feats=False)


@pytest.fixture(scope="module")
def wav_paths(corpus):
    wav_dir = os.path.join(os.path.dirname(corpus[0]), "wav")
    return [os.path.join(wav_dir, f"{key}.wav") for key in sorted(UTTERANCES)]


@pytest.fixture(scope="module")
def funasr_dir(tmp_path_factory, corpus):
    path = str(tmp_path_factory.mktemp("data2vec_paraformer"))
    config = data2vec_paraformer_config()
    model = build_funasr_model(FunasrParaformer, config, len(TOKENS), alpha_bias=-0.9, input_size=80)
    save_funasr_dir(path, config, model, TOKENS,
                    lambda mvn: write_cmvn_from_waves(mvn, corpus[1].values(), lfr_m=1, lfr_n=1))
    return path, model


def test_dir_loads_with_a_data2vec_encoder_at_40ms_frames(funasr_dir):
    loaded = load_model_dir(funasr_dir[0])  # strict load of funasr's state dict
    assert isinstance(loaded.model.encoder, Data2VecEncoder)
    assert loaded.input_size == 80
    assert loaded.encoder_frame_ms == 40.0  # 10 ms fbank, two stride-2 convs


def test_tokens_and_scores_equal_funasrs_on_identical_features(funasr_dir, wav_paths):
    model_dir, funasr_model = funasr_dir
    speech2text = Speech2Text(load_model_dir(model_dir))
    total_tokens = 0
    for index, path in enumerate(wav_paths):
        result = speech2text.decode(items_from_wav_files([path]))[0]
        prepared = speech2text.prepare(index, items_from_wav_files([path])[0])
        feats = prepared.model_input[None]
        lengths = torch.tensor([[feats.shape[1]]])
        expected, _ = funasr_model.inference(feats, lengths, key=[result["key"]], tokenizer=None, device="cpu",
                                             data_type="fbank")
        assert result["token_int"] == expected[0]["token_int"], result["key"]
        with torch.no_grad():
            encoder_out, encoder_lengths = funasr_model.encode(feats, lengths[:, 0])
            ours_out, ours_lengths = speech2text.loaded.model.encode(feats, lengths[:, 0])
        assert ours_lengths.tolist() == encoder_lengths.tolist()
        assert float((ours_out - encoder_out).abs().max()) < 1e-5
        total_tokens += len(result["token_int"])
    assert total_tokens >= 10  # not a vacuous comparison of empty outputs


def test_funasr_automodel_gives_our_text_from_the_same_wavs(funasr_dir, wav_paths, tmp_path):
    """funasr's whole pipeline (audio loading, fbank, CMVN) vs our CLI. --batch_bins 1 decodes each
    utterance alone, as AutoModel does: with pos_conv_depth > 1 an utterance's output depends on the
    padding of its batch (in funasr too; docs/data2vec.md)."""
    model_dir, _ = funasr_dir
    args = ["--model_dir", model_dir, "--wav", *wav_paths, "--output_dir", str(tmp_path), "--batch_bins", "1"]
    assert infer_cli.main(args) == 0
    ours = {r["key"]: r["text"] for r in read_1best_recog(tmp_path / "1best_recog")}
    automodel = AutoModel(model=model_dir, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    for path in wav_paths:
        expected = automodel.generate(input=path)[0]
        assert ours[expected["key"]] == expected["text"]
        assert expected["text"]
