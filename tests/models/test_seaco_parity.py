"""SeacoParaformer against funasr's own class on the same random weights: the state dict, the bias
encoder, the seaco decoder's attention filter (ASF), the biased log-probs with and without the
filter and with a blend weight, the training loss, and no-hotword decoding equal to BiCif's."""


import pytest
import torch

from funasr.models.seaco_paraformer.model import SeacoParaformer as FunasrSeacoParaformer

from funasr_lite.models import ConfigError, build_model
from funasr_lite.models.paraformer.seaco import ASF_LAYER, SeacoParaformer
from test_bicif_parity import bicif_config  # tests/models/test_bicif_parity.py
from test_sanm_parity import build_pair as build_funasr_pair

NO_BIAS = 7
VOCAB = 30


def seaco_config(train_decoder=False, length_normalized_loss=False, top_level=True, bid=False):
    config = bicif_config(length_normalized_loss)
    config["model"] = "SeacoParaformer"
    seaco = {"inner_dim": 64, "NO_BIAS": NO_BIAS, "seaco_lsm_weight": 0.1, "train_decoder": train_decoder,
             "bias_encoder_bid": bid}
    decoder = {"seaco_decoder": "ParaformerSANMDecoder",
               "seaco_decoder_conf": dict(attention_heads=4, linear_units=32, num_blocks=4, kernel_size=11,
                                          sanm_shfit=0, use_output_layer=False, wo_input_layer=True,
                                          dropout_rate=0.1, self_attention_dropout_rate=0.1,
                                          src_attention_dropout_rate=0.1)}
    config["model_conf"].update(seaco)
    (config if top_level else config["model_conf"]).update(decoder)  # FunASR reads either place
    return config


def build_pair(config, seed=0):
    def fire_half_the_time(theirs):  # the bias head says NO_BIAS about half the time: both branches used
        theirs.hotword_output_layer.bias[NO_BIAS] += 1.5

    return build_funasr_pair(config, FunasrSeacoParaformer, seed, fire_half_the_time)


def random_hotwords(count, seed=1):
    generator = torch.Generator().manual_seed(seed)
    words = [torch.randint(3, VOCAB, (int(torch.randint(1, 5, (1,), generator=generator)),),
                           generator=generator).tolist() for _ in range(count)]
    return words + [[1]]  # <s> last, as FunASR's hotword list


@pytest.mark.parametrize("top_level,bid", [(True, False), (False, True)])
def test_state_dict_is_funasrs(top_level, bid):
    ours, theirs = build_pair(seaco_config(top_level=top_level, bid=bid))
    assert isinstance(ours, SeacoParaformer)
    assert {k: tuple(v.shape) for k, v in ours.state_dict().items()} == \
        {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert len(ours.seaco_decoder.decoders) == 6 and ours.seaco_decoder.decoders2 is None  # att 6 > blocks 4
    assert ours.seaco_decoder.output_layer is None and ours.seaco_decoder.embed is None


def test_config_errors_are_named():
    config = seaco_config()
    config["model_conf"]["NO_BIAS"] = 8377
    with pytest.raises((ValueError, ConfigError), match="NO_BIAS=8377"):
        build_model(config)
    config = seaco_config()
    del config["seaco_decoder"]
    with pytest.raises(ConfigError, match="seaco_decoder"):
        build_model(config)
    config = seaco_config()
    config["model_conf"]["inner_dims"] = 64
    with pytest.raises(ConfigError, match="inner_dims"):
        build_model(config)


def encoded(model, seed=2, lengths=(30, 19)):
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lengths), max(lengths), 40, generator=generator)
    lengths = torch.tensor(lengths)
    with torch.no_grad():
        encoder_out, encoder_lengths = model.encode(feats, lengths)
        embeds, token_num, _, _ = model.calc_predictor(encoder_out, encoder_lengths)
    return encoder_out, encoder_lengths, embeds, token_num.round().long()


