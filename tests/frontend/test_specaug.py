import pytest
import torch

from funasr_lite.frontend.specaug import SpecAug, SpecAugLFR, sample_mask_spans, sample_time_warp, time_warp

torch.set_num_threads(1)


def _runs(flags):
    """Lengths of the runs of True in a 1-D bool list."""
    runs, current = [], 0
    for flag in flags:
        if flag:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


def test_lfr_freq_mask_hits_same_band_in_all_sub_frames():
    torch.manual_seed(0)
    lfr_m, n_mels = 7, 80
    specaug = SpecAugLFR(
        apply_time_warp=False,
        apply_freq_mask=True,
        freq_mask_width_range=[0, 30],
        num_freq_mask=2,
        lfr_rate=6,  # FunASR's convention: lfr_rate + 1 sub-frames
        apply_time_mask=False,
        time_mask_width_range=[0, 12],
    )
    assert specaug.lfr_m == 7
    x = torch.rand(16, 20, n_mels * lfr_m) + 1.0  # strictly positive: zeros are masks
    lengths = torch.full((16,), 20)
    y, out_lengths = specaug(x.clone(), lengths)
    assert torch.equal(out_lengths, lengths)
    masked_any = 0
    for b in range(16):
        masked = (y[b] == 0).view(20, lfr_m, n_mels)  # (T, sub-frame, mel)
        band = masked[0, 0]
        # Same band in every sub-frame and every frame.
        assert torch.equal(masked, band.expand(20, lfr_m, n_mels))
        runs = _runs(band.tolist())
        assert len(runs) <= 2 or sum(runs) <= 2 * 29  # two masks may merge into one run
        assert int(band.sum()) <= 2 * 29  # each width < 30
        masked_any += int(band.any())
        # Unmasked values untouched.
        assert torch.equal(y[b][~(y[b] == 0)], x[b][~(y[b] == 0)])
    assert masked_any > 8  # widths are drawn from [0, 30): almost always something is masked


def test_lfr_m_argument_and_bad_dim():
    specaug = SpecAugLFR(apply_time_warp=False, apply_time_mask=False, freq_mask_width_range=5, lfr_m=3)
    assert specaug.lfr_m == 3
    with pytest.raises(ValueError, match="not a multiple of lfr_m=3"):
        specaug(torch.ones(1, 4, 10), torch.tensor([4]))


def test_mask_widths_stay_in_range():
    torch.manual_seed(1)
    limits = torch.full((4000,), 80)
    starts, widths = sample_mask_spans(limits, 2, (3, 30))
    assert int(widths.min()) == 3 and int(widths.max()) == 29  # [lo, hi): hi excluded
    assert bool(((starts >= 0) & (starts + widths <= 80)).all())
    # Short limits cap the width and keep the span inside.
    starts, widths = sample_mask_spans(torch.tensor([5, 0, 12]), 3, (0, 40))
    assert bool((starts + widths <= torch.tensor([5, 0, 12]).unsqueeze(1)).all())


def test_time_masks_only_inside_each_length():
    torch.manual_seed(2)
    specaug = SpecAug(
        apply_time_warp=False,
        apply_freq_mask=False,
        apply_time_mask=True,
        time_mask_width_range=[0, 40],
        num_time_mask=2,
    )
    lengths = torch.tensor([100, 37, 9, 60])
    x = torch.full((4, 100, 8), 3.0)
    for b, length in enumerate(lengths.tolist()):
        x[b, length:] = -7.0  # padding marker
    saw_mask = False
    for _ in range(30):
        y, _ = specaug(x.clone(), lengths)
        for b, length in enumerate(lengths.tolist()):
            assert bool((y[b, length:] == -7.0).all()), "padding was touched"
            frame_masked = (y[b, :length] == 0).all(dim=1)
            partly = ((y[b, :length] == 0).any(dim=1)) & ~frame_masked
            assert not bool(partly.any()), "a time mask must cover whole frames"
            assert int(frame_masked.sum()) <= 2 * 39
            saw_mask |= bool(frame_masked.any())
    assert saw_mask


