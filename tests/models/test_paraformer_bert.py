"""ParaformerBert (FunASR 0.x's class; funasr 1.x has none, so the oracle is its loss formula written
out here, and for decoding funasr's Paraformer on the same weights: ParaformerBert decodes as
Paraformer does)."""

import copy

import pytest
import torch

from funasr_lite.models import build_model
from funasr_lite.models.paraformer.bert import ParaformerBert


def bert_config(**model_conf):
    return {
        "model": "ParaformerBert",
        "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False, "predictor_weight": 1.0,
                       "sampling_ratio": 0.0, "embeds_id": 1, "embed_dims": 12, "embeds_loss_weight": 2.0,
                       **model_conf},
        "input_size": 20, "vocab_size": 15,
        "encoder": "SANMEncoder",
        "encoder_conf": {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 2,
                         "kernel_size": 3, "dropout_rate": 0.0, "positional_dropout_rate": 0.0},
        "decoder": "ParaformerSANDecoder",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 3, "dropout_rate": 0.0,
                         "positional_dropout_rate": 0.0},
        "predictor": "CifPredictor",
        "predictor_conf": {"threshold": 1.0, "l_order": 1, "r_order": 1, "dropout": 0.0},
    }


def funasr_embed_loss(pro_nn, states, embed, lengths, length_normalized):
    """FunASR 0.x ParaformerBert._calc_embed_loss, written out (its order of operations)."""
    projected = pro_nn(states)
    mask = (torch.arange(projected.size(1))[None] < lengths[:, None])[:, :, None].float()
    projected = projected * mask
    embed = embed * mask
    cos_loss = 1.0 - torch.nn.CosineSimilarity(dim=-1, eps=1e-6)(projected, embed)
    cos_loss = cos_loss * mask.squeeze(2)
    total = mask.sum() if length_normalized else mask.size(0)
    return cos_loss.sum() / total


@pytest.mark.parametrize("length_normalized", [False, True])
def test_the_distillation_loss_is_funasrs_on_the_layer_it_names(length_normalized):
    torch.manual_seed(0)
    model = build_model(bert_config(length_normalized_loss=length_normalized)).eval()
    assert isinstance(model, ParaformerBert) and model.pro_nn.weight.shape == (12, 16)
    speech, speech_lengths = torch.randn(2, 30, 20), torch.tensor([30, 22])
    text, text_lengths = torch.tensor([[3, 5, 7, 9], [4, 6, -1, -1]]), torch.tensor([4, 2])
    embed = torch.randn(2, 4, 12)
    embed[1, 2:] = 0.0
    loss, stats, _ = model(speech, speech_lengths, text, text_lengths, embed=embed, embed_lengths=text_lengths)
    # by hand: the decoder's layers up to embeds_id (1) on the CIF embeddings of the target length
    with torch.no_grad():
        encoder_out, encoder_lens = model.encode(speech, speech_lengths)
        mask = torch.arange(encoder_out.size(1))[None] < encoder_lens[:, None]
        acoustic = model.predictor(encoder_out, mask, target_lengths=text_lengths)[0]
        memory_mask = mask
        tgt_mask = torch.arange(acoustic.size(1))[None] < text_lengths[:, None]
        states = acoustic
        for layer in model.decoder.decoders[:2]:
            states = layer(states, tgt_mask, encoder_out, memory_mask)
        expected = funasr_embed_loss(model.pro_nn, states, embed, text_lengths, length_normalized)
    assert float(stats["cos_loss"]) == pytest.approx(float(expected), rel=1e-5)
    plain = {key: value for key, value in stats.items() if key != "cos_loss"}
    without, without_stats, _ = model(speech, speech_lengths, text, text_lengths)
    assert float(without_stats["cos_loss"]) == 0.0
    assert float(loss.detach()) == pytest.approx(float(without.detach()) + 2.0 * float(expected), rel=1e-5)
    assert float(plain["loss_att"]) == pytest.approx(float(without_stats["loss_att"]), rel=1e-6)


def test_the_loss_trains_pro_nn_and_the_decoder_below_the_layer_only():
    torch.manual_seed(1)
    model = build_model(bert_config(ctc_weight=0.0, predictor_weight=0.0)).train()
    speech, speech_lengths = torch.randn(2, 30, 20), torch.tensor([30, 30])
    text, text_lengths = torch.tensor([[3, 5, 7], [4, 6, 8]]), torch.tensor([3, 3])
    embed = torch.randn(2, 3, 12)
    with_embed, _, _ = model(speech, speech_lengths, text, text_lengths, embed=embed, embed_lengths=text_lengths)
    plain, _, _ = model(speech, speech_lengths, text, text_lengths)
    (with_embed - plain).backward()  # the distillation term alone
    assert model.pro_nn.weight.grad.abs().sum() > 0
    assert model.decoder.decoders[0].feed_forward.w_1.weight.grad.abs().sum() > 0
    assert model.decoder.decoders[2].feed_forward.w_1.weight.grad is None or \
        float(model.decoder.decoders[2].feed_forward.w_1.weight.grad.abs().sum()) == 0.0


def test_bad_configs_and_mismatched_embeddings_are_refused():
    with pytest.raises(ValueError, match="embeds_id=3"):
        build_model(bert_config(embeds_id=3))
    with pytest.raises(ValueError, match="predictor_bias 0"):
        build_model(bert_config(predictor_bias=1))
    model = build_model(bert_config()).eval()
    speech, speech_lengths = torch.randn(1, 30, 20), torch.tensor([30])
    text, text_lengths = torch.tensor([[3, 5, 7]]), torch.tensor([3])
    with pytest.raises(ValueError, match="embedding lengths"):
        model(speech, speech_lengths, text, text_lengths, embed=torch.randn(1, 2, 12), embed_lengths=torch.tensor([2]))


def test_decoding_ignores_pro_nn():
    torch.manual_seed(2)
    bert = build_model(bert_config()).eval()
    config = copy.deepcopy(bert_config())
    config["model"] = "Paraformer"
    for key in ("embeds_id", "embed_dims", "embeds_loss_weight"):
        config["model_conf"].pop(key)
    plain = build_model(config).eval()
    state = {k: v for k, v in bert.state_dict().items() if not k.startswith("pro_nn.")}
    plain.load_state_dict(state, strict=True)
    speech, speech_lengths = torch.randn(2, 40, 20), torch.tensor([40, 31])
    with torch.no_grad():
        ours = bert.decode_greedy(speech, speech_lengths)
        theirs = plain.decode_greedy(speech, speech_lengths)
    assert [r["token_ids"] for r in ours] == [r["token_ids"] for r in theirs]
    assert sum(len(r["token_ids"]) for r in ours) >= 3
