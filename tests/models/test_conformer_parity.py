"""ConformerEncoder against FunASR's ConformerEncoder (numeric oracle, tests only)."""

import logging

import pytest
import torch
import yaml

from funasr_lite.models.encoders.conformer import ConformerEncoder
from funasr_lite.models.modules.attention import MultiHeadedAttention

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _quiet_funasr_warnings():
    """FunASR warns about its legacy attention; silence it for this module only (no leak to later tests)."""
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    yield
    root.setLevel(old)

# encoder_conf of FunASR examples/aishell/paraformer/conf/paraformer_conformer_12e_6d_2048_256.yaml
RECIPE_ENCODER_CONF = yaml.safe_load(
    """
    output_size: 256
    attention_heads: 4
    linear_units: 2048
    num_blocks: 12
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    attention_dropout_rate: 0.0
    input_layer: conv2d
    normalize_before: true
    pos_enc_layer_type: rel_pos
    selfattention_layer_type: rel_selfattn
    activation_type: swish
    macaron_style: true
    use_cnn_module: true
    cnn_module_kernel: 15
    """
)

SMALL = dict(output_size=64, attention_heads=4, linear_units=96, num_blocks=2, cnn_module_kernel=7)
INPUT_DIM = 20

VARIANTS = {
    # The recipe's keywords; without rel_pos_type FunASR picks the legacy relative encoding.
    "recipe_legacy_rel": dict(
        pos_enc_layer_type="rel_pos", selfattention_layer_type="rel_selfattn", macaron_style=True
    ),
    "latest_rel_macaron_cnn": dict(
        rel_pos_type="latest",
        pos_enc_layer_type="rel_pos",
        selfattention_layer_type="rel_selfattn",
        macaron_style=True,
        use_cnn_module=True,
    ),
    "latest_rel_zero_triu": dict(rel_pos_type="latest", zero_triu=True, macaron_style=True),
    "abs_pos_selfattn": dict(pos_enc_layer_type="abs_pos", selfattention_layer_type="selfattn"),
    "conv2d6_postnorm_concat": dict(input_layer="conv2d6", normalize_before=False, concat_after=True),
    "conv2d8_no_cnn_relu": dict(input_layer="conv2d8", use_cnn_module=False, activation_type="relu"),
    "linear_scaled_abs": dict(
        input_layer="linear", pos_enc_layer_type="scaled_abs_pos", selfattention_layer_type="selfattn"
    ),
}


def _funasr_encoder(**kwargs):
    from funasr.models.conformer.encoder import ConformerEncoder as FunasrConformerEncoder

    return FunasrConformerEncoder(**kwargs)


def _with_random_batchnorm_statistics(state_dict, generator):
    """Fresh BatchNorm statistics are 0/1, which would hide a wrong normalisation."""
    for name, tensor in state_dict.items():
        if name.endswith("running_mean"):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        elif name.endswith("running_var"):
            tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
        elif name.endswith(".alpha"):
            tensor.fill_(0.7)
    return state_dict


def _padded_batch(generator, lengths=(57, 41, 23)):
    features = torch.randn(len(lengths), max(lengths), INPUT_DIM, generator=generator)
    lengths = torch.tensor(lengths)
    features = features.masked_fill(~(torch.arange(features.size(1)) < lengths[:, None])[..., None], 0.0)
    return features, lengths


def _paired_encoders(config, generator, training=False):
    torch.manual_seed(0)
    reference = _funasr_encoder(input_size=INPUT_DIM, **config)
    state = _with_random_batchnorm_statistics(reference.state_dict(), generator)
    ours = ConformerEncoder(INPUT_DIM, **config)
    ours.load_state_dict(state, strict=True)
    reference.train(training)
    ours.train(training)
    return reference, ours


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_outputs_match_funasr_in_eval(variant):
    generator = torch.Generator().manual_seed(1)
    reference, ours = _paired_encoders({**SMALL, **VARIANTS[variant]}, generator)
    features, lengths = _padded_batch(generator)
    with torch.no_grad():
        expected, expected_lengths, _ = reference(features, lengths)
        actual, actual_lengths = ours(features, lengths)
    assert actual.shape == expected.shape
    assert torch.equal(actual_lengths, expected_lengths)
    # Every frame, padding included: FunASR's padded frames feed its valid ones.
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)


