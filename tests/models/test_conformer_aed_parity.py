"""Conformer AED (models/aed) against FunASR's ``Conformer`` model class (numeric oracle).

Both are built from the same small random config; FunASR's weights are loaded strictly into
ours, then the training losses (eval mode, same batch) and the decoder's step-by-step scores
(FunASR's ``forward_one_step`` / ``batch_score``) must agree.
"""

import copy
import logging

import pytest
import torch

from funasr_lite.models import build_model

torch.set_num_threads(1)

VOCAB = 13
INPUT_DIM = 20
ENCODER_CONF = {
    "output_size": 32,
    "attention_heads": 4,
    "linear_units": 48,
    "num_blocks": 2,
    "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1,
    "attention_dropout_rate": 0.0,
    "input_layer": "conv2d",
    "normalize_before": True,
    "pos_enc_layer_type": "rel_pos",
    "selfattention_layer_type": "rel_selfattn",
    "activation_type": "swish",
    "macaron_style": True,
    "use_cnn_module": True,
    "cnn_module_kernel": 5,
}
DECODER_CONF = {
    "attention_heads": 4,
    "linear_units": 48,
    "num_blocks": 2,
    "dropout_rate": 0.1,
    "positional_dropout_rate": 0.1,
    "self_attention_dropout_rate": 0.0,
    "src_attention_dropout_rate": 0.0,
}
# The keys of FunASR's examples/aishell/conformer/conf/conformer_12e_6d_2048_256.yaml, small sizes.
CONFIG = {
    "model": "Conformer",
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "encoder": "ConformerEncoder",
    "encoder_conf": ENCODER_CONF,
    "decoder": "TransformerDecoder",
    "decoder_conf": DECODER_CONF,
    "input_size": INPUT_DIM,
    "vocab_size": VOCAB,
}


@pytest.fixture(autouse=True)
def _quiet_funasr():
    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.ERROR)
    yield
    root.setLevel(old)


def _funasr_model(config):
    import funasr.models.conformer.encoder  # noqa: F401  (registers ConformerEncoder)
    import funasr.models.transformer.decoder  # noqa: F401  (registers TransformerDecoder)
    from funasr.models.conformer.model import Conformer

    return Conformer(
        encoder=config["encoder"], encoder_conf=copy.deepcopy(config["encoder_conf"]),
        decoder=config["decoder"], decoder_conf=copy.deepcopy(config["decoder_conf"]),
        ctc_conf={}, input_size=config["input_size"], vocab_size=config["vocab_size"],
        **config["model_conf"],
    )


def _random_state(model, seed):
    """Every parameter and BatchNorm statistic random (fresh BatchNorm 0/1 would hide mistakes)."""
    generator = torch.Generator().manual_seed(seed)
    state = model.state_dict()
    for name, tensor in state.items():
        if tensor.is_floating_point():
            values = torch.randn(tensor.shape, generator=generator) * 0.3
            if name.endswith("running_var"):
                values = values.abs() + 0.5
            tensor.copy_(values)
    return state


def _pair(config=CONFIG, seed=0):
    reference = _funasr_model(config)
    state = _random_state(reference, seed)
    reference.eval()
    ours = build_model(copy.deepcopy(config))
    ours.load_state_dict(state, strict=True)
    ours.eval()
    return reference, ours


def _batch(seed=1):
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([61, 45, 30])
    speech = torch.randn(3, 61, INPUT_DIM, generator=generator)
    for b, n in enumerate(lengths.tolist()):
        speech[b, n:] = 0.0
    text_lengths = torch.tensor([5, 7, 3])
    text = torch.randint(3, VOCAB, (3, 7), generator=generator)
    for b, n in enumerate(text_lengths.tolist()):
        text[b, n:] = -1
    return speech, lengths, text, text_lengths


def test_same_parameter_names_and_shapes():
    reference = _funasr_model(CONFIG)
    ours = build_model(copy.deepcopy(CONFIG))
    theirs = {k: tuple(v.shape) for k, v in reference.state_dict().items()}
    mine = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    assert mine == theirs
    assert type(reference.decoder).__name__ == "TransformerDecoder"
    assert type(ours).__name__ == "Conformer" and ours.ctc is not None