def test_hotword_embeddings_and_the_filter_scores_are_funasrs():
    ours, theirs = build_pair(seaco_config(bid=True))
    words = random_hotwords(9)
    lengths = torch.tensor([len(w) for w in words])
    pad = torch.zeros(len(words), int(lengths.max()), dtype=torch.long)
    for row, word in enumerate(words):
        pad[row, : len(word)] = torch.tensor(word)
    with torch.no_grad():
        expected = theirs._hotword_representation(pad, lengths.int())
        embeddings = ours.hotword_embeddings(pad, lengths)
    torch.testing.assert_close(embeddings, expected, atol=1e-6, rtol=1e-6)
    encoder_out, encoder_lengths, embeds, token_lengths = encoded(theirs, lengths=(30,))
    with torch.no_grad():
        hidden = theirs.decoder(encoder_out, encoder_lengths, embeds, token_lengths, return_hidden=True)[0]
        memory = expected.unsqueeze(0)
        memory_lengths = torch.tensor([len(words)])
        scores = theirs.seaco_decoder.forward_asf6(memory, memory_lengths.int(), hidden, token_lengths)
        ours_scores = ours.seaco_decoder.source_attention(memory, memory_lengths, hidden, token_lengths, ASF_LAYER)
    torch.testing.assert_close(ours_scores, scores, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("count,nfilter,weight", [(4, 50, 1.0), (60, 50, 1.0), (60, 10, 0.5), (4, 50, 0.5)])
def test_biased_log_probs_equal_funasrs_per_utterance(count, nfilter, weight):
    """Ours on a padded batch of two, funasr's on each utterance alone (its filter reads the
    batch's first utterance): the same merged log-probs and the same argmax."""
    ours, theirs = build_pair(seaco_config())
    words = random_hotwords(count)
    encoder_out, encoder_lengths, embeds, token_lengths = encoded(ours)
    context = ours.hotword_context(words, nfilter=nfilter, seaco_weight=weight)
    with torch.no_grad():
        merged = ours.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths, context=context)
        plain = ours.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths)
    switched = 0
    for b in range(2):
        n, t = int(token_lengths[b]), int(encoder_lengths[b])
        with torch.no_grad():
            expected = theirs._seaco_decode_with_ASF(encoder_out[b : b + 1, :t], encoder_lengths[b : b + 1],
                                                     embeds[b : b + 1, :n], token_lengths[b : b + 1], words,
                                                     nfilter=nfilter, seaco_weight=weight)
        torch.testing.assert_close(merged[b, :n], expected[0], atol=1e-5, rtol=1e-5)
        assert merged[b, :n].argmax(-1).tolist() == expected[0].argmax(-1).tolist()
        switched += int((merged[b, :n].argmax(-1) != plain[b, :n].argmax(-1)).sum())
    assert switched >= 1  # the hotwords changed some tokens: not a comparison of two unbiased decodes


@pytest.mark.parametrize("count,nfilter", [(60, 10), (4, 50)])
def test_the_list_projected_once_decodes_as_projected_per_utterance(count, nfilter):
    """hotword_context projects the list through each seaco layer's source attention once
    (HotwordContext.projected); the filter and both passes take its rows. Without it (projected
    None) every pass projects its own rows: the same log-probs."""
    import dataclasses

    ours, _ = build_pair(seaco_config())
    encoder_out, encoder_lengths, embeds, token_lengths = encoded(ours)
    context = ours.hotword_context(random_hotwords(count), nfilter=nfilter)
    assert len(context.projected) == len(ours.seaco_decoder.decoders)
    assert context.projected[0].shape == (count + 1, 2 * ours.inner_dim)
    with torch.no_grad():
        once = ours.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths, context=context)
        each = ours.decoder_log_probs(encoder_out, encoder_lengths, embeds, token_lengths,
                                      context=dataclasses.replace(context, projected=None))
    for b in range(2):
        n = int(token_lengths[b])
        torch.testing.assert_close(once[b, :n], each[b, :n], atol=1e-5, rtol=1e-5)


