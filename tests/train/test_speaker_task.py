"""The speaker task (funasr_lite.train.tasks.speaker): its config, its crops and batches, the model
dir it leaves (loaded by SpeakerVerifier), and that it learns the voices of a toy data dir.
The engine's policies (non-finite, retention, resume) are checked in test_engine.py."""

import collections
import os

import kaldiio
import numpy as np
import pytest
import torch
import yaml

from funasr_lite import SpeakerVerifier
from funasr_lite.frontend.wav_frontend import FeatureOptionsError
from funasr_lite.train.tasks.speaker import SpeakerTask, crop_batches, resolve_speaker_config, train_speaker
from funasr_lite.train.text_batches import EpochBatchSampler
from speaker_data import TINY_MODEL_OVERRIDES, write_speaker_data_dir  # tests/speaker_data.py

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIG = os.path.join(REPO, "egs", "aishell1", "conf", "xvector_demo.yaml")


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def _config(data, overrides=()):
    return resolve_speaker_config(CONFIG, [*TINY_MODEL_OVERRIDES, "++train_conf.crop_frames=12",
                                           "++train_conf.batch_size=4", *overrides], str(data / "train"),
                                  str(data / "valid") if (data / "valid").exists() else None)


def test_config_takes_the_speakers_and_refuses_what_it_cannot_train(tmp_path):
    write_speaker_data_dir(tmp_path / "train", speakers=3, per_speaker=2, prefix="X")
    config = _config(tmp_path)
    assert config["token_list"] == ["X0000", "X0001", "X0002"] and config["vocab_size"] == 3
    assert config["input_size"] == 8 and config["loss_conf"] == {"scale": 8.0, "margin": 0.25}
    for bad, message in (("++frontend_conf.lfr_m=7", "lfr_m/lfr_n must be 1"),
                         ("++loss_conf.easy_margin=true", "unknown keys"),
                         ("++loss=softmax", "loss 'softmax'"),
                         ("++train_conf.batch_size=1", "batch_size must be an int >= 2"),
                         ("++specaug=specaug", "specaug")):
        with pytest.raises(ValueError, match=message):
            _config(tmp_path, [bad])


def test_features_made_with_other_options_are_refused(tmp_path):
    write_speaker_data_dir(tmp_path / "train", speakers=2, per_speaker=2)
    config = _config(tmp_path, ["++frontend_conf.window=povey"])
    with pytest.raises(FeatureOptionsError, match="window"):
        train_speaker(str(tmp_path / "train"), str(tmp_path / "exp"), CONFIG,
                      overrides=[*TINY_MODEL_OVERRIDES, "++frontend_conf.window=povey"], device="cpu")
    assert config["frontend_conf"]["window"] == "povey"


def test_crop_batches_keep_every_index_and_never_a_batch_of_one():
    assert crop_batches(9, 4) == [[0, 1, 2, 3], [4, 5, 6, 7, 8]]
    assert crop_batches(10, 4) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert crop_batches(1, 4) == [[0]]


def test_crops_are_drawn_per_seed_and_epoch_inside_each_utterance(tmp_path):
    write_speaker_data_dir(tmp_path / "train", speakers=3, per_speaker=5, frames=(8, 30))
    config = _config(tmp_path)
    task = SpeakerTask(config)

    class Context:
        device, rank, world_size, is_main = torch.device("cpu"), 0, 1, True

    task.setup(Context(), str(tmp_path))

    def epoch(seed, number):
        sampler = EpochBatchSampler(task._epoch_crops, task.collate, seed)
        sampler.set_epoch(number)
        return sampler.items(), sampler.rank_batches(), list(sampler)

    crops, batches, collated = epoch(1, 1)
    assert sorted(index for index, _, _ in crops) == list(range(15))  # every utterance once
    for index, start, length in crops:
        assert length == min(12, task.frames[index]) and 0 <= start <= task.frames[index] - length
    assert sorted(i for b in batches for i in b) == list(range(15))
    assert [len(b["utts"]) for b in collated] == [len(b) for b in batches]
    first = collated[0]
    index, start, length = crops[batches[0][0]]
    stored = np.array(kaldiio.load_mat(task.feats[task.utts[index]]))
    assert torch.equal(first["feats"][0, :length], torch.from_numpy(stored[start:start + length]))
    assert first["labels"][0] == task.labels[index] and first["utts"][0] == task.utts[index]
    assert epoch(1, 1)[0] == crops  # (seed, epoch) fixes them
    assert epoch(1, 2)[0] != crops and epoch(2, 1)[0] != crops


def test_training_learns_the_voices_and_leaves_a_speaker_model_dir(tmp_path):
    write_speaker_data_dir(tmp_path / "train", speakers=4, per_speaker=8, seed=1)
    write_speaker_data_dir(tmp_path / "valid", speakers=4, per_speaker=3, seed=1, first_speaker=0)
    exp = tmp_path / "exp"
    result = train_speaker(str(tmp_path / "train"), str(exp), CONFIG, str(tmp_path / "valid"),
                           [*TINY_MODEL_OVERRIDES, "++train_conf.crop_frames=12", "++train_conf.batch_size=8",
                            "++train_conf.max_epoch=8", "++optim_conf.lr=0.01", "++scheduler=constantlr",
                            "++scheduler_conf={}"], device="cpu")
    valid = [record["valid"] for record in result["epochs"]]
    assert set(valid[0]) == {"eer", "loss", "acc"}
    assert valid[-1]["loss"] < valid[0]["loss"] and valid[-1]["acc"] >= 0.75
    # config.yaml: sv.yaml's keys first, the speakers last
    written = yaml.safe_load((exp / "config.yaml").read_text(encoding="utf-8"))
    keys = list(written)
    assert keys[:4] == ["model", "model_conf", "encoder", "encoder_conf"] and keys[-1] == "token_list"
    assert written["token_list"] == [f"S{i:04d}" for i in range(4)]
    # the exp dir is a model dir: SpeakerVerifier embeds its stored features as the trained model does
    verifier = SpeakerVerifier(str(exp))
    vectors = verifier.embed(str(tmp_path / "valid"))
    state = torch.load(exp / "model.pt", weights_only=True)
    best = torch.load(exp / f"epoch_{result['best_epoch']}.pt", weights_only=True)["model"]
    assert all(torch.equal(state[k], best[k]) for k in state)
    assert len(vectors) == 12 and vectors[0].shape == (6,)
    untrained = SpeakerVerifier(str(exp), checkpoint="model.init.pt")
    assert not np.allclose(untrained.embed(str(tmp_path / "valid"))[0], vectors[0])
    # same-speaker pairs score higher than different-speaker pairs with the trained model
    speakers = [u[6:11] for u in sorted(os.path.basename(line.split()[0]) for line in
                                        (tmp_path / "valid" / "feats.scp").read_text().splitlines())]
    by = collections.defaultdict(list)
    for speaker, vector in zip(speakers, vectors):
        by[speaker].append(vector / np.linalg.norm(vector))
    same = np.mean([a @ b for vs in by.values() for i, a in enumerate(vs) for b in vs[i + 1:]])
    other = np.mean([a @ b for s, vs in by.items() for t, ws in by.items() if s < t for a in vs for b in ws])
    assert same > other + 0.2