@pytest.mark.parametrize("variant", ["recipe", "postnorm_concat", "length_normalized"])
def test_same_loss_eval_mode(variant):
    config = copy.deepcopy(CONFIG)
    if variant == "postnorm_concat":
        config["decoder_conf"].update(normalize_before=False, concat_after=True)
    if variant == "length_normalized":
        config["model_conf"].update(length_normalized_loss=True, ctc_weight=0.5, lsm_weight=0.0)
    reference, ours = _pair(config)
    speech, lengths, text, text_lengths = _batch()
    with torch.no_grad():
        loss_ref, stats_ref, weight_ref = reference(speech, lengths, text, text_lengths)
        loss, stats, weight = ours(speech, lengths, text, text_lengths)
    assert float(loss) > 0.5  # a real loss, not a degenerate zero
    torch.testing.assert_close(loss, loss_ref.reshape(()), rtol=1e-5, atol=1e-5)
    for key in ("loss_att", "loss_ctc", "acc"):
        torch.testing.assert_close(stats[key].float(), torch.as_tensor(stats_ref[key]).float().reshape(()), rtol=1e-5, atol=1e-5)
    assert int(weight) == int(weight_ref)


def test_same_decoder_step_scores_with_cache():
    """FunASR's batch_score (its beam search's call) and ours, three steps with caches."""
    reference, ours = _pair()
    speech, lengths, _, _ = _batch()
    with torch.no_grad():
        memory, _ = reference.encode(speech[:1], lengths[:1])
        memory_ours, _ = ours.encode(speech[:1], lengths[:1])
        torch.testing.assert_close(memory_ours, memory, rtol=1e-5, atol=1e-5)
        hyps = 4
        xs = memory.expand(hyps, -1, -1)
        ys = torch.full((hyps, 1), 1, dtype=torch.long)
        states_ref = [None] * hyps
        cache = None
        generator = torch.Generator().manual_seed(3)
        for _ in range(3):
            logp_ref, states_ref = reference.decoder.batch_score(ys, states_ref, xs)
            logp, cache = ours.decoder.forward_one_step(ys, xs, None, cache)
            torch.testing.assert_close(logp, logp_ref, rtol=1e-5, atol=1e-5)
            assert torch.allclose(logp.exp().sum(-1), torch.ones(hyps), atol=1e-5)
            ys = torch.cat([ys, torch.randint(3, VOCAB, (hyps, 1), generator=generator)], dim=1)
        # no cache: the whole prefix at once gives the same last-step scores
        logp_full, _ = ours.decoder.forward_one_step(ys, xs, None, None)
        logp_ref_full, _ = reference.decoder.forward_one_step(
            ys, torch.ones(hyps, ys.size(1), ys.size(1), dtype=torch.bool).tril(), xs, None
        )
        torch.testing.assert_close(logp_full, logp_ref_full, rtol=1e-5, atol=1e-5)


def test_step_scores_equal_teacher_forcing_with_padding_masked():
    """Our cached steps over a padded batch (memory mask) equal the full teacher-forced forward."""
    _, ours = _pair()
    speech, lengths, text, text_lengths = _batch()
    with torch.no_grad():
        memory, memory_lens = ours.encode(speech, lengths)
        ys = torch.cat([torch.ones(3, 1, dtype=torch.long), text.clamp(min=3)[:, :4]], dim=1)
        logits, _ = ours.decoder(memory, memory_lens, ys, torch.full((3,), ys.size(1)))
        full = torch.log_softmax(logits, dim=-1)
        mask = torch.arange(memory.size(1))[None] < memory_lens[:, None]
        cache = None
        for step in range(1, ys.size(1) + 1):
            logp, cache = ours.decoder.forward_one_step(ys[:, :step], memory, mask, cache)
            torch.testing.assert_close(logp, full[:, step - 1], rtol=1e-5, atol=1e-5)
        # one utterance alone, unpadded, scores the same as inside the padded batch
        alone, _ = ours.decoder.forward_one_step(ys[2:], memory[2:, : int(memory_lens[2])], None, None)
        torch.testing.assert_close(alone, full[2:, -1], rtol=1e-5, atol=1e-5)


def test_build_model_refuses_a_predictor_and_unknown_model():
    from funasr_lite.models import ConfigError

    config = copy.deepcopy(CONFIG)
    config["predictor"] = "CifPredictorV2"
    with pytest.raises(ConfigError, match="predictor"):
        build_model(config)
    config = copy.deepcopy(CONFIG)
    config["model"] = "Transducer"
    with pytest.raises(ConfigError, match="unknown model 'Transducer'"):
        build_model(config)
    config = copy.deepcopy(CONFIG)
    config["model_conf"]["interctc_weight"] = 0.5
    with pytest.raises(NotImplementedError, match="interctc_weight"):
        build_model(config)
