"""Numeric parity with funasr (the oracle) on random weights: funasr's state dict loads into ours
with strict=True and both compute the same numbers."""

import copy

import pytest
import torch

import funasr.models.paraformer.cif_predictor as funasr_cif
import funasr.models.paraformer.decoder as funasr_decoder
import funasr.models.sanm.encoder as funasr_encoder
from funasr.losses.label_smoothing_loss import LabelSmoothingLoss as FunasrLabelSmoothingLoss
from funasr.models.paraformer.model import Paraformer as FunasrParaformer

from funasr_lite.models import build_model
from funasr_lite.models.encoders.sanm import SANMEncoder
from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.cif import CifPredictor, CifPredictorV2, cif_integrate
from funasr_lite.models.paraformer.decoder_sanm import ParaformerSANMDecoder

ENCODER_CONF = dict(
    output_size=64, attention_heads=4, linear_units=128, num_blocks=3, dropout_rate=0.1,
    positional_dropout_rate=0.1, attention_dropout_rate=0.1, input_layer="pe", kernel_size=11,
)
DECODER_CONF = dict(
    attention_heads=4, linear_units=128, num_blocks=3, att_layer_num=2, dropout_rate=0.1,
    self_attention_dropout_rate=0.1, src_attention_dropout_rate=0.1, kernel_size=11,
)


def load_funasr_weights(ours, theirs):
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours.eval(), theirs.eval()


def assert_valid_close(ours, theirs, lengths, atol):
    for b, length in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours[b, :length], theirs[b, :length], atol=atol, rtol=atol)


@pytest.mark.parametrize("input_size,sanm_shfit", [(40, 0), (64, 2)])
def test_sanm_encoder_matches_funasr(input_size, sanm_shfit):
    conf = dict(ENCODER_CONF, sanm_shfit=sanm_shfit)
    theirs = funasr_encoder.SANMEncoder(input_size=input_size, **conf)
    ours, theirs = load_funasr_weights(SANMEncoder(input_size=input_size, **conf), theirs)
    lengths = torch.tensor([23, 17, 9])
    feats = torch.randn(3, 23, input_size)
    expected, expected_lengths, _ = theirs(feats, lengths)
    encoded, encoded_lengths = ours(feats, lengths)
    assert encoded_lengths.tolist() == expected_lengths.tolist()
    assert_valid_close(encoded, expected, lengths, atol=1e-4)


@pytest.mark.parametrize("sanm_shfit", [0, 1, None])
def test_sanm_decoder_matches_funasr(sanm_shfit):
    conf = dict(DECODER_CONF, sanm_shfit=sanm_shfit)
    theirs = funasr_decoder.ParaformerSANMDecoder(vocab_size=50, encoder_output_size=64, **conf)
    ours, theirs = load_funasr_weights(ParaformerSANMDecoder(vocab_size=50, encoder_output_size=64, **conf), theirs)
    memory, memory_lengths = torch.randn(3, 20, 64), torch.tensor([20, 14, 6])
    embeds, token_lengths = torch.randn(3, 7, 64), torch.tensor([7, 5, 2])
    expected, _ = theirs(memory, memory_lengths, embeds, token_lengths)
    logits, _ = ours(memory, memory_lengths, embeds, token_lengths)
    assert_valid_close(logits, expected, token_lengths, atol=1e-4)


PREDICTORS = [
    (CifPredictor, funasr_cif.CifPredictor, {}),
    (CifPredictorV2, funasr_cif.CifPredictorV2, {"tail_threshold": 0.45}),
    (CifPredictorV2, funasr_cif.CifPredictorV2, {"tail_threshold": 0.0}),
]


def predictor_pair(our_cls, their_cls, extra):
    conf = dict(idim=64, l_order=1, r_order=1, threshold=1.0, **extra)
    return load_funasr_weights(our_cls(**conf), their_cls(**conf))


def zero_padded_hidden(lengths, num_frames=30, dim=64):
    # funasr does not zero padded frames before the predictor conv; ours does. Zero them here so
    # both see the same input.
    return torch.randn(len(lengths), num_frames, dim) * sequence_mask(lengths, num_frames)[..., None]


