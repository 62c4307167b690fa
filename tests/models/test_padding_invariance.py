"""An utterance gives the same results alone as padded in a batch (eval mode)."""

import pytest
import torch

from funasr_lite.models import build_model
from funasr_lite.models.modules.mask import sequence_mask

LENGTHS = [30, 18, 7]


@pytest.fixture
def model_and_batch(tiny_config):
    model = build_model(tiny_config).eval()
    feats = torch.randn(len(LENGTHS), max(LENGTHS), tiny_config["input_size"])
    lengths = torch.tensor(LENGTHS)
    # Garbage in the padding must not matter.
    feats = feats + 100.0 * (~sequence_mask(lengths, max(LENGTHS)))[..., None]
    return model, feats, lengths


@torch.no_grad()
def test_encoder_predictor_decoder_are_padding_invariant(model_and_batch):
    model, feats, lengths = model_and_batch
    enc, enc_lengths = model.encode(feats, lengths)
    embeds, token_num, alphas, peaks = model.calc_predictor(enc, enc_lengths)
    token_lengths = token_num.round().long()
    log_probs = model.decoder_log_probs(enc, enc_lengths, embeds, token_lengths)
    assert len(set(token_lengths.tolist())) > 1  # the decoder input really is padded
    for index, length in enumerate(LENGTHS):
        single_enc, single_lengths = model.encode(feats[index : index + 1, :length], lengths[index : index + 1])
        torch.testing.assert_close(enc[index, :length], single_enc[0], atol=1e-5, rtol=1e-5)
        single_embeds, single_num, single_alphas, single_peaks = model.calc_predictor(single_enc, single_lengths)
        assert token_num[index].item() == single_num[0].item()
        frames = length + 1  # plus the tail frame
        torch.testing.assert_close(alphas[index, :frames], single_alphas[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(peaks[index, :frames], single_peaks[0], atol=1e-5, rtol=1e-5)
        count = int(token_lengths[index])
        torch.testing.assert_close(embeds[index, :count], single_embeds[0, :count], atol=1e-5, rtol=1e-5)
        single_log_probs = model.decoder_log_probs(single_enc, single_lengths, single_embeds, single_num.round().long())
        torch.testing.assert_close(log_probs[index, :count], single_log_probs[0], atol=1e-5, rtol=1e-5)


def test_greedy_decoding_is_padding_invariant(model_and_batch):
    model, feats, lengths = model_and_batch
    batch_results = model.decode_greedy(feats, lengths)
    for index, length in enumerate(LENGTHS):
        single = model.decode_greedy(feats[index : index + 1, :length], lengths[index : index + 1])[0]
        assert batch_results[index]["token_ids"] == single["token_ids"]
        assert batch_results[index]["token_num"] == single["token_num"]
        assert batch_results[index]["score"] == pytest.approx(single["score"], abs=1e-4)
        torch.testing.assert_close(batch_results[index]["peaks"], single["peaks"], atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_training_loss_is_padding_invariant(tiny_config):
    # Dropout off (eval) but the training path (targets given): an extra padded utterance in the
    # batch changes neither utterance's loss terms.
    model = build_model(tiny_config).eval()
    feats = torch.randn(2, 20, tiny_config["input_size"])
    text = torch.tensor([[3, 4, 5, 6], [7, 8, -1, -1]])
    loss_pair, stats_pair, _ = model(feats, torch.tensor([20, 11]), text, torch.tensor([4, 2]))
    loss_a, _, _ = model(feats[:1], torch.tensor([20]), text[:1], torch.tensor([4]))
    loss_b, _, _ = model(feats[1:2, :11], torch.tensor([11]), text[1:2, :2], torch.tensor([2]))
    # Losses are normalised by the batch size: the pair's loss is the mean of the two.
    assert float(loss_pair) == pytest.approx((float(loss_a) + float(loss_b)) / 2, rel=1e-5)
