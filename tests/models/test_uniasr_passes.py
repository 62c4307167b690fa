"""UniASR's model and passes against funasr's UniASR on the same weights (random, seeded): the same
state-dict keys and shapes (strict load), and for each decoding mode the encoder output, CIF
embeddings and counts, and SCAMA mask of funasr's encode / encode2 / calc_predictor_mask[2]."""

import copy

import pytest
import torch

from funasr.models.uniasr.model import UniASR as FunasrUniASR

from funasr_lite.models.uniasr.model import MODES, build_uniasr

INPUT, VOCAB = 56, 12
ENCODER_CONF = dict(output_size=16, attention_heads=2, linear_units=32, num_blocks=2, dropout_rate=0.0,
                    positional_dropout_rate=0.0, attention_dropout_rate=0.0, input_layer="pe", kernel_size=5,
                    sanm_shfit=0, chunk_size=[8, 16], stride=[4, 16], pad_left=[2, 0],
                    encoder_att_look_back_factor=[1, 1], decoder_att_look_back_factor=[1, 1])
DECODER_CONF = dict(attention_heads=2, linear_units=32, num_blocks=3, att_layer_num=2, dropout_rate=0.0,
                    positional_dropout_rate=0.0, self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0,
                    kernel_size=5, concat_embeds=True)
CONFIG = {
    "model": "UniASR",
    "model_conf": {"ctc_weight": 0.0, "ctc2_weight": 0.0, "predictor_weight": 1.0, "predictor2_weight": 1.0,
                   "predictor_bias": 0, "predictor2_bias": 0, "decoder_attention_chunk_type": "chunk",
                   "decoder_attention_chunk_type2": "chunk", "loss_weight_model1": 0.5, "lsm_weight": 0.1,
                   "length_normalized_loss": True},
    "encoder": "SANMEncoderChunkOpt", "encoder_conf": ENCODER_CONF,
    "encoder2": "SANMEncoderChunkOpt", "encoder2_conf": dict(ENCODER_CONF, output_size=24),
    "decoder": "FsmnDecoderSCAMAOpt", "decoder_conf": dict(DECODER_CONF, attention_dim=16),
    "decoder2": "FsmnDecoderSCAMAOpt", "decoder2_conf": dict(DECODER_CONF, attention_dim=24),
    "predictor": "CifPredictorV2", "predictor_conf": {"idim": 16, "threshold": 1.0, "l_order": 1, "r_order": 1},
    "predictor2": "CifPredictorV2", "predictor2_conf": {"idim": 24, "threshold": 1.0, "l_order": 1, "r_order": 1},
    "stride_conv": "stride_conv1d", "stride_conv_conf": {"kernel_size": 2, "stride": 2, "pad": [0, 1]},
}


@pytest.fixture(scope="module")
def pair():
    config = copy.deepcopy(CONFIG)
    kwargs = {k: v for k, v in config.items() if k not in ("model", "model_conf")}
    torch.manual_seed(0)
    theirs = FunasrUniASR(input_size=INPUT, vocab_size=VOCAB, **kwargs, **config["model_conf"]).eval()
    with torch.no_grad():  # fire often
        theirs.predictor.cif_output.bias.fill_(-0.5)
        theirs.predictor2.cif_output.bias.fill_(-0.5)
    ours = build_uniasr(copy.deepcopy(CONFIG), INPUT, VOCAB).eval()
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in theirs.state_dict().items()}
    ours.load_state_dict(theirs.state_dict(), strict=True)
    return ours, theirs