def _interpolate_segments(x, center, warped, mode):
    """Independent reference: resize [0, center) to warped frames and the rest to T - warped."""
    t = x.shape[0]
    image = x[None, None]  # (1, 1, T, D)
    kwargs = {} if mode == "nearest" else {"align_corners": False}
    left = torch.nn.functional.interpolate(image[:, :, :center], (warped, x.shape[1]), mode=mode, **kwargs)
    right = torch.nn.functional.interpolate(image[:, :, center:], (t - warped, x.shape[1]), mode=mode, **kwargs)
    return torch.cat([left, right], dim=2)[0, 0]


@pytest.mark.parametrize("mode", ["bicubic", "bilinear", "nearest"])
def test_time_warp_matches_torch_interpolate_per_utterance(mode):
    torch.manual_seed(3)
    lengths = torch.tensor([30, 22, 17])
    x = torch.randn(3, 30, 6, dtype=torch.float64)
    for b, length in enumerate(lengths.tolist()):
        x[b, length:] = 0.0
    centers = torch.tensor([12, 8, 9])
    warped = torch.tensor([16, 5, 9])  # the third is a no-op warp
    y = time_warp(x, lengths, centers, warped, mode)
    for b, length in enumerate(lengths.tolist()):
        expected = _interpolate_segments(x[b, :length], int(centers[b]), int(warped[b]), mode)
        torch.testing.assert_close(y[b, :length], expected, rtol=1e-9, atol=1e-9)
        assert bool((y[b, length:] == 0).all())
    torch.testing.assert_close(y[2], x[2])


def test_random_time_warp_draws_and_application():
    lengths = torch.tensor([40, 10])  # 10 <= 2 * window: too short to warp
    torch.manual_seed(4)
    centers, warped = sample_time_warp(lengths.repeat(500), 5)
    long_c, long_w = centers[0::2], warped[0::2]
    assert int(long_c.min()) >= 5 and int(long_c.max()) <= 34  # center in [window, L - window)
    assert bool(((long_w > long_c - 5) & (long_w <= long_c + 5)).all())  # warped in (c - w, c + w]
    assert bool((centers[1::2] == 0).all()) and bool((warped[1::2] == 0).all())

    specaug = SpecAug(apply_time_warp=True, time_warp_window=5, apply_freq_mask=False, apply_time_mask=False)
    x = torch.randn(2, 40, 4, dtype=torch.float64)
    x[1, 10:] = 9.0
    torch.manual_seed(7)
    y, _ = specaug(x.clone(), lengths)
    torch.manual_seed(7)
    c, w = sample_time_warp(lengths, 5)  # the module draws exactly this first
    expected = _interpolate_segments(x[0], int(c[0]), int(w[0]), "bicubic")
    torch.testing.assert_close(y[0], expected, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(y[1], x[1])


def test_same_seed_same_augmentation():
    specaug = SpecAug(freq_mask_width_range=[0, 30], time_mask_width_range=[0, 40])
    x = torch.randn(3, 120, 80)
    lengths = torch.tensor([120, 90, 50])
    torch.manual_seed(5)
    a, _ = specaug(x.clone(), lengths)
    torch.manual_seed(5)
    b, _ = specaug(x.clone(), lengths)
    assert torch.equal(a, b)


def test_bad_options_are_reported():
    with pytest.raises(ValueError, match="time_warp_mode"):
        SpecAug(time_warp_mode="cubic", time_mask_width_range=10)
    with pytest.raises(ValueError, match="exactly one of time_mask_width_range"):
        SpecAug(apply_time_mask=True)
    with pytest.raises(ValueError, match="freq_mask_width_range"):
        SpecAug(freq_mask_width_range=[10, 5], time_mask_width_range=10)
