"""ParaformerSANDecoder against FunASR's ParaformerSANDecoder (numeric oracle, tests only)."""

import pytest
import torch
import yaml

from funasr_lite.models.paraformer.decoder_san import ParaformerSANDecoder

torch.set_num_threads(1)

# decoder_conf of FunASR examples/aishell/paraformer/conf/paraformer_conformer_12e_6d_2048_256.yaml
RECIPE_DECODER_CONF = yaml.safe_load(
    """
    attention_heads: 4
    linear_units: 2048
    num_blocks: 6
    dropout_rate: 0.1
    positional_dropout_rate: 0.1
    self_attention_dropout_rate: 0.0
    src_attention_dropout_rate: 0.0
    """
)

VOCAB = 50
DIM = 64
SMALL = dict(attention_heads=4, linear_units=96, num_blocks=2)


def _funasr_decoder(*args, **kwargs):
    from funasr.models.paraformer.decoder import ParaformerSANDecoder as FunasrSANDecoder

    return FunasrSANDecoder(*args, **kwargs)


def _paired_decoders(**config):
    torch.manual_seed(0)
    reference = _funasr_decoder(VOCAB, DIM, **config).eval()
    ours = ParaformerSANDecoder(VOCAB, DIM, **config).eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    return reference, ours


def _inputs(generator):
    memory = torch.randn(3, 17, DIM, generator=generator)
    memory_lengths = torch.tensor([17, 9, 12])
    acoustic_embeds = torch.randn(3, 7, DIM, generator=generator)
    token_lengths = torch.tensor([7, 5, 2])
    return memory, memory_lengths, acoustic_embeds, token_lengths


@pytest.mark.parametrize(
    "config", [dict(), dict(normalize_before=False, concat_after=True)], ids=["prenorm", "postnorm_concat"]
)
def test_logits_match_funasr_in_eval(config):
    reference, ours = _paired_decoders(**SMALL, **config)
    inputs = _inputs(torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, _ = reference(*inputs)
        actual, lengths = ours(*inputs)
    assert actual.shape == (3, 7, VOCAB)
    torch.testing.assert_close(actual, expected, atol=1e-4, rtol=0)
    # FunASR returns a (B, L) mask sum here; we return the lengths it stands for.
    assert torch.equal(lengths, inputs[3])


def test_embed_matches_funasr_for_the_sampler():
    """The glancing sampler calls decoder.embed(token_ids): embedding * sqrt(D) + PE."""
    reference, ours = _paired_decoders(**SMALL)
    token_ids = torch.randint(0, VOCAB, (3, 7), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference.embed(token_ids)
        actual = ours.embed(token_ids)
        # Hand check of position 0 (PE(0) = [0, 1, 0, 1, ...]).
        by_hand = ours.embed[0].weight[token_ids[0, 0]] * DIM**0.5
        by_hand[1::2] += 1.0
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(actual[0, 0], by_hand, atol=1e-5, rtol=0)


def test_self_attention_is_bidirectional_and_ignores_padding():
    _, ours = _paired_decoders(**SMALL)
    memory, memory_lengths, embeds, token_lengths = _inputs(torch.Generator().manual_seed(3))
    with torch.no_grad():
        base, _ = ours(memory, memory_lengths, embeds, token_lengths)
        later_changed = embeds.clone()
        later_changed[0, 6] = torch.randn(DIM, generator=torch.Generator().manual_seed(4))
        after_later_change, _ = ours(memory, memory_lengths, later_changed, token_lengths)
        padding_changed = embeds.clone()
        padding_changed[1, 5:] = 100.0 * torch.randn(2, DIM)  # padded tokens of utterance 1
        padding_changed_memory = memory.clone()
        padding_changed_memory[1, 9:] = 100.0 * torch.randn(8, DIM)  # padded frames of utterance 1
        after_padding_change, _ = ours(padding_changed_memory, memory_lengths, padding_changed, token_lengths)
    # Not causal: the first position sees the last one (random change: LayerNorm would
    # cancel a constant shift).
    assert not torch.allclose(after_later_change[0, 0], base[0, 0], atol=1e-4)
    torch.testing.assert_close(after_padding_change[1, :5], base[1, :5], atol=1e-5, rtol=0)


def test_recipe_config_builds_with_funasr_parameter_names_and_shapes():
    vocab = 4234  # AISHELL-1 token list
    reference = _funasr_decoder(vocab_size=vocab, encoder_output_size=256, **RECIPE_DECODER_CONF)
    ours = ParaformerSANDecoder(vocab_size=vocab, encoder_output_size=256, **RECIPE_DECODER_CONF)
    expected = {name: tuple(t.shape) for name, t in reference.state_dict().items()}
    actual = {name: tuple(t.shape) for name, t in ours.state_dict().items()}
    assert actual == expected
    assert actual["embed.0.weight"] == (vocab, 256)
    ours.load_state_dict(reference.state_dict(), strict=True)
