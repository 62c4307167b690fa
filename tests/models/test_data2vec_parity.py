"""data2vec parity with funasr (the oracle) on random weights: funasr's Data2VecEncoder state dict
loads into ours with strict=True, and both compute the same features, masks, pretraining loss,
statistics, gradients and EMA teacher.

funasr 1.4.16 ships funasr/models/data2vec/ but registers none of it in its tables, so its classes
are built here directly from their modules.
"""

import copy

import numpy as np
import pytest
import torch

from funasr.models.data2vec import data_utils as funasr_masking
from funasr.models.data2vec.data2vec import Data2VecPretrainModel as FunasrPretrainModel
from funasr.models.data2vec.data2vec_encoder import Data2VecEncoder as FunasrEncoder
from funasr.models.transformer.utils.nets_utils import make_pad_mask

from funasr_lite.models import ConfigError, build_model
from funasr_lite.models.data2vec.encoder import Data2VecEncoder
from funasr_lite.models.data2vec.masking import compute_mask_indices
from funasr_lite.models.data2vec.model import Data2VecPretrainModel

INPUT_SIZE = 8
# FunASR's released pretraining config (egs/aishell2/data2vec_pretrain), scaled down: 3 layers of 32,
# targets the top 2 layers' instance-normalised FFN outputs, 4x conv subsampling.
TINY_CONF = dict(
    extractor_mode="layer_norm", conv_feature_layers="[(16,2,2)] + [(16,2,2)]", encoder_layers=3,
    encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=4, conv_pos=10, conv_pos_groups=4,
    pos_conv_depth=2, average_top_k_layers=2, instance_norm_target_layer=True, mask_prob=0.65, mask_length=3,
    require_same_masks=True, mask_dropout=0.0, encoder_layerdrop=0.0, dropout_input=0.0, dropout_features=0.0,
    feature_grad_mult=1.0, loss_beta=0, loss_scale=None, ema_decay=0.9, ema_end_decay=0.99, ema_anneal_end_step=100,
    ema_transformer_only=True, ema_layers_only=True,
)
# Both layouts of each part: the GroupNorm extractor, the weight-normed single positional conv,
# pre-LN layers, and the other target normalisations and loss.
VARIANTS = {
    "released": {},
    "default_extractor_prenorm": dict(extractor_mode="default", pos_conv_depth=1, conv_pos=8, layer_norm_first=True),
    "layer_norms_smooth_l1": dict(instance_norm_target_layer=False, layer_norm_target_layer=True,
                                  layer_norm_targets=True, loss_beta=0.25, loss_scale=0.5, ema_layers_only=False),
}
NO_DROPOUT = dict(dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
ATOL = 1e-5


def encoder_pair(**overrides):
    conf = dict(TINY_CONF, **overrides)
    theirs = FunasrEncoder(input_size=INPUT_SIZE, **conf)
    ours = Data2VecEncoder(input_size=INPUT_SIZE, **conf)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


def max_abs_diff(a, b):
    return float((a.detach() - b.detach()).abs().max())


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_funasr_state_dict_loads_strictly_with_the_same_keys_and_shapes(variant):
    ours, theirs = encoder_pair(**VARIANTS[variant])
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert ours.output_size() == theirs.output_size() == 32


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_encoder_features_match_funasr_on_a_padded_batch(variant):
    ours, theirs = encoder_pair(**VARIANTS[variant])
    ours.eval(), theirs.eval()
    lengths = torch.tensor([41, 33, 22])
    feats = torch.randn(3, 41, INPUT_SIZE)
    with torch.no_grad():
        expected, expected_lengths, _ = theirs(feats, lengths)
        encoded, encoded_lengths = ours(feats, lengths)
    assert encoded_lengths.tolist() == expected_lengths.tolist() == [10, 8, 5]
    for b, length in enumerate(encoded_lengths.tolist()):
        assert max_abs_diff(encoded[b, :length], expected[b, :length]) < ATOL


def test_padded_frames_do_not_change_an_utterance_with_one_positional_conv():
    # Only with pos_conv_depth=1: deeper positional convs (the released configs use 5) LayerNorm the
    # zeroed padding frames into non-zero ones that the next conv reads, so in FunASR (and here, as
    # the padded-batch parity above shows) an utterance's output depends on the batch's padding.
    ours, _ = encoder_pair(pos_conv_depth=1, conv_pos=8)
    ours.eval()
    feats = torch.randn(2, 41, INPUT_SIZE)
    with torch.no_grad():
        batch, lengths = ours(feats, torch.tensor([41, 22]))
        alone, alone_lengths = ours(feats[1:, :22], torch.tensor([22]))
    assert alone_lengths.tolist() == [lengths[1].item()] == [5]
    assert max_abs_diff(batch[1, :5], alone[0]) < ATOL


@pytest.mark.parametrize("padded", [True, False])
@pytest.mark.parametrize("require_same_masks,mask_dropout", [(True, 0.0), (False, 0.2)])
def test_mask_draws_equal_funasrs_for_the_same_seed(padded, require_same_masks, mask_dropout):
    padding_mask = make_pad_mask(torch.tensor([50, 37, 12])) if padded else None
    for seed in range(5):
        np.random.seed(seed)
        expected = funasr_masking.compute_mask_indices(
            (3, 50), padding_mask, 0.65, 4, min_masks=1, require_same_masks=require_same_masks,
            mask_dropout=mask_dropout)
        drawn = compute_mask_indices((3, 50), padding_mask, 0.65, 4, np.random.RandomState(seed), min_masks=1,
                                     require_same_masks=require_same_masks, mask_dropout=mask_dropout)
        assert (drawn == expected).all()
        if padded:
            assert not drawn[2, 12:].any()
        if require_same_masks:
            assert len(set(drawn.sum(1).tolist())) == 1


def pretrain_pair(**overrides):
    ours, theirs = encoder_pair(**overrides, **NO_DROPOUT)
    if overrides.get("pos_conv_depth", TINY_CONF["pos_conv_depth"]) == 1:
        # funasr bug worked around: with pos_conv_depth=1 (its default) the positional conv uses
        # nn.utils.weight_norm, whose computed `weight` is not a graph leaf, and torch >= 2.1 refuses
        # to deepcopy such a module, so funasr cannot make its EMA teacher. A detached weight (the
        # hook recomputes it from weight_g / weight_v at every forward) lets the deepcopy through.
        conv = theirs.encoder.pos_conv[0]
        conv.weight = conv.weight.detach()
    return Data2VecPretrainModel(ours).train(), FunasrPretrainModel(encoder=theirs).train()


def perturb_both(ours, theirs, seed):
    """The same optimiser-like change to both students (so the EMA step has something to average)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ours_params = dict(ours.named_parameters())
        for name, theirs_param in sorted(theirs.named_parameters()):
            delta = 0.05 * torch.randn(theirs_param.shape, generator=generator)
            ours_params[name].add_(delta)
            theirs_param.add_(delta)


def step_both(ours, theirs, feats, lengths, seed, num_updates):
    ours.set_num_updates(num_updates)
    theirs.set_num_updates(num_updates)
    np.random.seed(seed)  # FunASR draws its mask from numpy's global generator
    expected = theirs(feats, lengths)
    result = ours(feats, lengths, rng=np.random.RandomState(seed))
    return result, expected


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("lengths", [[41, 33, 22], [40, 40, 40]])
def test_pretraining_loss_stats_gradients_and_ema_match_funasr(variant, lengths):
    ours, theirs = pretrain_pair(**VARIANTS[variant])
    lengths = torch.tensor(lengths)
    feats = torch.randn(3, int(lengths.max()), INPUT_SIZE)
    # Step 1 makes both teachers (copies of the students); then both students change alike and
    # step 2 moves both teachers one EMA step (decay annealed at update 30 of 100) before its loss.
    step_both(ours, theirs, feats, lengths, seed=1, num_updates=0)
    perturb_both(ours, theirs, seed=2)
    (loss, stats, weight), (expected_loss, expected_stats, expected_weight) = step_both(
        ours, theirs, feats, lengths, seed=3, num_updates=30)

    assert int(weight) == int(expected_weight) > 0
    assert float(loss.detach()) == pytest.approx(float(expected_loss.detach()), abs=ATOL, rel=ATOL)
    for key in ("loss", "target_var", "pred_var", "ema_decay"):
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), abs=ATOL, rel=ATOL), key
    assert float(stats["ema_decay"]) == pytest.approx(1000 * (0.99 - 0.09 * 0.7))

    teacher, expected_teacher = ours.encoder.ema.model.state_dict(), theirs.encoder.ema.model.state_dict()
    assert teacher.keys() == expected_teacher.keys()
    for key in teacher:
        assert max_abs_diff(teacher[key], expected_teacher[key]) < 1e-6, key
    student = dict(ours.encoder.encoder.named_parameters())
    if VARIANTS[variant].get("ema_layers_only", True):  # the positional conv is copied, not averaged
        for key in (k for k in teacher if k.startswith("pos_conv.")):
            assert torch.equal(teacher[key], student[key]), key
    loss.backward()
    expected_loss.backward()
    ours_grads = dict(ours.encoder.named_parameters())
    for name, param in theirs.encoder.named_parameters():
        if param.grad is not None:
            scale = max(1.0, float(param.grad.abs().max()))
            assert max_abs_diff(ours_grads[name].grad, param.grad) < 1e-4 * scale, name


def test_the_mask_follows_torch_seed_when_no_rng_is_given():
    ours, _ = pretrain_pair()
    ours.eval()  # no EMA step: the teacher stays what the first call made
    feats, lengths = torch.randn(2, 40, INPUT_SIZE), torch.tensor([40, 31])
    losses = []
    with torch.no_grad():
        for seed in (7, 7, 8):
            torch.manual_seed(seed)
            losses.append(float(ours(feats, lengths)[0]))
    assert losses[0] == losses[1] != losses[2]


# ---------------------------------------------------------------- build_model


def pretrain_config(**encoder_conf):
    return {"model": "data2vec", "encoder": "data2vec_encoder", "input_size": INPUT_SIZE,
            "encoder_conf": dict(TINY_CONF, **encoder_conf)}


def test_pretraining_config_builds_without_a_vocabulary_and_trains_a_step():
    model = build_model(pretrain_config(**NO_DROPOUT))
    assert isinstance(model, Data2VecPretrainModel)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    feats, lengths = torch.randn(2, 40, INPUT_SIZE), torch.tensor([40, 30])
    for step in range(2):
        model.set_num_updates(step)
        loss, stats, weight = model(feats, lengths)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert torch.isfinite(loss) and int(weight) > 0 and set(stats) == {"loss", "target_var", "pred_var", "ema_decay"}
    assert not any(key.startswith("encoder.ema") for key in model.state_dict())  # the teacher is not saved


def paraformer_with_data2vec_config():
    return {
        "model": "paraformer", "input_size": INPUT_SIZE, "vocab_size": 12,
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False,
                       "predictor_weight": 1.0, "sampling_ratio": 0.4},
        "encoder": "data2vec_encoder", "encoder_conf": copy.deepcopy(TINY_CONF),
        "decoder": "paraformer_decoder_san",
        "decoder_conf": {"attention_heads": 4, "linear_units": 64, "num_blocks": 2, "dropout_rate": 0.1,
                         "positional_dropout_rate": 0.1, "self_attention_dropout_rate": 0.0,
                         "src_attention_dropout_rate": 0.0},
        "predictor": "cif_predictor", "predictor_conf": {"idim": 32, "threshold": 1.0, "l_order": 1, "r_order": 1},
    }


def test_paraformer_with_a_data2vec_encoder_builds_and_trains_a_step():
    model = build_model(paraformer_with_data2vec_config())
    assert isinstance(model.encoder, Data2VecEncoder)
    feats, lengths = torch.randn(2, 48, INPUT_SIZE), torch.tensor([48, 36])
    text, text_lengths = torch.tensor([[3, 4, 5], [6, 7, -1]]), torch.tensor([3, 2])
    loss, stats, _ = model(feats, lengths, text, text_lengths)
    loss.backward()
    assert torch.isfinite(loss) and float(stats["loss_ctc"]) > 0
    assert model.encoder.final_proj.weight.grad is None  # pretraining-only parts stay in the state dict, unused
    encoded, encoded_lengths = model.encode(feats, lengths)
    assert encoded.shape[1] == 12 and encoded_lengths.tolist() == [12, 9]


@pytest.mark.parametrize("config,message", [
    (pretrain_config(mask_lenght=10), "encoder_conf: unknown key 'mask_lenght' for Data2VecEncoder; did you mean "
                                       "'mask_length'?"),
    (pretrain_config(mask_selection="uniform"), "mask_selection='uniform' is not supported"),
    (pretrain_config(extractor_mode="group_norm"), "extractor_mode must be 'default' or 'layer_norm'"),
    (pretrain_config(average_top_k_layers=4), "average_top_k_layers=4 must be in 1..encoder_layers=3"),
    (dict(pretrain_config(), decoder="paraformer_decoder_san"), "model 'data2vec' has no decoder"),
    (dict(pretrain_config(), encoder="sanm"), "needs encoder: data2vec_encoder"),
])
def test_bad_configs_are_refused_by_name(config, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("?", r"\?")):
        build_model(config)


RELEASED_PRETRAIN_CONF = {  # FunASR's egs/aishell2/data2vec_pretrain/conf/train_pretrain_transformer.yaml
    "extractor_mode": "layer_norm", "encoder_layerdrop": 0.05, "dropout_input": 0.0, "dropout_features": 0.0,
    "feature_grad_mult": 1.0, "encoder_embed_dim": 768, "mask_prob": 0.65, "mask_length": 10, "loss_beta": 0,
    "loss_scale": None, "instance_norm_target_layer": True, "average_top_k_layers": 8, "pos_conv_depth": 5,
    "conv_pos": 95, "ema_decay": 0.999, "ema_end_decay": 0.9999, "ema_anneal_end_step": 30000,
    "ema_transformer_only": True, "ema_layers_only": True, "require_same_masks": True, "mask_dropout": 0,
}


def test_released_pretraining_config_has_funasrs_parameters():
    # normalize: None is a YAML string in FunASR's file (no normalisation layer), spelt as there.
    config = {"model": "data2vec", "encoder": "data2vec_encoder", "input_size": 80, "normalize": "None",
              "encoder_conf": dict(RELEASED_PRETRAIN_CONF)}
    with torch.device("meta"):  # shapes and counts without allocating ours
        ours = build_model(config)
    theirs = FunasrEncoder(input_size=80, **RELEASED_PRETRAIN_CONF)  # its init copies through the CPU
    shapes = {f"encoder.{k}": tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == shapes
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters()) == 90_156_544
    assert shapes["encoder.encoder.pos_conv.4.0.weight"] == (768, 48, 19)  # 5 convs of width 95 // 5
