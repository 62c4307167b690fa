"""FunASR's x-vector speaker model: our XVector against funasr's own ResNet34 / StatisticPooling /
DenseDecoder classes (random weights and BatchNorm statistics, strict load of funasr's state dict).

The reference embedding is FunASR's sv inference: one utterance at a time, pooled without lengths,
the decoder's ``resnet1_dense`` (or ``resnet2_dense``). Ours takes padded batches: each utterance
must come out as it does alone, whatever the padding holds. Lengths cover odd and even lengths at
every stride-2 stage (the stage where TF-"same" padding depends on the parity) and 1-3 frames.
"""

import pytest
import torch

from funasr_lite.models.speaker import XVector, build_speaker_model, statistic_pooling
from funasr_lite.utils.config import ConfigError
from funasr_xvector import RELEASED_SV_CONFIG, build_funasr_sv, tiny_sv_config  # tests/funasr_xvector.py

ATOL = 2e-6  # float32, convolutions summed in another order (measured: ~1e-7 tiny, ~3e-7 released size)
# odd/even at each of the three stride-2 stages: 37 -> 19 -> 10 -> 5, 50 -> 25 -> 13 -> 7, 64 -> 32 -> 16 -> 8
LENGTHS = [37, 50, 64, 23, 1, 2, 3, 9, 45]


def padded_batch(lengths, n_mels, seed=0, pad_value=7.0):
    """Random fbank-like features; the frames past each length hold ``pad_value`` (not zeros),
    so any leak of padding into an embedding shows."""
    generator = torch.Generator().manual_seed(seed)
    feats = torch.randn(len(lengths), max(lengths), n_mels, generator=generator) * 3 + 5
    for index, length in enumerate(lengths):
        feats[index, length:] = pad_value
    return feats, torch.tensor(lengths)


def load_ours(config, funasr_model) -> XVector:
    ours = build_speaker_model(config).eval()
    ours.load_state_dict(funasr_model.state_dict(), strict=True)
    return ours


@pytest.fixture(scope="module")
def tiny():
    config = tiny_sv_config()
    reference = build_funasr_sv(config, len(config["token_list"]), seed=3)
    return config, reference, load_ours(config, reference)


def test_state_dict_keys_are_funasrs(tiny):
    config, reference, ours = tiny
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert "decoder.output_dense.weight" in ours.state_dict() and "encoder.block_3.layer_0.conv_sc.weight" in ours.state_dict()


@pytest.mark.parametrize("node", ["resnet1_dense", "resnet2_dense"])
def test_padded_batch_embeddings_equal_funasr_one_at_a_time(tiny, node):
    config, reference, ours = tiny
    feats, lengths = padded_batch(LENGTHS, config["frontend_conf"]["n_mels"])
    with torch.no_grad():
        batch = ours.embed(feats, lengths, node)
    expected = torch.stack([reference.embedding(feats[i, :n], node) for i, n in enumerate(LENGTHS)])
    assert batch.shape == expected.shape == (len(LENGTHS), config["decoder_conf"]["num_nodes_resnet1"
                                                                                 if node == "resnet1_dense" else "num_nodes_last_layer"])
    difference = (batch - expected).abs().max().item()
    print(f"\nx-vector {node}: max |ours - funasr| = {difference:.2e} (embeddings up to {expected.abs().max():.2f})")
    assert difference <= ATOL
    # what the padding holds does not matter
    with torch.no_grad():
        zero_padded = ours.embed(padded_batch(LENGTHS, config["frontend_conf"]["n_mels"], pad_value=0.0)[0], lengths, node)
    assert (zero_padded - batch).abs().max().item() <= ATOL


def test_logits_equal_funasr(tiny):
    config, reference, ours = tiny
    feats, lengths = padded_batch(LENGTHS[:4], config["frontend_conf"]["n_mels"], seed=1)
    with torch.no_grad():
        logits, _ = ours(feats, lengths)
    expected = torch.stack([reference.logits(feats[i, :n]) for i, n in enumerate(LENGTHS[:4])])
    assert logits.shape == (4, len(config["token_list"]))
    assert (logits - expected).abs().max().item() <= ATOL


def test_released_size_model(tiny):
    """The released config itself (ResNet34 3-4-6-3, 32-256 filters, 80 mels): 5.59 M parameters
    without the speaker layer (FunASR's README: 5.60 M), and the same embeddings."""
    config = dict(RELEASED_SV_CONFIG, token_list=[f"spk{index}" for index in range(5)])
    reference = build_funasr_sv(config, 5, seed=5)
    ours = load_ours(config, reference)
    without_output = sum(p.numel() for name, p in ours.named_parameters() if "output_dense" not in name)
    assert 5.55e6 < without_output < 5.65e6
    lengths = [61, 40, 27]
    feats, lengths_tensor = padded_batch(lengths, 80, seed=2)
    with torch.no_grad():
        batch = ours.embed(feats, lengths_tensor)
    expected = torch.stack([reference.embedding(feats[i, :n]) for i, n in enumerate(lengths)])
    difference = (batch - expected).abs().max().item()
    print(f"\nx-vector released size: max |ours - funasr| = {difference:.2e}")
    assert batch.shape == (3, 256) and difference <= ATOL


def test_statistic_pooling_leaves_padding_out():
    """Hand-computed: mean and (biased) std over the valid frames and all frequencies."""
    x = torch.tensor([[[[1.0, 3.0], [5.0, 7.0], [100.0, -100.0]]]])  # (1, 1, T=3, F=2); frame 2 is padding
    pooled = statistic_pooling(x, torch.tensor([2]))
    assert torch.allclose(pooled, torch.tensor([[4.0, 5.0 ** 0.5]]))
    constant = statistic_pooling(torch.full((1, 1, 2, 2), 3.0), None)
    assert torch.allclose(constant, torch.tensor([[3.0, 1e-6]]))  # variance 0 -> floor 1e-12 -> std 1e-6


def test_strict_load_names_the_mismatch(tiny):
    config, reference, _ = tiny
    state = reference.state_dict()
    ours = build_speaker_model(dict(config, token_list=config["token_list"] + ["extra"]))
    with pytest.raises(RuntimeError, match="decoder.output_dense.weight"):
        ours.load_state_dict(state, strict=True)


def test_config_errors_are_named():
    config = tiny_sv_config()
    with pytest.raises(ConfigError, match="encoder_conf: unknown key 'num_blocks'"):
        build_speaker_model(dict(config, encoder_conf=dict(config["encoder_conf"], num_blocks=3)))
    with pytest.raises(ConfigError, match="pooling_type: unknown 'attentive'"):
        build_speaker_model(dict(config, pooling_type="attentive"))
    with pytest.raises(ConfigError, match="not a speaker model"):
        build_speaker_model(dict(config, model="paraformer"))
