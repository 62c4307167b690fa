"""AAM-softmax (funasr_lite.models.losses.aam_softmax) against values computed by hand with math."""

import math

import pytest
import torch

from funasr_lite.models.losses import AAMSoftmaxLoss
from funasr_lite.models.losses.aam_softmax import aam_softmax_logits
from funasr_lite.models.speaker import build_speaker_model


def _hand_loss(cosines, label, scale, margin):
    """-log softmax of one row, the target's angle widened by hand: acos, + margin, cos."""
    theta = math.acos(cosines[label])
    if theta + margin <= math.pi:
        target = math.cos(theta + margin)
    else:  # ArcFace's continuation past pi - m
        target = cosines[label] - margin * math.sin(math.pi - margin)
    logits = [scale * (target if j == label else c) for j, c in enumerate(cosines)]
    top = max(logits)
    log_norm = top + math.log(sum(math.exp(v - top) for v in logits))
    return log_norm - logits[label]


def test_loss_matches_a_hand_computation():
    rows = [[0.8, 0.1, -0.3], [0.2, 0.5, 0.45], [-0.99, 0.3, 0.0], [0.99, -0.2, 0.6]]
    labels = [0, 2, 0, 1]  # the third target (cos -0.99, 3.0 rad) lies past pi - m: the continuation
    scale, margin = 8.0, 0.25
    assert math.acos(-0.99) + margin > math.pi
    expected = sum(_hand_loss(r, y, scale, margin) for r, y in zip(rows, labels)) / len(rows)
    loss, accuracy = AAMSoftmaxLoss(scale, margin)(torch.tensor(rows, dtype=torch.float64), torch.tensor(labels))
    assert float(loss) == pytest.approx(expected, rel=1e-6)
    assert float(accuracy) == pytest.approx(1 / 4)  # argmax of the plain cosines: only row 0 is right


def test_zero_margin_is_softmax_of_scaled_cosines_and_the_margin_costs():
    cosine = torch.tensor([[0.7, 0.2, 0.1], [0.0, 0.3, -0.5]])
    labels = torch.tensor([0, 1])
    plain, _ = AAMSoftmaxLoss(scale=10.0, margin=0.0)(cosine, labels)
    assert float(plain) == pytest.approx(float(torch.nn.functional.cross_entropy(10.0 * cosine, labels)), rel=1e-6)
    with_margin, _ = AAMSoftmaxLoss(scale=10.0, margin=0.3)(cosine, labels)
    assert float(with_margin) > float(plain)
    # only the target column changes
    logits = aam_softmax_logits(cosine, labels, 10.0, 0.3)
    assert torch.allclose(logits[0, 1:], 10.0 * cosine[0, 1:]) and float(logits[0, 0]) == pytest.approx(
        10.0 * math.cos(math.acos(0.7) + 0.3), rel=1e-5)


def test_target_logit_decreases_in_the_angle_with_arcfaces_step_at_pi_minus_m():
    margin = 0.25
    angles = torch.linspace(0.0, math.pi, 2001, dtype=torch.float64)
    cosine = torch.stack([angles.cos(), torch.zeros_like(angles)], dim=1)
    target = aam_softmax_logits(cosine, torch.zeros(len(angles), dtype=torch.long), 1.0, margin)[:, 0]
    steps = target[1:] - target[:-1]
    assert bool((steps < 0).all())
    joint = int(torch.nonzero(angles > math.pi - margin)[0])
    smooth = torch.cat([steps[:joint - 1], steps[joint:]])
    assert float(smooth.abs().max()) < 2e-3  # grid step pi/2000 times a slope of at most 1
    # at the joint: from cos(pi) = -1 down to cos(pi - m) - m sin(pi - m), plus the grid's own step
    jump = math.cos(margin) + margin * math.sin(margin) - 1
    assert float(-steps[joint - 1]) == pytest.approx(jump, abs=2e-3)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="scale"):
        AAMSoftmaxLoss(scale=0.0)
    with pytest.raises(ValueError, match="margin"):
        AAMSoftmaxLoss(margin=2.0)


def test_model_cosine_logits_are_cosines_of_the_last_hidden_layer():
    torch.manual_seed(0)
    config = {"encoder": "resnet34", "encoder_conf": {"layers_in_block": [1, 1, 1, 1], "filters_in_block": [2, 4, 4, 8],
                                                       "num_nodes_pooling_layer": 8},
              "pooling_type": "statistic", "decoder": "dense",
              "decoder_conf": {"num_nodes_resnet1": 6, "num_nodes_last_layer": 5}, "input_size": 16, "vocab_size": 3}
    model = build_speaker_model(config).eval()
    feats, lengths = torch.randn(2, 20, 16), torch.tensor([20, 13])
    logits, embeddings = model(feats, lengths)
    cosine, same_embeddings = model(feats, lengths, cosine=True)
    # logits = W h, so cos_j = logits_j / (|h| |w_j|); |h| from any row: recover it from logits/cosines
    norms = model.decoder.output_dense.weight.norm(dim=1)
    hidden_norm = (logits / (cosine * norms)).mean(dim=1, keepdim=True)
    assert torch.allclose(logits / (hidden_norm * norms), cosine, atol=1e-5)
    assert float(cosine.abs().max()) <= 1.0 + 1e-6
    assert torch.equal(embeddings["resnet1_dense"], same_embeddings["resnet1_dense"])