@pytest.mark.parametrize("mode", list(MODES))
def test_each_modes_pass_equals_funasrs(pair, mode):
    ours, theirs = pair
    feats = torch.randn(1, 37, INPUT, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([37])
    which, index = MODES[mode]
    with torch.no_grad():
        raw, enc, enc_lens = theirs.encode(feats.clone(), lengths, ind=index)
        if which == 2:
            enc, enc_lens = theirs.encode2(enc, enc_lens, raw, lengths, ind=index)
            outs = theirs.calc_predictor_mask2(enc, enc_lens)
        else:
            outs = theirs.calc_predictor_mask(enc, enc_lens)
        got = ours.passes(feats, lengths, mode)
    embeds, token_num, _, _, scama = outs
    assert got.encoder_lens.tolist() == enc_lens.tolist()
    torch.testing.assert_close(got.encoder_out, enc, atol=1e-5, rtol=1e-5)
    count = float(token_num.sum())
    assert min(abs(count - round(count)), abs(count - int(count) - 0.5)) > 2e-4  # off the rounding thresholds
    torch.testing.assert_close(got.token_num, token_num, atol=1e-5, rtol=1e-5)
    assert got.embeds.shape == embeds.shape and embeds.size(1) >= 2
    torch.testing.assert_close(got.embeds, embeds, atol=1e-5, rtol=1e-5)
    assert torch.equal(got.scama_mask, scama)


def test_configs_funasrs_uniasr_cannot_run_are_refused():
    config = copy.deepcopy(CONFIG)
    config["predictor_conf"]["tail_threshold"] = 0.45
    with pytest.raises(ValueError, match="tail"):
        build_uniasr(config, INPUT, VOCAB)
    config = copy.deepcopy(CONFIG)
    del config["stride_conv_conf"]
    with pytest.raises(Exception, match="stride_conv_conf"):
        build_uniasr(config, INPUT, VOCAB)


# ---------------------------------------------------------------- the beam search


def funasr_search(theirs, mode, feats, lengths, beam_size, relax=5):
    from funasr.models.uniasr.beam_search import BeamSearchScama

    which, index = MODES[mode]
    with torch.no_grad():
        raw, enc, enc_lens = theirs.encode(feats.clone(), lengths, ind=index)
        if which == 2:
            enc, enc_lens = theirs.encode2(enc, enc_lens, raw, lengths, ind=index)
        outs = (theirs.calc_predictor_mask2 if which == 2 else theirs.calc_predictor_mask)(enc, enc_lens)
        search = BeamSearchScama(scorers={"decoder": theirs.decoder2 if which == 2 else theirs.decoder},
                                 weights={"decoder": 1.0}, beam_size=beam_size, vocab_size=VOCAB, sos=1, eos=2,
                                 token_list=[str(i) for i in range(VOCAB)])
        maxlen = int(outs[1].sum().item() + relax)
        return search(x=enc[0], scama_mask=outs[4], pre_acoustic_embeds=outs[0], maxlenratio=0.0, maxlen=maxlen)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("beam_size", [1, 3, 5])
@pytest.mark.parametrize("eos_bias", [-3.0, 3.0], ids=["long", "early_end"])
def test_beam_search_equals_funasrs(pair, mode, beam_size, eos_bias):
    ours, theirs = pair
    saved = [theirs.decoder.output_layer.bias.clone(), theirs.decoder2.output_layer.bias.clone()]
    try:
        with torch.no_grad():  # the same change on both sides: they share nothing but values
            for model in (ours, theirs):
                model.decoder.output_layer.bias[2] += eos_bias
                model.decoder2.output_layer.bias[2] += eos_bias
        feats = torch.randn(1, 37, INPUT, generator=torch.Generator().manual_seed(1))
        lengths = torch.tensor([37])
        expected = funasr_search(theirs, mode, feats, lengths, beam_size)
        got = ours.decode(feats, lengths, mode, beam_size)
        assert [h.yseq for h in got] == [h.yseq.tolist() for h in expected] and got
        for a, b in zip(got, expected):
            assert float(a.score) == pytest.approx(float(b.score), rel=1e-5, abs=1e-5)
        if eos_bias < 0:
            assert len(got[0].yseq) >= 5  # the forced-</s> path at maxlen
    finally:
        with torch.no_grad():
            for model in (ours, theirs):
                model.decoder.output_layer.bias.copy_(saved[0])
                model.decoder2.output_layer.bias.copy_(saved[1])


def test_a_pass_that_fires_nothing_gives_no_hypothesis():
    """FunASR raises there (its SCAMA mask has no row); we return nothing."""
    model = build_uniasr(copy.deepcopy(CONFIG), INPUT, VOCAB).eval()
    with torch.no_grad():
        model.predictor.cif_output.bias.fill_(-30.0)
        model.predictor2.cif_output.bias.fill_(-30.0)
    feats = torch.randn(1, 20, INPUT, generator=torch.Generator().manual_seed(3))
    for mode in MODES:
        assert model.decode(feats, torch.tensor([20]), mode) == []


# ---------------------------------------------------------------- training

NUDGE = 1e-5  # the last target fire lands just past the threshold on both sides (test_sanm_parity)


def nudge(predictor, name):
    forward = predictor.forward

    def nudged(*args, **kwargs):
        if kwargs.get(name) is not None:
            kwargs[name] = kwargs[name].float() * (1 + NUDGE)
        return forward(*args, **kwargs)

    predictor.forward = nudged


@pytest.mark.parametrize("model_conf", [{}, {"loss_weight_model1": 0.3, "length_normalized_loss": False},
                                        {"predictor2_weight": 0.0}])
def test_training_losses_equal_funasrs(model_conf):
    config = copy.deepcopy(CONFIG)
    config["model_conf"].update(model_conf, ignore_id=-1)
    kwargs = {k: v for k, v in config.items() if k not in ("model", "model_conf")}
    torch.manual_seed(0)
    theirs = FunasrUniASR(input_size=INPUT, vocab_size=VOCAB, **kwargs, **config["model_conf"]).eval()
    ours = build_uniasr(copy.deepcopy(config), INPUT, VOCAB).eval()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    for predictor in (ours.predictor, ours.predictor2):
        nudge(predictor, "target_lengths")
    for predictor in (theirs.predictor, theirs.predictor2):
        nudge(predictor, "target_label_length")
    generator = torch.Generator().manual_seed(2)
    speech, speech_lengths = torch.randn(2, 37, INPUT, generator=generator), torch.tensor([37, 37])
    text = torch.tensor([[5, 9, 3, 11, 7, 6], [4, 4, 8, 10, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    with torch.no_grad():
        expected_loss, expected, expected_weight = theirs(speech.clone(), speech_lengths, text, text_lengths)
        loss, stats, weight = ours(speech, speech_lengths, text, text_lengths)
    for key in ("loss_att", "acc", "loss_pre", "loss_att2", "acc2", "loss_pre2", "loss1", "loss2", "loss"):
        assert float(stats[key]) == pytest.approx(float(expected[key]), rel=1e-4, abs=1e-5), key
    assert int(weight) == int(expected_weight)


def test_a_training_step_learns():
    from funasr_lite.models import build_model

    config = dict(copy.deepcopy(CONFIG), input_size=INPUT, vocab_size=VOCAB)
    config["model_conf"]["ignore_id"] = -1
    torch.manual_seed(0)
    model = build_model(config).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(3)
    speech, speech_lengths = torch.randn(2, 37, INPUT, generator=generator), torch.tensor([37, 30])
    text = torch.tensor([[5, 9, 3, 11, 7, 6], [4, 4, 8, 10, -1, -1]])
    losses = []
    for _ in range(25):
        loss, _, _ = model(speech, speech_lengths, text, torch.tensor([6, 4]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    assert model.stride_conv.conv.weight.grad is not None and float(model.stride_conv.conv.weight.grad.abs().sum()) > 0
