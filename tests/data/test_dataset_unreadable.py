"""Training data loading skips, names and counts unreadable features instead of ending the epoch."""

import logging
import os

import kaldiio
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from funasr_lite.data.collate import collate_batch
from funasr_lite.data.dataset import AsrDataset, DatasetError
from funasr_lite.data.tokenizer import CharTokenizer

TOKENS = ["<blank>", "<s>", "</s>", "a", "b", "c", "<unk>"]
N_MELS = 3


def write_am_mvn(path, dim):
    """Identity CMVN in Kaldi nnet1 text, written by hand."""
    with open(path, "w") as f:
        f.write(f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n")
        f.write(f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {' '.join(['0.0'] * dim)} ]\n")
        f.write(f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {' '.join(['1.0'] * dim)} ]\n</Nnet>\n")
    return str(path)


def write_data_dir(path, utt_frames, arks=2):
    """utt -> frames, spread over ``arks`` ark files (utterance i in ark i % arks)."""
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(0)
    matrices, scp_lines = {}, []
    for a in range(arks):
        ark = os.path.join(path, f"feats.{a}.ark")
        with kaldiio.WriteHelper(f"ark,scp:{ark},{ark}.scp") as writer:
            for i, (utt, frames) in enumerate(sorted(utt_frames.items())):
                if i % arks == a:
                    matrices[utt] = rng.normal(size=(frames, N_MELS)).astype(np.float32)
                    writer(utt, matrices[utt])
        scp_lines += open(f"{ark}.scp").read().splitlines()
    with open(os.path.join(path, "feats.scp"), "w") as f:
        f.write("".join(line + "\n" for line in sorted(scp_lines)))
    with open(os.path.join(path, "text"), "w") as f:
        f.write("".join(f"{utt} abc\n" for utt in sorted(utt_frames)))
    with open(os.path.join(path, "utt2num_frames"), "w") as f:
        f.write("".join(f"{utt} {frames}\n" for utt, frames in sorted(utt_frames.items())))
    return matrices


def test_missing_or_short_feature_files_are_dropped_when_building(tmp_path, caplog):
    data = tmp_path / "train"
    write_data_dir(data, {f"u{i}": 10 + i for i in range(6)}, arks=3)
    os.unlink(data / "feats.1.ark")  # u1, u4
    with open(data / "feats.2.ark", "r+b") as f:  # u2 survives, u5 starts past the new end
        scp = dict(line.split() for line in open(data / "feats.scp"))
        f.truncate(int(scp["u5"].rsplit(":", 1)[1]) - 1)
    with caplog.at_level(logging.WARNING):
        dataset = AsrDataset(data, CharTokenizer(TOKENS), write_am_mvn(tmp_path / "am.mvn", N_MELS))
    assert dataset.utt_ids == ["u0", "u2", "u3"]
    reason = "feature file missing or shorter than its feats.scp offset"
    assert dataset.filter_summary.dropped == {reason: ["u1", "u4", "u5"]}
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"utterance u1: feature file unreadable: {data}/feats.1.ark: no such file" in m for m in messages)
    assert any(f"dropped 3 utterance(s): {reason}" in m for m in messages)
    assert not any("in text but not in feats.scp" in m for m in messages)  # counted once, under its reason


def corrupt_matrix_of(data, utt):
    """Overwrite the binary header of ``utt``'s matrix in its ark with junk (the file stays long enough)."""
    scp = dict(line.split() for line in open(data / "feats.scp"))
    path, offset = scp[utt].rsplit(":", 1)
    with open(path, "r+b") as f:
        f.seek(int(offset))
        f.write(b"JUNKJUNKJUNK")


def test_a_corrupt_matrix_is_skipped_during_an_epoch(tmp_path, caplog):
    data = tmp_path / "train"
    matrices = write_data_dir(data, {f"u{i}": 10 + i for i in range(6)})
    dataset = AsrDataset(data, CharTokenizer(TOKENS), write_am_mvn(tmp_path / "am.mvn", N_MELS))
    corrupt_matrix_of(data, "u3")
    loader = DataLoader(dataset, batch_sampler=[[0, 1, 2], [3, 4, 5]], collate_fn=collate_batch)
    with caplog.at_level(logging.WARNING):
        batches = list(loader)  # the epoch runs to its end
    assert [b["utt_ids"] for b in batches] == [["u0", "u1", "u2"], ["u4", "u5"]]
    assert [b["skipped_utts"] for b in batches] == [[], ["u3"]]
    np.testing.assert_allclose(batches[1]["speech"][0, :14].numpy(), matrices["u4"], rtol=1e-6)
    assert batches[1]["speech"].shape == (2, 15, N_MELS)
    assert dataset.num_unreadable == 1
    warning = next(r.getMessage() for r in caplog.records if "skipped" in r.getMessage())
    assert "cannot read utterance u3" in warning and "1 unreadable utterance(s) so far" in warning

    with pytest.raises(ValueError, match="every utterance of this batch is unreadable: u3"):
        collate_batch([dataset[3]])
    strict = AsrDataset(data, CharTokenizer(TOKENS), str(tmp_path / "am.mvn"), max_unreadable=0)
    assert strict[0]["speech"].shape == (10, N_MELS)
    with pytest.raises(DatasetError, match=r"cannot read utterance u3 .*more than max_unreadable=0"):
        strict[3]
    good = collate_batch([dataset[0], dataset[1]])
    assert good["skipped_utts"] == [] and torch.equal(good["speech_lengths"], torch.tensor([10, 11]))
