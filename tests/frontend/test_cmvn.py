import json

import numpy as np
import pytest
import torch

from funasr_lite.frontend.cmvn import (
    CmvnError,
    CmvnStats,
    apply_cmvn,
    read_am_mvn,
    read_cmvn_json,
    stats_to_shift_scale,
    tile_for_lfr,
    write_am_mvn,
    write_cmvn_json,
)
from funasr_lite.frontend.lfr import lfr_stack

torch.set_num_threads(1)


@pytest.fixture
def shift_scale():
    rng = np.random.RandomState(3)
    return rng.uniform(-15, -5, 560).astype(np.float32), rng.uniform(0.1, 0.5, 560).astype(np.float32)


def test_am_mvn_round_trip_is_exact_in_float32(tmp_path, shift_scale):
    shift, scale = shift_scale
    path = tmp_path / "am.mvn"
    write_am_mvn(path, shift, scale)
    read_shift, read_scale = read_am_mvn(path)
    assert read_shift.dtype == np.float32 and read_shift.shape == (560,)
    np.testing.assert_array_equal(read_shift, shift)
    np.testing.assert_array_equal(read_scale, scale)
    text = path.read_text().splitlines()
    assert text[0] == "<Nnet>" and text[1] == "<Splice> 560 560" and text[-1] == "</Nnet>"
    assert text[3] == "<AddShift> 560 560" and text[4].startswith("<LearnRateCoef> 0 [ ")


def test_funasr_load_cmvn_reads_our_file(tmp_path, shift_scale):
    from funasr.frontends.wav_frontend import load_cmvn

    shift, scale = shift_scale
    path = tmp_path / "am.mvn"
    write_am_mvn(path, shift, scale)
    oracle = load_cmvn(str(path))
    assert oracle.shape == (2, 560)
    np.testing.assert_array_equal(oracle[0].numpy(), shift)
    np.testing.assert_array_equal(oracle[1].numpy(), scale)


def test_reads_hand_written_file(tmp_path):
    path = tmp_path / "am.mvn"
    path.write_text(
        "<Nnet>\n<Splice> 3 3\n[ 0 ]\n<AddShift> 3 3\n<LearnRateCoef> 0 [ -1.5 2 -3e-1 ]\n"
        "<Rescale> 3 3\n<LearnRateCoef> 0 [ 0.5 0.25 4 ]\n</Nnet>\n"
    )
    shift, scale = read_am_mvn(path)
    assert shift.tolist() == [-1.5, 2.0, np.float32(-0.3)]
    assert scale.tolist() == [0.5, 0.25, 4.0]


def test_wrong_value_count_names_file_and_line(tmp_path):
    path = tmp_path / "am.mvn"
    path.write_text(
        "<Nnet>\n<AddShift> 3 3\n<LearnRateCoef> 0 [ 1 2 ]\n<Rescale> 3 3\n<LearnRateCoef> 0 [ 1 1 1 ]\n</Nnet>\n"
    )
    with pytest.raises(CmvnError, match=r"am.mvn:2: <AddShift> declares 3 values but has 2"):
        read_am_mvn(path)


def test_mismatched_shift_and_scale_dims_name_file(tmp_path):
    path = tmp_path / "am.mvn"
    path.write_text("<Nnet>\n<AddShift> 2 2\n<LearnRateCoef> 0 [ 1 2 ]\n<Rescale> 3 3\n<LearnRateCoef> 0 [ 1 1 1 ]\n")
    with pytest.raises(CmvnError, match=r"am.mvn: <AddShift> has 2 dims but <Rescale> has 3"):
        read_am_mvn(path)
    with pytest.raises(CmvnError, match="no such CMVN file"):
        read_am_mvn(tmp_path / "missing.mvn")
    (tmp_path / "other.txt").write_text("hello\n")
    with pytest.raises(CmvnError, match=r"other.txt: no <AddShift> component"):
        read_am_mvn(tmp_path / "other.txt")


def test_apply_cmvn_equals_funasr(shift_scale):
    from funasr.frontends.wav_frontend import apply_cmvn as funasr_apply_cmvn

    shift, scale = shift_scale
    feats = torch.randn(17, 560) * 3 + 10
    oracle = funasr_apply_cmvn(feats.clone(), torch.from_numpy(np.stack([shift, scale])))
    torch.testing.assert_close(apply_cmvn(feats, shift, scale), oracle, rtol=0, atol=0)
    # numpy in, numpy out; hand formula
    out = apply_cmvn(feats.numpy(), shift, scale)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, (feats.numpy() + shift) * scale, rtol=1e-6)


