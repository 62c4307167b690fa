"""ParaformerStreaming training against funasr's ParaformerStreaming on the same weights: the SCAMA
encoder forward for each chunk configuration, and the training losses (CE, MAE, CTC) computed in
the chunk domain with the cross-attention SCAMA mask; the chunk configuration drawn per step from
the same random stream as FunASR's."""

import copy

import numpy as np
import pytest
import torch

from funasr.models.paraformer_streaming.model import ParaformerStreaming as FunasrParaformerStreaming
from funasr.models.scama.chunk_utilis import overlap_chunk

from test_sanm_parity import DECODER_CONF, ENCODER_CONF, build_pair  # tests/models/test_sanm_parity.py

NUDGE = 1e-5  # the last target fire lands just past the threshold on both sides (see test_sanm_parity)


def streaming_config(ctc_weight=0.0, sampling_ratio=0.0, length_normalized_loss=True):
    return {
        "model": "ParaformerStreaming",
        "model_conf": {"ctc_weight": ctc_weight, "lsm_weight": 0.1, "length_normalized_loss": length_normalized_loss,
                       "predictor_weight": 1.0, "predictor_bias": 1, "sampling_ratio": sampling_ratio},
        "input_size": 40, "vocab_size": 30,
        "encoder": "SANMEncoderChunkOpt",
        "encoder_conf": dict(ENCODER_CONF, num_blocks=2, input_layer="pe_online", chunk_size=[12, 15],
                             stride=[8, 10], pad_left=[0, 0], encoder_att_look_back_factor=[4, 4],
                             decoder_att_look_back_factor=[1, 1]),
        "decoder": "ParaformerSANMDecoder", "decoder_conf": dict(DECODER_CONF),
        "predictor": "CifPredictorV2",
        "predictor_conf": dict(idim=64, l_order=1, r_order=1, threshold=1.0, tail_threshold=0.45),
        **({"ctc_conf": {"dropout_rate": 0.0}} if ctc_weight else {}),
    }


def nudge_targets(predictor, ours: bool):
    forward = predictor.forward

    def nudged(*args, **kwargs):
        name = "target_lengths" if ours else "target_label_length"
        if kwargs.get(name) is not None:
            kwargs[name] = kwargs[name].float() * (1 + NUDGE)
        return forward(*args, **kwargs)

    predictor.forward = nudged


@pytest.mark.parametrize("index", [0, 1])
def test_scama_encoder_equals_funasrs(index):
    ours, theirs = build_pair(streaming_config(), FunasrParaformerStreaming, seed=0)
    lengths = torch.tensor([41, 23, 9])
    feats = torch.randn(3, 41, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, expected_lengths, _ = theirs.encoder(feats.clone(), lengths, ind=index)
        got, got_lengths, plan = ours.encoder.forward_scama(feats, lengths, index)
    assert got_lengths.tolist() == expected_lengths.tolist()
    for b, length in enumerate(got_lengths.tolist()):
        torch.testing.assert_close(got[b, :length], expected[b, :length], atol=1e-4, rtol=1e-4)
    assert plan.config.chunk_size == (12, 15)[index]


@pytest.mark.parametrize("ctc_weight,length_normalized", [(0.0, True), (0.3, False)])
def test_training_losses_equal_funasrs(ctc_weight, length_normalized):
    ours, theirs = build_pair(streaming_config(ctc_weight, length_normalized_loss=length_normalized),
                              FunasrParaformerStreaming, seed=0)
    nudge_targets(ours.predictor, ours=True)
    nudge_targets(theirs.predictor, ours=False)
    generator = torch.Generator().manual_seed(2)
    speech, speech_lengths = torch.randn(2, 37, 40, generator=generator), torch.tensor([37, 37])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    with torch.no_grad():
        expected_loss, expected_stats, expected_weight = theirs(speech.clone(), speech_lengths, text, text_lengths)
        loss, stats, weight = ours(speech, speech_lengths, text, text_lengths)
    keys = ("loss_att", "loss_pre", "loss") + (("loss_ctc",) if ctc_weight else ())
    for key in keys:
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), rel=1e-4, abs=1e-4), key
    assert float(stats["acc"]) == pytest.approx(float(expected_stats["acc"]), abs=1e-6)
    assert int(weight) == int(expected_weight)


def test_the_chunk_configuration_is_drawn_as_funasr_draws_it():
    ours, _ = build_pair(streaming_config(), FunasrParaformerStreaming, seed=0)
    chunker = overlap_chunk(chunk_size=(12, 15), stride=(8, 10), pad_left=(0, 0),
                            encoder_att_look_back_factor=(4, 4), shfit_fsmn=5, decoder_att_look_back_factor=(1, 1))
    draws = []
    for seed in range(20):
        torch.manual_seed(seed)
        theirs = chunker.random_choice(True)
        torch.manual_seed(seed)
        draws.append((ours.encoder.choose_config(True), theirs))
    assert all(a == b for a, b in draws) and {a for a, _ in draws} == {0, 1}
    assert ours.encoder.choose_config(False) == 0


def test_a_training_step_with_the_sampler_learns():
    torch.manual_seed(0)
    from funasr_lite.models import build_model

    model = build_model(copy.deepcopy(streaming_config(ctc_weight=0.3, sampling_ratio=0.75))).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    generator = torch.Generator().manual_seed(3)
    speech, speech_lengths = torch.randn(2, 37, 40, generator=generator), torch.tensor([37, 30])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    losses = []
    for _ in range(30):
        loss, stats, _ = model(speech, speech_lengths, text, text_lengths)
        optimizer.zero_grad()
        loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()
        losses.append(float(loss.detach()))
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
