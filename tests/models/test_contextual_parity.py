"""ContextualParaformer against funasr's own class on the same random weights: the state dict, the
decoder biased by hotwords (clas_scale too), decoding with and without hotwords, the training loss."""


import pytest
import torch

from funasr.models.contextual_paraformer.model import ContextualParaformer as FunasrContextualParaformer

from funasr_lite.models.paraformer.contextual import ContextualParaformer
from test_sanm_parity import build_pair as build_funasr_pair, fire_every_target_token, small_paraformer_config
from test_seaco_parity import random_hotwords


def contextual_config(use_decoder_embedding=False, length_normalized_loss=False, sampling_ratio=0.0):
    config = small_paraformer_config(length_normalized_loss)
    config.update(model="ContextualParaformer", decoder="ContextualParaformerDecoder")
    config["model_conf"].update(inner_dim=64, use_decoder_embedding=use_decoder_embedding,
                                sampling_ratio=sampling_ratio)
    return config


def build_pair(config, seed=0):
    return build_funasr_pair(config, FunasrContextualParaformer, seed)


@pytest.mark.parametrize("use_decoder_embedding", [False, True])
def test_state_dict_is_funasrs(use_decoder_embedding):
    ours, theirs = build_pair(contextual_config(use_decoder_embedding))
    assert isinstance(ours, ContextualParaformer)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}


@pytest.mark.parametrize("hotword_count,clas_scale,use_decoder_embedding", [(5, 1.0, False), (0, 1.0, False),
                                                                            (12, 0.5, True)])
def test_decoding_with_hotwords_equals_funasrs(hotword_count, clas_scale, use_decoder_embedding):
    ours, theirs = build_pair(contextual_config(use_decoder_embedding))
    generator = torch.Generator().manual_seed(2)
    feats, lengths = torch.randn(2, 30, 40, generator=generator), torch.tensor([30, 21])
    words = random_hotwords(hotword_count) if hotword_count else None
    with torch.no_grad():
        encoder_out, encoder_lengths = ours.encode(feats, lengths)
        embeds, token_num, _, _ = ours.calc_predictor(encoder_out, encoder_lengths)
        token_lengths = token_num.round().long()
        context = ours.hotword_context(words) if words else None
        info = ours._contextual_info(2, context)
        logits = ours.decoder(encoder_out, encoder_lengths, embeds, token_lengths, contextual_info=info,
                              clas_scale=clas_scale)[0]
        expected, _ = theirs.cal_decoder_with_predictor(encoder_out, encoder_lengths, embeds, token_lengths,
                                                        hw_list=words, clas_scale=clas_scale)
        if clas_scale == 1.0:
            log_probs = ours.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths, context=context)
            torch.testing.assert_close(log_probs, expected, atol=1e-5, rtol=1e-5)
    for b in range(2):
        n = int(token_lengths[b])
        torch.testing.assert_close(torch.log_softmax(logits[b, :n], -1), expected[b, :n], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("length_normalized_loss", [False, True])
def test_training_loss_is_funasrs(length_normalized_loss):
    ours, theirs = build_pair(contextual_config(length_normalized_loss=length_normalized_loss))
    ours.eval(), theirs.eval()
    fire_every_target_token(theirs.predictor)
    generator = torch.Generator().manual_seed(3)
    speech, speech_lengths = torch.randn(2, 25, 40, generator=generator), torch.tensor([25, 25])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    hotword_pad = torch.tensor([[9, 3, 12], [4, 8, 0], [1, 0, 0]])
    hotword_lengths = torch.tensor([3, 2, 1])
    with torch.no_grad():
        expected_loss, expected_stats, expected_weight = theirs(
            speech, speech_lengths, text, text_lengths, hotword_pad=hotword_pad, hotword_lengths=hotword_lengths)
        loss, stats, weight = ours(speech, speech_lengths, text, text_lengths, hotword_pad=hotword_pad,
                                   hotword_lengths=hotword_lengths)
    for key in ("loss_att", "loss_ctc", "loss_pre", "loss"):
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), rel=1e-4, abs=1e-4), key
    assert int(weight) == int(expected_weight)
    with pytest.raises(ValueError, match="hotword_pad"):
        ours(speech, speech_lengths, text, text_lengths)