def test_apply_cmvn_dim_mismatch_names_source(shift_scale):
    shift, scale = shift_scale
    with pytest.raises(CmvnError, match=r"exp/am.mvn: CMVN has 560 dims .* features have 80"):
        apply_cmvn(torch.zeros(4, 80), shift, scale, source="exp/am.mvn")


def test_streaming_stats_equal_numpy_mean_and_std():
    rng = np.random.RandomState(4)
    chunks = [rng.normal(loc=5.0, scale=2.0, size=(t, 6)).astype(np.float32) for t in (3, 50, 1, 77)]
    stats = CmvnStats()
    for chunk in chunks:
        stats.add(chunk)
    everything = np.concatenate(chunks).astype(np.float64)
    shift, scale = stats.shift_scale()
    assert stats.frame_count == 131 and stats.dim == 6
    np.testing.assert_allclose(shift, -everything.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(scale, 1.0 / everything.std(axis=0), rtol=1e-9)
    with pytest.raises(CmvnError, match="utt9: 5-dim frames, earlier frames were 6-dim"):
        stats.add(np.zeros((2, 5)), source="utt9")
    merged = CmvnStats()
    merged.add(chunks[0])
    rest = CmvnStats()
    for chunk in chunks[1:]:
        rest.add(chunk)
    merged.merge(rest)
    np.testing.assert_allclose(merged.shift_scale()[1], scale, rtol=1e-12)


def test_variance_floor_on_constant_dimension():
    feats = np.stack([np.full(10, 3.0), np.arange(10.0)], axis=1)
    shift, scale = stats_to_shift_scale(feats.sum(0), (feats ** 2).sum(0), 10, var_floor=1e-4)
    assert shift.tolist() == [-3.0, -4.5]
    assert scale[0] == pytest.approx(100.0)  # 1 / sqrt(1e-4)
    assert scale[1] == pytest.approx(1 / np.sqrt(8.25))
    with pytest.raises(CmvnError, match="0 frames"):
        stats_to_shift_scale(np.zeros(2), np.zeros(2), 0)


def test_tiled_stats_match_stats_of_lfr_frames():
    # Every sub-block of an LFR frame sees every 6th raw frame, so on a long stationary signal
    # its mean/std match the raw-frame statistics (the edges are a few frames in thousands).
    rng = np.random.RandomState(5)
    raw = rng.normal(loc=[1.0, -2.0, 7.0], scale=[1.0, 3.0, 0.5], size=(30000, 3))
    raw_stats = CmvnStats()
    raw_stats.add(raw)
    tiled_shift, tiled_scale = (tile_for_lfr(v, 7) for v in raw_stats.shift_scale())
    lfr_frames, _ = lfr_stack(torch.from_numpy(raw), m=7, n=6)
    lfr_stats = CmvnStats()
    lfr_stats.add(lfr_frames.numpy())
    lfr_shift, lfr_scale = lfr_stats.shift_scale()
    assert tiled_shift.shape == (21,)
    # Compare means in units of the standard deviation (sampling error ~ 1/sqrt(5000) = 0.014).
    assert np.all(np.abs(lfr_shift - tiled_shift) * tiled_scale < 0.06)
    np.testing.assert_allclose(lfr_scale, tiled_scale, rtol=0.05)


def test_cmvn_json_round_trip(tmp_path):
    stats = CmvnStats()
    stats.add(np.array([[1.0, 2.0], [3.0, 6.0]]))
    path = tmp_path / "cmvn.json"
    write_cmvn_json(path, stats)
    content = json.loads(path.read_text())
    assert content["frame_num"] == 2 and content["total_frames"] == 2 and content["dim"] == 2
    assert content["mean"] == [2.0, 4.0]
    assert content["istd"] == pytest.approx([1.0, 0.5])
    back = read_cmvn_json(path)
    assert back.frame_count == 2 and back.sum.tolist() == [4.0, 8.0] and back.sum_sq.tolist() == [10.0, 40.0]
