"""Every egs/*/conf/*.yaml is a valid training config and builds a model (a broken recipe config fails CI)."""

import glob
import os

import pytest
import torch

from funasr_lite.models import build_model
from funasr_lite.models.speaker import build_speaker_model, is_speaker_config
from funasr_lite.utils.config import load_yaml, validate_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL_CONFIGS = sorted(
    p for p in glob.glob(os.path.join(REPO, "egs", "*", "conf", "*.yaml"))
    if "encoder" in load_yaml(p) and load_yaml(p).get("model") != "CTTransformer"  # punctuation: below
    and not is_speaker_config(load_yaml(p))  # speaker models: below
)
SPEAKER_CONFIGS = sorted(p for p in glob.glob(os.path.join(REPO, "egs", "*", "conf", "*.yaml"))
                         if is_speaker_config(load_yaml(p)))
PUNC_CONFIGS = sorted(
    p for p in glob.glob(os.path.join(REPO, "egs", "*", "conf", "*.yaml")) if load_yaml(p).get("model") == "CTTransformer"
)


def _with_sizes(config, vocab_size):
    config = dict(config)
    frontend = config["frontend_conf"]
    config["input_size"] = frontend["n_mels"] * frontend["lfr_m"]
    config["vocab_size"] = vocab_size
    return config


def test_there_are_recipe_configs():
    names = {os.path.basename(p) for p in MODEL_CONFIGS}
    assert {"demo.yaml", "paraformer_sanm.yaml", "paraformer_conformer_12e_6d_2048_256.yaml"} <= names


@pytest.mark.parametrize("path", MODEL_CONFIGS, ids=os.path.basename)
def test_config_validates_and_builds(path):
    config = validate_config(load_yaml(path), source=path)
    with torch.device("meta"):  # shapes only: the large model would need ~1 GB
        model = build_model(_with_sizes(config, vocab_size=4234))
    assert sum(p.numel() for p in model.parameters()) > 1_000_000
    # a Paraformer has a CIF predictor; an attention encoder-decoder (model: Conformer) does not;
    # a pretraining model (model: data2vec) is an encoder alone
    parts = {"encoder", "predictor", "decoder"} if getattr(model, "uses_predictor", True) else {"encoder", "decoder"}
    if config["model"] == "data2vec":
        parts = {"encoder"}
    assert {name.split(".")[0] for name, _ in model.named_parameters()} >= parts


def test_aed_configs_are_funasrs_conformer_and_the_demo_size():
    sizes = {}
    for name in ("conformer_12e_6d_2048_256", "demo_aed", "demo"):
        config = validate_config(load_yaml(os.path.join(REPO, "egs", "aishell1", "conf", f"{name}.yaml")))
        with torch.device("meta"):
            model = build_model(_with_sizes(config, vocab_size=4234))
        sizes[name] = (type(model).__name__, sum(p.numel() for p in model.parameters()))
    # FunASR's Conformer class with its AISHELL-1 config: 46,198,036 parameters with 4234 tokens
    assert sizes["conformer_12e_6d_2048_256"] == ("Conformer", 46_198_036)
    assert sizes["demo_aed"][0] == "Conformer"
    assert 0.8 < sizes["demo_aed"][1] / sizes["demo"][1] < 1.25  # "about the demo's size"


def test_sanm_config_is_paraformer_large():
    config = validate_config(load_yaml(os.path.join(REPO, "egs", "aishell1", "conf", "paraformer_sanm.yaml")))
    with torch.device("meta"):
        model = build_model(_with_sizes(config, vocab_size=8404))
    assert sum(p.numel() for p in model.parameters()) == 220_084_533  # docs/spec.md §10


def test_demo_config_trains_one_step():
    torch.manual_seed(0)
    config = validate_config(load_yaml(os.path.join(REPO, "egs", "aishell1", "conf", "demo.yaml")))
    model = build_model(_with_sizes(config, vocab_size=30))
    model.train()
    speech = torch.randn(2, 40, 560)
    text = torch.tensor([[5, 6, 7, 8], [9, 10, -1, -1]])
    loss, stats, _ = model(speech, torch.tensor([40, 31]), text, torch.tensor([4, 2]))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for n, p in model.named_parameters() if n.startswith("encoder."))


@pytest.mark.parametrize("path", PUNC_CONFIGS, ids=os.path.basename)
def test_punctuation_config_builds(path):
    from funasr_lite.models.punc import build_ct_transformer
    from funasr_lite.train.tasks.punc import resolve_punc_config as resolve_config

    config = resolve_config(path, [], train_text="train.txt", valid_text=None)
    model = build_ct_transformer(config, vocab_size=4000, source=path)
    logits = model(torch.randint(0, 4000, (2, 7)), torch.tensor([7, 5]))
    assert logits.shape == (2, 7, 6)


def test_there_is_a_punctuation_config():
    assert [os.path.basename(p) for p in PUNC_CONFIGS] == ["punc.yaml"]


def test_data2vec_demo_configs_share_one_encoder_and_funasrs_keys():
    conf = os.path.join(REPO, "egs", "aishell1", "conf")
    pretrain = load_yaml(os.path.join(conf, "data2vec_demo.yaml"))
    finetune = load_yaml(os.path.join(conf, "paraformer_data2vec_demo.yaml"))
    # FunASR's released pretraining config's encoder keys, every one of them (the demo adds sizes).
    released = {"extractor_mode", "encoder_layerdrop", "dropout_input", "dropout_features", "feature_grad_mult",
                "encoder_embed_dim", "mask_prob", "mask_length", "loss_beta", "loss_scale",
                "instance_norm_target_layer", "average_top_k_layers", "pos_conv_depth", "conv_pos", "ema_decay",
                "ema_end_decay", "ema_anneal_end_step", "ema_transformer_only", "ema_layers_only",
                "require_same_masks", "mask_dropout"}
    assert released <= set(pretrain["encoder_conf"])
    assert (pretrain["optim"], pretrain["scheduler"]) == ("fairseq_adam", "tri_stage")
    # The fine-tuned encoder is the pretrained one: equal but for FunASR's two fine-tuning values.
    differ = {k for k in pretrain["encoder_conf"] if pretrain["encoder_conf"][k] != finetune["encoder_conf"].get(k)}
    assert differ == {"encoder_layerdrop", "feature_grad_mult"} and set(finetune["encoder_conf"]) == set(pretrain["encoder_conf"])
    assert finetune["frontend_conf"] == pretrain["frontend_conf"]
    assert finetune["predictor_conf"]["idim"] == pretrain["encoder_conf"]["encoder_embed_dim"]


def test_there_is_a_speaker_config():
    assert "xvector_demo.yaml" in {os.path.basename(p) for p in SPEAKER_CONFIGS}


@pytest.mark.parametrize("path", SPEAKER_CONFIGS, ids=os.path.basename)
def test_speaker_config_resolves_and_builds(path, tmp_path):
    from funasr_lite.train.tasks.speaker import resolve_speaker_config

    (tmp_path / "utt2spk").write_text("a S1\nb S2\n")
    config = resolve_speaker_config(path, [], str(tmp_path))
    model = build_speaker_model(config)
    assert model.vocab_size == 2 and sum(p.numel() for p in model.parameters()) > 100_000
    logits, embeddings = model.train()(torch.randn(2, 30, config["input_size"]), torch.tensor([30, 21]), cosine=True)
    assert logits.shape == (2, 2) and float(logits.abs().max()) <= 1 + 1e-6
