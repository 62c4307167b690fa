"""The CPU dropout of funasr_lite/models/modules/dropout.py: its drop rate and scale, its gradient,
that it draws from torch's generator (seeded, resumable) and draws nothing where it does nothing."""

import pytest
import torch

from funasr_lite.models.modules.dropout import Dropout, dropout


def test_drop_rate_and_scale():
    torch.manual_seed(3)
    x = torch.rand(400, 1000) + 1.0  # no zeros of its own
    for p in (0.05, 0.1, 0.3):
        y = dropout(x, p)
        dropped = (y == 0).double().mean().item()
        expected = round(p * 65536) / 65536
        assert abs(dropped - expected) < 4 * (expected * (1 - expected) / x.numel()) ** 0.5 + 1e-9, (p, dropped)
        kept = y != 0
        torch.testing.assert_close(y[kept], x[kept] / (1 - p))
        assert y.shape == x.shape and y.dtype == x.dtype


def test_gradient_is_the_mask():
    torch.manual_seed(4)
    x = torch.randn(3, 50, 8, requires_grad=True)
    y = dropout(x, 0.2)
    y.backward(torch.ones_like(y))
    torch.testing.assert_close(x.grad, (y.detach() != 0).float() / 0.8)


def test_torchs_generator_seeds_it_and_resumes_it():
    x = torch.randn(17, 33)
    torch.manual_seed(5)
    first = dropout(x, 0.1)
    state = torch.get_rng_state()
    second = dropout(x, 0.1)
    torch.manual_seed(5)
    assert torch.equal(dropout(x, 0.1), first)
    torch.set_rng_state(state)
    assert torch.equal(dropout(x, 0.1), second)
    assert not torch.equal(first, second)


def test_identity_without_drawing_in_eval_mode_and_at_p0():
    x = torch.randn(4, 5)
    state = torch.get_rng_state()
    assert dropout(x, 0.0) is x and dropout(x, 0.5, training=False) is x
    module = Dropout(0.3).eval()
    assert module(x) is x
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))  # p = 1: torch's own


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_float_dtypes_and_odd_sizes(dtype):
    torch.manual_seed(6)
    x = torch.ones(7, 3, dtype=dtype)  # 21 elements: not a multiple of the 4 a random word covers
    y = Dropout(0.5).train()(x)
    assert y.dtype == dtype and set(y.unique().tolist()) <= {0.0, 2.0}


def test_attention_dropout_on_the_cpu_averages_to_attention_without_it():
    """SAN-M attention with dropout on the CPU (the weights dropped by this module, not inside the
    fused kernel): masked keys get no weight, and the mean over many draws is dropout-free attention."""
    from funasr_lite.models.modules.sanm_attention import _masked_attention

    generator = torch.Generator().manual_seed(8)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    key_mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    exact = _masked_attention(q, k, v, key_mask, 0.0)
    torch.manual_seed(9)
    draws = torch.stack([_masked_attention(q, k, v, key_mask, 0.2) for _ in range(4000)])
    torch.testing.assert_close(draws.mean(0), exact, atol=0.05, rtol=0)
    v_masked = v.clone()
    v_masked[1, :, 3:] = 1e6  # values of masked keys must not leak into any draw
    assert _masked_attention(q, k, v_masked, key_mask, 0.2).abs().max() < 1e3
