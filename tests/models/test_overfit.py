"""A tiny Paraformer memorises two utterances; the glancing sampler picks positions as specified."""

import torch

from funasr_lite.models import build_model
from funasr_lite.models.paraformer.sampler import choose_glance_positions, glancing_sample


TEXT = torch.tensor([[3, 7, 5, 9, 4], [8, 6, 10, -1, -1]])
TEXT_LENGTHS = torch.tensor([5, 3])


def _overfit_and_decode(model, feats, feats_lengths, steps):
    """Train on the two utterances (targets TEXT) with Adam; check the loss fell >10x and the
    training accuracy reached 1; return greedy decoding of the same input."""
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        loss, stats, _ = model(feats, feats_lengths, TEXT, TEXT_LENGTHS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]
    assert float(stats["acc"]) == 1.0
    model.eval()
    return model.decode_greedy(feats, feats_lengths)


def test_tiny_model_overfits_two_utterances(tiny_config):
    tiny_config["model_conf"]["sampling_ratio"] = 0.4
    for key in ("dropout_rate", "attention_dropout_rate", "self_attention_dropout_rate", "src_attention_dropout_rate"):
        for section in ("encoder_conf", "decoder_conf"):
            if key in tiny_config[section]:
                tiny_config[section][key] = 0.0
    model = build_model(tiny_config)
    feats = torch.randn(2, 24, tiny_config["input_size"])
    feats_lengths = torch.tensor([24, 17])
    results = _overfit_and_decode(model, feats, feats_lengths, steps=150)
    # predictor_bias=1: the predictor learns one extra fire for </s>, which decoding drops.
    assert [r["token_num"] for r in results] == [6, 4]
    assert [r["token_ids"] for r in results] == [[3, 7, 5, 9, 4], [8, 6, 10]]


def test_glance_count_follows_errors_and_ratio():
    targets = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12], [5, 6, 7, 8, -1, -1, -1, -1]])
    first_pass = torch.tensor([[5, 6, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 5, 5, 5, 5]])
    # Wrong: 6 of 8 and 4 of 4 -> floor(6 * 0.5) = 3 and floor(4 * 0.5) = 2 glanced positions.
    for seed in range(5):
        generator = torch.Generator().manual_seed(seed)
        glance = choose_glance_positions(first_pass, targets, 0.5, generator=generator)
        assert glance.sum(1).tolist() == [3, 2]
        assert not glance[1, 4:].any()
    assert not choose_glance_positions(first_pass, targets, 0.0).any()


def test_glancing_sample_mixes_embeddings_at_chosen_positions():
    targets = torch.tensor([[1, 2, 3, -1]])
    acoustic = torch.zeros(1, 4, 2)
    target_embeds = torch.ones(1, 4, 2)
    mixed, glance = glancing_sample(acoustic, target_embeds, torch.zeros(1, 4, dtype=torch.long), targets, 1.0)
    assert glance[0].tolist() == [True, True, True, False]
    assert mixed[0, :3].eq(1).all() and mixed[0, 3].eq(0).all()


def test_mwer_stage_combines_losses_and_trains_the_nar_pass(tiny_config, monkeypatch):
    import funasr_lite.models.losses.mwer as mwer_module

    calls = []

    def fake_mwer_loss(log_probs, targets, target_lengths, num_candidates=4, generator=None, negatives="swap"):
        calls.append((log_probs, targets, target_lengths, num_candidates, negatives))
        return -log_probs.max(-1)[0].mean(), {"errors": torch.tensor(1.5)}

    monkeypatch.setattr(mwer_module, "mwer_loss", fake_mwer_loss)
    tiny_config["model_conf"].update(sampling_ratio=0.4, mwer_weight=0.5, mwer_ce_weight=0.3, mwer_num_candidates=6,
                                       mwer_negatives="sample")
    model = build_model(tiny_config).train()
    feats, feats_lengths = torch.randn(2, 20, tiny_config["input_size"]), torch.tensor([20, 14])
    text, text_lengths = torch.tensor([[3, 7, 5], [8, 6, -1]]), torch.tensor([3, 2])
    loss, stats, _ = model(feats, feats_lengths, text, text_lengths)
    expected = (0.3 * stats["loss_ctc"] + 0.7 * 0.3 * stats["loss_att"] + 1.0 * stats["loss_pre"]
                + 0.5 * stats["loss_mwer"])
    assert abs(float(loss.detach()) - float(expected)) < 1e-5
    assert float(stats["mwer_errors"]) == 1.5
    log_probs, targets, target_lengths, num_candidates, negatives = calls[0]
    # Normalised NAR log-probs with gradients, targets with </s> appended (predictor_bias=1).
    assert log_probs.requires_grad and num_candidates == 6 and negatives == "sample"
    torch.testing.assert_close(log_probs.exp().sum(-1), torch.ones(2, 4))
    assert targets.tolist() == [[3, 7, 5, 2], [8, 6, 2, -1]] and target_lengths.tolist() == [4, 3]

    # MWER alone still reaches the decoder although the sampler's first pass is otherwise no-grad.
    tiny_config["model_conf"].update(ctc_weight=0.0, predictor_weight=0.0, mwer_ce_weight=0.0, mwer_weight=1.0)
    model = build_model(tiny_config).train()
    loss, _, _ = model(feats, feats_lengths, text, text_lengths)
    loss.backward()
    assert model.decoder.output_layer.weight.grad.abs().sum() > 0


def _recipe_config_shrunk(name: str) -> dict:
    """A recipe config of egs/aishell1/conf with every size cut down, everything else as shipped."""
    import pathlib

    from funasr_lite.utils.config import load_yaml

    path = pathlib.Path(__file__).resolve().parents[2] / "egs" / "aishell1" / "conf" / name
    config = load_yaml(str(path))
    config["input_size"], config["vocab_size"] = 24, 12
    config["encoder_conf"].update(output_size=32, linear_units=64, num_blocks=2, dropout_rate=0.0,
                                  positional_dropout_rate=0.0, attention_dropout_rate=0.0)
    config["decoder_conf"].update(linear_units=64, num_blocks=2, dropout_rate=0.0, positional_dropout_rate=0.0,
                                  self_attention_dropout_rate=0.0, src_attention_dropout_rate=0.0)
    config["predictor_conf"]["idim"] = 32
    config.pop("specaug", None)
    return config


def test_conformer_recipe_model_overfits_two_utterances():
    # The Conformer recipe (conv2d 4x subsampling, rel-pos attention, macaron, conv module, SAN
    # decoder, CifPredictor V1, sampling_ratio 0.4) learns: losses fall and greedy decoding
    # returns the targets.
    config = _recipe_config_shrunk("paraformer_conformer_12e_6d_2048_256.yaml")
    assert config["encoder"] == "conformer" and config["encoder_conf"]["input_layer"] == "conv2d"
    model = build_model(config)
    feats = torch.randn(2, 64, config["input_size"])  # 64 frames -> 15 after 4x subsampling
    results = _overfit_and_decode(model, feats, torch.tensor([64, 50]), steps=200)
    assert [r["token_ids"] for r in results] == [[3, 7, 5, 9, 4], [8, 6, 10]]
