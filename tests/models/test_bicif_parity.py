"""BiCifParaformer and CifPredictorV3 against funasr's own classes on the same random weights:
the predictor's both heads, the training losses (loss_pre2 included), greedy text and the
timestamps FunASR's BiCif inference reads off the upsampled head (ts_prediction_lfr6_standard)."""


import pytest
import torch

from funasr.models.bicif_paraformer.cif_predictor import CifPredictorV3 as FunasrCifPredictorV3
from funasr.models.bicif_paraformer.model import BiCifParaformer as FunasrBiCifParaformer
from funasr.utils.timestamp_tools import ts_prediction_lfr6_standard

from funasr_lite.decode.timestamps import FIRE_THRESHOLD, cif_timestamps
from funasr_lite.models import ConfigError, build_model
from funasr_lite.models.modules.mask import sequence_mask
from funasr_lite.models.paraformer.cif import CifPredictorV3, integrate_peaks
from funasr_lite.models.paraformer.model import BiCifParaformer
from funasr_dirs import THRESHOLD_MARGIN  # tests/funasr_dirs.py
from test_sanm_parity import (  # tests/models/test_sanm_parity.py
    DECODER_CONF,
    ENCODER_CONF,
    build_pair as build_funasr_pair,
    small_paraformer_config,
    fire_every_target_token,
    load_funasr_weights,
)

# The released model's predictor_conf (paraformer-large-vad-punc), at width 64.
V3_CONF = dict(idim=64, l_order=1, r_order=1, threshold=1.0, tail_threshold=0.45, smooth_factor2=0.25,
               noise_threshold2=0.01, upsample_times=3, upsample_type="cnn_blstm", use_cif1_cnn=False)
HEADS = [("cnn_blstm", False), ("cnn_blstm", True), ("cnn", False), ("cnn", True)]


def predictor_pair(upsample_type, use_cif1_cnn, seed=0):
    conf = dict(V3_CONF, upsample_type=upsample_type, use_cif1_cnn=use_cif1_cnn)
    torch.manual_seed(seed)
    theirs = FunasrCifPredictorV3(**conf)
    return load_funasr_weights(CifPredictorV3(**conf), theirs)


def fire_frames(peaks):
    return torch.nonzero(peaks >= FIRE_THRESHOLD).flatten().tolist()