def test_without_hotwords_the_decode_is_bicifs():
    ours, theirs = build_pair(seaco_config())
    encoder_out, encoder_lengths, embeds, token_lengths = encoded(ours)
    with torch.no_grad():
        expected = theirs._seaco_decode_with_ASF(encoder_out[:1], encoder_lengths[:1], embeds[:1],
                                                 token_lengths[:1], None)
        plain = ours.decoder_log_probs(encoder_out[:1], encoder_lengths[:1], embeds[:1], token_lengths[:1])
    torch.testing.assert_close(plain, expected, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("train_decoder,length_normalized_loss", [(False, False), (True, True)])
def test_training_loss_is_funasrs(train_decoder, length_normalized_loss):
    ours, theirs = build_pair(seaco_config(train_decoder, length_normalized_loss))
    ours.eval(), theirs.eval()  # dropout off: the same numbers
    generator = torch.Generator().manual_seed(3)
    speech, speech_lengths = torch.randn(2, 25, 40, generator=generator), torch.tensor([25, 25])
    text = torch.tensor([[5, 9, 3, 12, 7, 20], [4, 4, 8, 29, -1, -1]])
    text_lengths = torch.tensor([6, 4])
    hotword_pad = torch.tensor([[9, 3, 12], [4, 8, 0], [1, 0, 0]])  # spans of the two texts, then <s>
    hotword_lengths = torch.tensor([3, 2, 1])
    labels = torch.tensor([[NO_BIAS, 9, 3, 12, NO_BIAS, NO_BIAS], [NO_BIAS, 4, 8, NO_BIAS, -1, -1]])
    batch = dict(hotword_pad=hotword_pad, hotword_lengths=hotword_lengths, seaco_label_pad=labels)
    with torch.no_grad():
        expected_loss, expected_stats, expected_weight = theirs(speech, speech_lengths, text, text_lengths, **batch)
        loss, stats, weight = ours(speech, speech_lengths, text, text_lengths, **batch)
    keys = ("loss_seaco", "loss") + (("loss_att",) if train_decoder else ())
    for key in keys:
        assert float(stats[key]) == pytest.approx(float(expected_stats[key]), rel=1e-5, abs=1e-5), key
    assert int(weight) == int(expected_weight)
    with pytest.raises(ValueError, match="hotword_pad"):
        ours(speech, speech_lengths, text, text_lengths)


def test_bias_head_accuracies_count_hotword_and_no_bias_positions_apart():
    """seaco_accuracies (issue #22): a head that says NO_BIAS everywhere scores 0 on hotword positions
    and 1 on the others; a perfect one scores 1 on both; no hotword position -> NaN (skipped)."""
    from funasr_lite.models.paraformer.seaco import seaco_accuracies

    labels = torch.tensor([[NO_BIAS, 9, 3, NO_BIAS], [NO_BIAS, 4, -1, -1]])
    vocab = 32

    def logits_for(targets):
        return torch.nn.functional.one_hot(targets.clamp(min=0), vocab).float()

    always_no_bias = seaco_accuracies(logits_for(torch.full_like(labels, NO_BIAS)), labels, NO_BIAS)
    assert float(always_no_bias["acc_hotword"]) == 0.0 and float(always_no_bias["acc_no_bias"]) == 1.0
    perfect = seaco_accuracies(logits_for(labels), labels, NO_BIAS)
    assert float(perfect["acc_hotword"]) == 1.0 and float(perfect["acc_no_bias"]) == 1.0
    half = labels.clone()
    half[0, 1] = 7  # one of the three hotword positions wrong
    assert float(seaco_accuracies(logits_for(half), labels, NO_BIAS)["acc_hotword"]) == pytest.approx(2 / 3)
    none = torch.tensor([[NO_BIAS, NO_BIAS]])
    assert torch.isnan(seaco_accuracies(logits_for(none), none, NO_BIAS)["acc_hotword"])


@pytest.mark.parametrize("length_normalized_loss", [False, True])
def test_no_bias_weight_scales_the_no_bias_positions(length_normalized_loss):
    """seaco_no_bias_weight (ours, issue #22): w on every NO_BIAS-labelled position, 1 on the rest;
    with length normalisation a weighted mean. w = 1 is FunASR's loss (test above)."""
    from funasr_lite.models.losses.label_smoothing import LabelSmoothingLoss

    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 4, VOCAB, generator=generator)
    labels = torch.tensor([[NO_BIAS, 9, 3, NO_BIAS], [NO_BIAS, 4, -1, -1]])
    criterion = LabelSmoothingLoss(VOCAB, -1, 0.1, length_normalized_loss)
    per_position = torch.stack([torch.stack([
        criterion(logits[b:b + 1, t:t + 1], labels[b:b + 1, t:t + 1]) for t in range(4)]) for b in range(2)])
    if length_normalized_loss:  # each term was divided by its single valid position; padded ones are nan/0
        per_position = torch.nan_to_num(per_position)
    weight = 0.25
    weights = torch.where(labels == NO_BIAS, weight, 1.0)
    valid = labels != -1
    total = (per_position * weights * valid).sum()
    expected = total / (weights * valid).sum() if length_normalized_loss else total / 2
    assert float(criterion(logits, labels, weights)) == pytest.approx(float(expected), rel=1e-5)
    assert float(criterion(logits, labels, torch.ones(2, 4))) == pytest.approx(float(criterion(logits, labels)))

    config = seaco_config(length_normalized_loss=length_normalized_loss)
    config["model_conf"]["seaco_no_bias_weight"] = weight
    model = build_model(config).eval()
    seen = []
    model.criterion_seaco.register_forward_pre_hook(lambda module, args: seen.append(args[2]))
    speech = torch.randn(2, 25, 40, generator=generator)
    text = torch.tensor([[5, 9, 3, 12], [4, 4, -1, -1]])
    batch = dict(hotword_pad=torch.tensor([[9, 3], [1, 0]]), hotword_lengths=torch.tensor([2, 1]),
                 seaco_label_pad=labels)
    with torch.no_grad():
        model(speech, torch.tensor([25, 25]), text, torch.tensor([4, 2]), **batch)
    torch.testing.assert_close(seen[0][valid], weights[valid])
    config["model_conf"]["seaco_no_bias_weight"] = 0.0
    with pytest.raises(ValueError, match="seaco_no_bias_weight"):
        build_model(config)


