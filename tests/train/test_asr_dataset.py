import logging
import os

import numpy as np
import pytest
import torch

from funasr_lite.data.collate import collate_batch
from funasr_lite.data.dataset import AsrDataset, DatasetError
from funasr_lite.data.tokenizer import CharTokenizer
from train_testkit import TOKENS, write_am_mvn_text, write_data_dir


def _tokenizer():
    return CharTokenizer(TOKENS)


def _lfr_by_hand(x, m, n):
    """LFR frame i = concat of x[clamp(n*i + k)] for k = -(m-1)//2 .. (written with loops)."""
    frames = []
    t = x.shape[0]
    for i in range(-(-t // n)):
        parts = []
        for k in range(-((m - 1) // 2), m - (m - 1) // 2):
            parts.append(x[min(max(n * i + k, 0), t - 1)])
        frames.append(np.concatenate(parts))
    return np.stack(frames)


def test_features_are_lfr_then_cmvn_and_text_ids(tmp_path):
    data = tmp_path / "train"
    matrices = write_data_dir(data, [("u1", 7, "ab c"), ("u2", 12, "fed")], n_mels=2)
    rng = np.random.default_rng(3)
    shift, scale = rng.normal(size=6), rng.uniform(0.5, 2.0, size=6)
    cmvn = write_am_mvn_text(tmp_path / "am.mvn", shift, scale)
    dataset = AsrDataset(data, _tokenizer(), cmvn, lfr_m=3, lfr_n=2)
    assert dataset.utt_ids == ["u1", "u2"]
    assert dataset.lengths.tolist() == [4, 6]  # ceil(7/2), ceil(12/2)
    item = dataset[0]
    expected = (_lfr_by_hand(matrices["u1"].astype(np.float64), 3, 2) + shift) * scale
    assert item["speech"].dtype == torch.float32 and item["speech"].shape == (4, 6)
    np.testing.assert_allclose(item["speech"].numpy(), expected, rtol=1e-5, atol=1e-5)
    # Spaces removed for char units; ids are positions in the token list.
    assert item["text"].tolist() == [TOKENS.index("a"), TOKENS.index("b"), TOKENS.index("c")]
    assert dataset[1]["text"].tolist() == [TOKENS.index(c) for c in "fed"]


def test_cmvn_dim_mismatch_names_both_files(tmp_path):
    data = tmp_path / "train"
    write_data_dir(data, [("u1", 7, "ab")], n_mels=2)
    cmvn = write_am_mvn_text(tmp_path / "am.mvn", [0.0] * 2, [1.0] * 2)  # 80-dim style stats for an LFR model
    with pytest.raises(DatasetError) as error:
        AsrDataset(data, _tokenizer(), cmvn, lfr_m=3, lfr_n=2)
    message = str(error.value)
    assert "am.mvn" in message and "feats.scp" in message and "2 * 3 = 6" in message


def test_unknown_chars_become_unk_counted_and_warned_once(tmp_path, caplog):
    data = tmp_path / "train"
    write_data_dir(data, [("u1", 7, "axz"), ("u2", 7, "bq"), ("u3", 7, "abc")], n_mels=2)
    cmvn = write_am_mvn_text(tmp_path / "am.mvn", [0.0] * 2, [1.0] * 2)
    with caplog.at_level(logging.WARNING):
        dataset = AsrDataset(data, _tokenizer(), cmvn)
    unk = TOKENS.index("<unk>")
    assert dataset[0]["text"].tolist() == [TOKENS.index("a"), unk, unk]
    assert dataset[1]["text"].tolist() == [TOKENS.index("b"), unk]
    assert dataset.num_unknown_tokens == 3
    warnings = [r.getMessage() for r in caplog.records if "not in the token list" in r.getMessage()]
    assert len(warnings) == 1 and "u1" in warnings[0] and "3 token(s) in 2 utterance(s)" in warnings[0]


def test_filters_and_intersection_are_counted_with_ids(tmp_path, caplog):
    data = tmp_path / "train"
    utterances = [
        ("ok1", 10, "ab"),
        ("ok2", 20, "abc"),
        ("empty", 10, "   "),  # no tokens once spaces are gone
        ("long", 90, "ab"),  # 45 LFR frames > max_frames 40
        ("short", 2, "ab"),  # 1 LFR frame < min_frames 2
        ("wordy", 20, "abcdefabcdef"),  # 12 tokens > max_tokens 10
    ]
    write_data_dir(data, utterances, n_mels=2, extra_text={"no_feats": "abc"})
    # An utterance with features but no transcript:
    with open(os.path.join(data, "text")) as f:
        lines = [line for line in f if not line.startswith("ok2 ")]
    with open(os.path.join(data, "text"), "w") as f:
        f.writelines(lines)
    cmvn = write_am_mvn_text(tmp_path / "am.mvn", [0.0] * 2, [1.0] * 2)
    with caplog.at_level(logging.WARNING):
        dataset = AsrDataset(data, _tokenizer(), cmvn, lfr_m=1, lfr_n=2, min_frames=2, max_frames=40, max_tokens=10)
    assert dataset.utt_ids == ["ok1"]
    dropped = dataset.filter_summary.dropped
    flat = {utt: reason for reason, utts in dropped.items() for utt in utts}
    assert set(flat) == {"ok2", "no_feats", "empty", "long", "short", "wordy"}
    assert "not in text" in flat["ok2"] and "not in feats.scp" in flat["no_feats"]
    assert "no tokens" in flat["empty"] and "max_frames" in flat["long"]
    assert "min_frames" in flat["short"] and "max_tokens" in flat["wordy"]
    assert "dropped 1 utterance(s): no tokens in text (e.g. empty)" in caplog.text


def test_missing_file_and_no_utterances(tmp_path):
    data = tmp_path / "train"
    write_data_dir(data, [("u1", 7, "ab")], n_mels=2)
    cmvn = write_am_mvn_text(tmp_path / "am.mvn", [0.0] * 2, [1.0] * 2)
    with pytest.raises(DatasetError, match="no usable utterances"):
        AsrDataset(data, _tokenizer(), cmvn, max_frames=3)
    os.unlink(data / "utt2num_frames")
    with pytest.raises(DatasetError, match="missing utt2num_frames"):
        AsrDataset(data, _tokenizer(), cmvn)


def test_collate_pads_feats_with_zero_and_text_with_minus_one():
    items = [
        {"utt_id": "a", "speech": torch.ones(3, 2), "text": torch.tensor([4, 5])},
        {"utt_id": "b", "speech": 2 * torch.ones(5, 2), "text": torch.tensor([6, 7, 8, 3])},
    ]
    batch = collate_batch(items)
    assert batch["utt_ids"] == ["a", "b"]
    assert batch["speech"].shape == (2, 5, 2)
    assert torch.equal(batch["speech"][0, 3:], torch.zeros(2, 2)) and torch.equal(batch["speech"][0, :3], torch.ones(3, 2))
    assert batch["speech_lengths"].tolist() == [3, 5]
    assert batch["text"].tolist() == [[4, 5, -1, -1], [6, 7, 8, 3]]
    assert batch["text_lengths"].tolist() == [2, 4]