@pytest.mark.parametrize("our_cls,their_cls,extra", PREDICTORS)
def test_cif_predictor_inference_matches_funasr(our_cls, their_cls, extra):
    ours, theirs = predictor_pair(our_cls, their_cls, extra)
    lengths = torch.tensor([30, 22, 9])
    hidden = zero_padded_hidden(lengths)
    mask = sequence_mask(lengths, 30)
    expected_embeds, expected_num, expected_alphas, expected_peaks = theirs(hidden, None, mask[:, None, :])
    embeds, token_num, alphas, peaks = ours(hidden, mask)
    assert token_num.tolist() == pytest.approx(expected_num.tolist(), abs=1e-4)
    assert embeds.shape == expected_embeds.shape
    torch.testing.assert_close(alphas, expected_alphas, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(peaks, expected_peaks, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(embeds, expected_embeds, atol=1e-4, rtol=1e-4)


# In training the alphas are rescaled to sum to the target length, so the running sum ends EXACTLY
# on an integer: the last token's fire sits on the threshold by construction, whatever the inputs.
# funasr integrates in float32 and fires only if the last running value is >= 1; a few ulps short
# (which CPU rounding decides: on an AVX-512 EPYC every time for the seeded inputs) it drops the
# last token and pads a zero row, while ours always emits target_length tokens. Intermediate
# crossings near an integer only move ~1e-7 of weight between neighbouring tokens, far inside atol.
# So the comparison is threshold-aware: tokens funasr fired must match; a last token funasr did not
# fire is accepted only if its running value fell short by under ROUNDING_MARGIN (float32 drift over
# a few dozen frames is ~1e-6; a real miscount leaves a whole frame's alpha, ~0.1 or more) and is
# then checked against CIF's conservation of weight: all tokens together carry sum_t alpha_t h_t.
ROUNDING_MARGIN = 1e-4


def assert_training_embeds_match(embeds, expected, fires, alphas, hidden, target_lengths, atol=1e-4):
    """embeds (B, N, D) ours; expected (B, N', D), fires (B, T), alphas (B, T) funasr's (scaled)."""
    embeds, expected, fires, alphas = (x.detach() for x in (embeds, expected, fires, alphas))
    assert embeds.shape[0] == expected.shape[0] and embeds.shape[2] == expected.shape[2]
    assert embeds.shape[1] == int(target_lengths.max())
    for b, num_tokens in enumerate(target_lengths.tolist()):
        fired = int((fires[b] >= 1.0).sum())
        torch.testing.assert_close(embeds[b, :fired], expected[b, :fired], atol=atol, rtol=atol)
        assert not embeds[b, num_tokens:].any(), f"utterance {b}: rows past its tokens are not zero"
        if fired == num_tokens:
            continue
        assert fired == num_tokens - 1, f"utterance {b}: funasr fired {fired} of {num_tokens} tokens"
        last_frame = int(alphas[b].nonzero().max())
        shortfall = 1.0 - float(fires[b, last_frame])
        assert 0.0 < shortfall < ROUNDING_MARGIN, f"utterance {b}: last token short by {shortfall}, not rounding"
        all_weight = (alphas[b, :, None].double() * hidden[b].double()).sum(0)
        last_token = all_weight - expected[b, :fired].double().sum(0)
        torch.testing.assert_close(embeds[b, fired].double(), last_token, atol=atol, rtol=atol)


@pytest.mark.parametrize("our_cls,their_cls,extra", PREDICTORS[:2])
def test_cif_predictor_training_matches_funasr(our_cls, their_cls, extra):
    torch.manual_seed(0)  # the inputs are fixed; the comparison above makes them safe on any CPU
    ours, theirs = predictor_pair(our_cls, their_cls, extra)
    lengths = torch.tensor([30, 22, 9])
    target_lengths = torch.tensor([12, 9, 4])
    targets = torch.randint(3, 50, (3, 12)).masked_fill(~sequence_mask(target_lengths, 12), -1)
    hidden = zero_padded_hidden(lengths)
    mask = sequence_mask(lengths, 30)
    expected_embeds, expected_num, expected_alphas, expected_fires = theirs(
        hidden, targets, mask[:, None, :], ignore_id=-1)
    embeds, token_num, alphas, _ = ours(hidden, mask, target_lengths=target_lengths)
    torch.testing.assert_close(token_num, expected_num, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(alphas, expected_alphas, atol=1e-5, rtol=1e-5)
    assert embeds.shape == expected_embeds.shape == (3, 12, 64)
    assert_training_embeds_match(embeds, expected_embeds, expected_fires, expected_alphas, hidden, target_lengths)


def test_last_fire_on_the_threshold_flips_with_one_ulp_and_the_comparison_copes():
    # alphas of 0.5 sum to exactly 4 tokens: the last fire is ON the threshold, as in training
    torch.manual_seed(0)
    hidden = torch.randn(1, 8, 6)
    on_threshold = torch.full((1, 8), 0.5)
    target_lengths = torch.tensor([4])
    ours, _, _ = cif_integrate(hidden, on_threshold, num_tokens=target_lengths)
    for cif in (funasr_cif.cif, funasr_cif.cif_v1):
        expected, fires = cif(hidden, on_threshold, 1.0)
        assert int((fires >= 1.0).sum()) == 4
        assert_training_embeds_match(ours, expected, fires, on_threshold, hidden, target_lengths)
        # 1e-6 less on the last frame (a rounding another CPU may make): funasr loses the last token
        short = on_threshold.clone()
        short[0, -1] -= 1e-6
        expected_short, fires_short = cif(hidden, short, 1.0)
        assert int((fires_short >= 1.0).sum()) == 3
        assert not expected_short[0, 3].any()
        with pytest.raises(AssertionError):  # the old comparison, all rows at atol 1e-4, fails
            torch.testing.assert_close(ours, expected_short, atol=1e-4, rtol=1e-4)
        assert_training_embeds_match(ours, expected_short, fires_short, short, hidden, target_lengths)
        # a last token that is really wrong is still caught, and so is a token lost to more than rounding
        wrong = ours.clone()
        wrong[0, 3] += 0.01
        with pytest.raises(AssertionError):
            assert_training_embeds_match(wrong, expected_short, fires_short, short, hidden, target_lengths)
        far_short = on_threshold.clone()
        far_short[0, -1] -= 0.1
        expected_far, fires_far = cif(hidden, far_short, 1.0)
        with pytest.raises(AssertionError, match="not rounding"):
            assert_training_embeds_match(ours, expected_far, fires_far, far_short, hidden, target_lengths)


@pytest.mark.parametrize("smoothing,normalize_length", [(0.0, False), (0.1, False), (0.1, True)])
def test_label_smoothing_matches_funasr(smoothing, normalize_length):
    logits = torch.randn(3, 5, 17)
    targets = torch.randint(0, 17, (3, 5))
    targets[1, 3:] = -1
    targets[2, 1:] = -1
    expected = FunasrLabelSmoothingLoss(17, -1, smoothing, normalize_length)(logits, targets)
    loss = LabelSmoothingLoss(17, -1, smoothing, normalize_length)(logits, targets)
    torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def small_paraformer_config(length_normalized_loss):
    return {
        "model": "Paraformer",
        "model_conf": dict(ctc_weight=0.3, lsm_weight=0.1, length_normalized_loss=length_normalized_loss,
                           predictor_weight=1.0, predictor_bias=1, sampling_ratio=0.0),
        "input_size": 40,
        "vocab_size": 30,
        "encoder": "SANMEncoder",
        "encoder_conf": dict(ENCODER_CONF, num_blocks=2),
        "decoder": "ParaformerSANMDecoder",
        "decoder_conf": dict(DECODER_CONF),
        "predictor": "CifPredictorV2",
        "predictor_conf": dict(idim=64, l_order=1, r_order=1, threshold=1.0, tail_threshold=0.45),
    }


# Relative; at 4-30 tokens this puts funasr's last running value 4e-5 to 3e-4 past the threshold,
# hundreds of float32 ulps, far beyond the rounding of 25 frames, and moves the losses ~1e-5.
LAST_FIRE_NUDGE = 1e-5


def fire_every_target_token(predictor):
    """Make funasr's training predictor fire every target token on any CPU (see ROUNDING_MARGIN:
    the last fire is on the threshold by construction). Its alphas are scaled to the target length
    times 1 + LAST_FIRE_NUDGE, so the last fire lands just past the threshold, not on it; every call
    checks that all target tokens fired."""
    forward = predictor.forward

    def nudged_forward(hidden, target_label=None, mask=None, ignore_id=-1, **kwargs):
        target_lengths = (target_label != ignore_id).sum(-1)
        outputs = forward(hidden, target_label, mask, ignore_id=ignore_id,
                          target_label_length=target_lengths.float() * (1 + LAST_FIRE_NUDGE), **kwargs)
        assert (outputs[3] >= 1.0).sum(-1).tolist() == target_lengths.tolist()
        return outputs

    predictor.forward = nudged_forward


def build_pair(config, funasr_cls=FunasrParaformer, seed=None, adjust=None):
    """(ours, theirs) from one config: funasr's ``funasr_cls`` built as AutoModel builds it (seeded
    when ``seed`` is given, ``adjust(theirs)`` applied), its weights loaded into ours; both in eval mode."""
    their_kwargs = {key: copy.deepcopy(value) for key, value in config.items() if key not in ("model", "model_conf")}
    their_kwargs.update(copy.deepcopy(config["model_conf"]))
    if seed is not None:
        torch.manual_seed(seed)
    theirs = funasr_cls(**their_kwargs)
    if adjust is not None:
        with torch.no_grad():
            adjust(theirs)
    return load_funasr_weights(build_model(copy.deepcopy(config)), theirs)


@pytest.mark.parametrize("length_normalized_loss", [False, True])
def test_paraformer_training_losses_match_funasr(length_normalized_loss):
    ours, theirs = build_pair(small_paraformer_config(length_normalized_loss))
    fire_every_target_token(theirs.predictor)
    # Equal speech lengths: funasr's predictor conv reads unmasked padded encoder frames.
    speech, speech_lengths = torch.randn(2, 25, 40), torch.tensor([25, 25])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    expected_loss, expected_stats, expected_weight = theirs(speech, speech_lengths, text, text_lengths)
    loss, stats, weight = ours(speech, speech_lengths, text, text_lengths)
    for key in ("loss_att", "loss_ctc", "loss_pre", "loss"):
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), rel=1e-4, abs=1e-4), key
    assert float(stats["acc"]) == pytest.approx(float(expected_stats["acc"]), abs=1e-6)
    assert float(loss.detach()) == pytest.approx(float(expected_loss.detach()), rel=1e-4)
    assert int(weight) == int(expected_weight)


def test_greedy_decoding_matches_funasr():
    ours, theirs = build_pair(small_paraformer_config(False))
    lengths = torch.tensor([31, 20, 12])
    feats = torch.randn(3, 31, 40)
    results = ours.decode_greedy(feats, lengths)
    for index, length in enumerate(lengths.tolist()):
        single = feats[index : index + 1, :length]
        expected, _ = theirs.inference(
            single, torch.tensor([[length]]), key=["utt"], tokenizer=None, device="cpu", data_type="fbank"
        )
        assert results[index]["token_ids"] == expected[0]["token_int"]
        with torch.no_grad():
            encoder_out, encoder_lengths = theirs.encode(single, torch.tensor([length]))
            embeds, token_num, _, _ = theirs.calc_predictor(encoder_out, encoder_lengths)
            token_num = token_num.round().long()
            log_probs, _ = theirs.cal_decoder_with_predictor(encoder_out, encoder_lengths, embeds, token_num)
        assert results[index]["token_num"] == int(token_num)
        expected_score = float(log_probs[0, : int(token_num)].max(-1)[0].sum())
        assert results[index]["score"] == pytest.approx(expected_score, rel=1e-4, abs=1e-4)


def test_shared_embedding_training_losses_match_funasr_with_the_sampler_on(monkeypatch):
    """share_embedding (Paraformer-tiny's: the decoder's output layer doubles as the character
    embedding, no decoder.embed weights) with the glancing sampler on. The two samplers draw their
    positions differently (funasr: randperm per utterance; ours: one batched draw, docs/decisions.md),
    so both are made to glance at the first floor((L - correct) * ratio) positions."""
    import funasr_lite.models.paraformer.sampler as our_sampler

    monkeypatch.setattr(torch, "randperm", lambda n, **kwargs: torch.arange(int(n)))

    def first_positions(first_pass_tokens, targets, sampling_ratio, ignore_id=-1, generator=None):
        valid = targets != ignore_id
        num_correct = ((first_pass_tokens == targets) & valid).sum(1)
        num_glance = ((valid.sum(1) - num_correct).to(torch.float32) * sampling_ratio).long()
        return (torch.arange(targets.shape[1])[None] < num_glance[:, None]) & valid

    monkeypatch.setattr(our_sampler, "choose_glance_positions", first_positions)
    config = small_paraformer_config(False)
    config["model_conf"].update(share_embedding=True, sampling_ratio=0.7)
    for conf in (config["encoder_conf"], config["decoder_conf"]):  # no dropout: the sampler's effect alone
        conf.update({key: 0.0 for key in conf if "dropout" in key})
    ours, theirs = build_pair(config, seed=3)
    assert not any(key.startswith("decoder.embed") for key in theirs.state_dict())
    fire_every_target_token(theirs.predictor)
    ours.train(), theirs.train()
    speech, speech_lengths = torch.randn(2, 25, 40), torch.tensor([25, 25])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    _, expected_stats, _ = theirs(speech, speech_lengths, text, text_lengths)
    _, stats, _ = ours(speech, speech_lengths, text, text_lengths)
    for key in ("loss_att", "loss_ctc", "loss_pre", "loss"):
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), rel=1e-4, abs=1e-4), key
    # the glanced positions took the targets' embeddings (rows of the output layer):
    # a separate embedding table would have moved loss_att
    assert not any(key.startswith("decoder.embed") for key in ours.state_dict())