def test_error_spans_cover_a_token_the_decoder_gets_wrong():
    """seaco_error_spans (ours, issue #22): a redrawn span (2-8 tokens) covers a position where the
    decoder's teacher-forced argmax is wrong, its labels are its tokens, the batch list holds it;
    an utterance the decoder gets all right keeps the data loader's span."""
    import random

    from funasr_lite.data.hotword_sampling import hotword_batch

    config = seaco_config()
    config["model_conf"]["seaco_error_spans"] = 1.0
    model = build_model(config).eval()
    vocab = model.vocab_size
    text = torch.tensor([[5, 9, 3, 12, 15, 20, 8, 6, 4, 11], [4, 4, 8, 29, -1, -1, -1, -1, -1, -1]])  # no NO_BIAS (7)
    lengths = torch.tensor([10, 4])
    # hidden states whose output-layer argmax we set: utterance 0 wrong at 6 only, utterance 1 right
    decoded = text.clamp(min=3).clone()
    decoded[0, 6] = 13
    weight = model.decoder.output_layer.weight
    with torch.no_grad():
        model.decoder.output_layer.weight.copy_(torch.eye(vocab, weight.size(1)))
        model.decoder.output_layer.bias.zero_()
    hidden = torch.nn.functional.one_hot(decoded, weight.size(1)).float() * 10
    loader = hotword_batch(text, lengths, [[-1], [1, 2]], model.sos, NO_BIAS)
    for seed in range(20):
        pad, hw_lengths, labels = model._error_spans(hidden, text, lengths, loader["seaco_label_pad"],
                                                     random.Random(seed))
        span = (labels[0] != NO_BIAS).nonzero().flatten().tolist()
        assert 2 <= len(span) <= 8 and 6 in span and span == list(range(span[0], span[-1] + 1))
        assert labels[0, span].tolist() == text[0, span].tolist()
        assert labels[1].tolist() == loader["seaco_label_pad"][1].tolist()  # all right: kept
        words = [pad[i, :n].tolist() for i, n in enumerate(hw_lengths.tolist())]
        assert words == [text[0, span].tolist(), [4, 8], [1]]
    config["model_conf"]["seaco_error_spans"] = 1.5
    with pytest.raises(ValueError, match="seaco_error_spans"):
        build_model(config)