@pytest.mark.parametrize("upsample_type,use_cif1_cnn", HEADS)
def test_predictor_v3_matches_funasr_per_utterance(upsample_type, use_cif1_cnn):
    """Ours on a padded batch, funasr's on each utterance alone (its BLSTM reads padding)."""
    ours, theirs = predictor_pair(upsample_type, use_cif1_cnn)
    lengths = torch.tensor([30, 22, 9])
    torch.manual_seed(1)
    hidden = torch.randn(3, 30, 64) * sequence_mask(lengths, 30)[..., None]
    mask = sequence_mask(lengths, 30)
    with torch.no_grad():
        embeds, token_num, alphas, peaks = ours(hidden, mask)
        us_alphas, us_peaks = ours.upsampled_timestamp_signals(hidden, mask, token_num.round())
        alphas2 = ours.upsampled_alphas(hidden, mask)
    for b, length in enumerate(lengths.tolist()):
        single, single_mask = hidden[b : b + 1, :length], torch.ones(1, 1, length)
        with torch.no_grad():
            e_embeds, e_num, e_alphas, e_peaks, e_num2 = theirs(single, None, single_mask)
            _, _, e_us_alphas, e_us_peaks = theirs.get_upsample_timestamp(single, single_mask, e_num.round())
        assert float(token_num[b]) == float(e_num[0])
        n = int(e_num[0])
        torch.testing.assert_close(embeds[b, :n], e_embeds[0, :n], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(alphas[b, : length + 1], e_alphas[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(peaks[b, : length + 1], e_peaks[0], atol=1e-5, rtol=1e-5)
        assert float(alphas2[b].sum()) == pytest.approx(float(e_num2[0]), rel=1e-5)
        torch.testing.assert_close(us_alphas[b, : 3 * length], e_us_alphas[0], atol=1e-5, rtol=1e-5)
        assert not us_alphas[b, 3 * length :].any()
        torch.testing.assert_close(us_peaks[b, : 3 * length], e_us_peaks[0], atol=1e-4, rtol=1e-4)
        assert fire_frames(us_peaks[b]) == fire_frames(e_us_peaks[0])
        assert len(fire_frames(us_peaks[b])) == int(e_num[0].round())  # one fire per CIF token


def test_integrate_peaks_is_funasrs_sequential_accumulator():
    from funasr.models.bicif_paraformer.cif_predictor import cif_wo_hidden

    torch.manual_seed(3)
    alphas = torch.rand(4, 200) * torch.tensor([0.3, 0.9, 1.7, 0.05])[:, None]  # excess weight queues
    expected = cif_wo_hidden(alphas.clone(), 1.0 - 1e-4)
    torch.testing.assert_close(integrate_peaks(alphas, 1.0 - 1e-4), expected, atol=2e-5, rtol=1e-5)


def test_predictor_v3_config_errors_are_named():
    with pytest.raises(ValueError, match="cnn_attn"):
        CifPredictorV3(**dict(V3_CONF, upsample_type="cnn_attn"))
    with pytest.raises(ValueError, match="upsample_times"):
        CifPredictorV3(**dict(V3_CONF, upsample_times=0))
    # tail_mask is accepted and inert, as in funasr (the tail goes at the first padded frame).
    assert CifPredictorV3(**dict(V3_CONF, tail_mask=False)).tail_mask is True


def bicif_config(length_normalized_loss=False, upsample_type="cnn_blstm"):
    """test_sanm_parity's Paraformer config as a BiCifParaformer with the released predictor_conf."""
    config = small_paraformer_config(length_normalized_loss)
    config.update(model="BiCifParaformer", predictor="CifPredictorV3",
                  predictor_conf=dict(V3_CONF, upsample_type=upsample_type))
    return config


def build_pair(config, seed=0):
    return build_funasr_pair(config, FunasrBiCifParaformer, seed)


def test_state_dict_is_funasrs_and_the_head_adds_its_parameters():
    ours, theirs = build_pair(bicif_config())
    assert isinstance(ours, BiCifParaformer)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    extra = sum(p.numel() for name, p in ours.named_parameters()
                if name.split(".")[1] in ("upsample_cnn", "blstm", "cif_output2"))
    d = 64  # ConvTranspose (d*d*3 + d) + BLSTM 2*(4d*d*2 + 8d) + Linear(2d, 1)
    assert extra == (d * d * 3 + d) + 2 * (4 * d * d * 2 + 8 * d) + (2 * d + 1)


def test_bicif_needs_predictor_v3():
    config = bicif_config()
    config["predictor"], config["predictor_conf"] = "CifPredictorV2", dict(idim=64, l_order=1, r_order=1)
    with pytest.raises((ValueError, ConfigError), match="CifPredictorV3"):
        build_model(config)


@pytest.mark.parametrize("length_normalized_loss", [False, True])
def test_bicif_training_losses_match_funasr(length_normalized_loss):
    ours, theirs = build_pair(bicif_config(length_normalized_loss))
    fire_every_target_token(theirs.predictor)
    # Equal speech lengths: funasr's predictor conv and BLSTM read padded encoder frames.
    torch.manual_seed(2)
    speech, speech_lengths = torch.randn(2, 25, 40), torch.tensor([25, 25])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    expected_loss, expected_stats, expected_weight = theirs(speech, speech_lengths, text, text_lengths)
    loss, stats, weight = ours(speech, speech_lengths, text, text_lengths)
    assert float(stats["loss_pre2"]) > 0.1  # the second head's count is far from the targets
    for key in ("loss_att", "loss_ctc", "loss_pre", "loss_pre2", "loss"):
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), rel=1e-4, abs=1e-4), key
    assert float(loss.detach()) == pytest.approx(float(expected_loss.detach()), rel=1e-4)
    assert int(weight) == int(expected_weight)


def test_loss_pre2_trains_the_upsampled_head_only_through_its_count():
    ours, _ = build_pair(bicif_config())
    torch.manual_seed(4)
    speech, speech_lengths = torch.randn(2, 25, 40), torch.tensor([25, 18])
    text, text_lengths = torch.tensor([[5, 9, 3], [4, 8, -1]]), torch.tensor([3, 2])
    ours.train()
    _, stats, _ = ours(speech, speech_lengths, text, text_lengths)
    stats["loss_pre2"].requires_grad_(False)
    loss_pre2 = ours.auxiliary_losses(*ours.encode(speech, speech_lengths)[:1],
                                      sequence_mask(torch.tensor([25, 18]), 25), text_lengths + 1)["loss_pre2"][1]
    loss_pre2.backward()
    assert ours.predictor.cif_output2.weight.grad.abs().sum() > 0
    assert ours.decoder.output_layer.weight.grad is None  # no path from the count loss to the decoder


@pytest.mark.parametrize("upsample_type", ["cnn_blstm", "cnn"])
def test_greedy_text_and_timestamps_match_funasr(upsample_type):
    """Tokens, scores and [[ms, ms]] of our batched greedy decode against funasr's BiCif inference
    stitched per utterance (its fbank-input branch is commented out): encode, CIF, decoder, the
    upsampled timestamp pass, ts_prediction_lfr6_standard on the cut us_alphas/us_peaks."""
    ours, theirs = build_pair(bicif_config(upsample_type=upsample_type), seed=5)
    lengths = torch.tensor([40, 27, 12])
    torch.manual_seed(6)
    feats = torch.randn(3, 40, 40)
    results = ours.decode_greedy(feats, lengths)
    compared_stamps = 0
    for index, length in enumerate(lengths.tolist()):
        single = feats[index : index + 1, :length]
        with torch.no_grad():
            encoder_out, encoder_lengths = theirs.encode(single, torch.tensor([length]))
            embeds, token_num, _, _ = theirs.calc_predictor(encoder_out, encoder_lengths)
            token_num = token_num.round().long()
            log_probs, _ = theirs.cal_decoder_with_predictor(encoder_out, encoder_lengths, embeds, token_num)
            _, _, us_alphas, us_peaks = theirs.calc_predictor_timestamp(encoder_out, encoder_lengths, token_num)
        ids = log_probs[0, : int(token_num)].argmax(-1).tolist()
        expected_ids = [t for t in ids if t not in (0, 1, 2)]
        result = results[index]
        assert result["token_ids"] == expected_ids
        assert result["score"] == pytest.approx(float(log_probs[0, : int(token_num)].max(-1)[0].sum()),
                                                rel=1e-4, abs=1e-4)
        tokens = [f"t{t}" for t in expected_ids]
        cut = int(encoder_lengths[0]) * 3
        _, expected_stamps = ts_prediction_lfr6_standard(us_alphas[0][:cut].clone(), us_peaks[0][:cut].clone(),
                                                         list(tokens), vad_offset=0)
        assert len(result["alphas"]) == cut
        # off the fire threshold, so the exact comparison holds on any CPU
        assert float((result["peaks"].double() - FIRE_THRESHOLD).abs().min()) > THRESHOLD_MARGIN
        stamps = cif_timestamps(result["alphas"], result["peaks"], tokens, frame_ms=20.0)
        assert stamps == expected_stamps, index
        compared_stamps += len(stamps)
    assert compared_stamps >= 10  # not a vacuous comparison