def test_training_mode_matches_funasr_without_dropout():
    """Training mode differs from eval through BatchNorm's batch statistics."""
    config = {
        **SMALL,
        **VARIANTS["recipe_legacy_rel"],
        "dropout_rate": 0.0,
        "positional_dropout_rate": 0.0,
        "attention_dropout_rate": 0.0,
    }
    generator = torch.Generator().manual_seed(2)
    reference, ours = _paired_encoders(config, generator, training=True)
    features, lengths = _padded_batch(generator)
    expected, _, _ = reference(features, lengths)
    actual, _ = ours(features, lengths)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)


def test_recipe_config_builds_with_funasr_parameter_names_and_shapes():
    reference = _funasr_encoder(input_size=80, **RECIPE_ENCODER_CONF)
    ours = ConformerEncoder(input_size=80, **RECIPE_ENCODER_CONF)
    expected = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    actual = {name: tuple(t.shape) for name, t in ours.state_dict().items()}
    assert actual == expected
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert ours.output_size() == 256
    # The recipe's keywords select the legacy relative attention, as in FunASR.
    assert type(ours.encoders[0].self_attn).__name__ == "LegacyRelPositionMultiHeadedAttention"


@pytest.mark.parametrize("position", ["latest_rel_macaron_cnn", "abs_pos_selfattn"])
def test_padding_invariant_mode_encodes_an_utterance_alone_as_in_a_batch(position):
    torch.manual_seed(0)
    encoder = ConformerEncoder(INPUT_DIM, **SMALL, **VARIANTS[position], padding_invariant=True).eval()
    generator = torch.Generator().manual_seed(3)
    features, lengths = _padded_batch(generator, lengths=(61, 30))
    with torch.no_grad():
        batch_out, batch_lengths = encoder(features, lengths)
        alone_out, alone_lengths = encoder(features[1:, :30], lengths[1:])
    # conv arithmetic for 30 frames: (30-3)//2+1 = 14, (14-3)//2+1 = 6
    assert alone_lengths.tolist() == [6]
    assert batch_lengths[1].item() == 6
    torch.testing.assert_close(batch_out[1, :6], alone_out[0], atol=1e-5, rtol=0)


def test_funasr_mode_counts_frames_that_reach_into_padding():
    """Documented FunASR quirk: a padded utterance gets ceil(L/2)-style lengths (8 for
    30 frames) instead of the 6 frames the convolutions make from it alone."""
    torch.manual_seed(0)
    encoder = ConformerEncoder(INPUT_DIM, **SMALL).eval()
    generator = torch.Generator().manual_seed(3)
    features, lengths = _padded_batch(generator, lengths=(61, 30))
    with torch.no_grad():
        _, batch_lengths = encoder(features, lengths)
        _, alone_lengths = encoder(features[1:, :30], lengths[1:])
    assert batch_lengths.tolist() == [14, 8]
    assert alone_lengths.tolist() == [6]


def test_too_short_input_is_rejected():
    encoder = ConformerEncoder(INPUT_DIM, **SMALL)
    with pytest.raises(ValueError, match="too few"):
        encoder(torch.zeros(1, 6, INPUT_DIM), torch.tensor([6]))


def test_attention_gives_zero_context_for_fully_masked_query_rows():
    attention = MultiHeadedAttention(2, 8, 0.0).eval()
    x = torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out = attention(x, x, x, mask)
    assert torch.isfinite(out).all()
    # No key is visible: the context is zero, so only linear_out's bias remains.
    torch.testing.assert_close(out[1], attention.linear_out.bias.expand(3, 8))
