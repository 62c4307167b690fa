"""The large-corpus path (funasr_lite.data.shards): tar shards written in parallel, read as a
stream split across ranks and workers, each utterance once per epoch, and resumed exactly from a
saved position — in-process and after killing a fine-tuning run."""

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile
import torch

from funasr_lite.data.datadir import read_kv
from funasr_lite.data.shards import ShardStream, StreamLoader, iter_shard, read_shard_list, write_shards
from funasr_lite.data.tokenizer import CharTokenizer
from funasr_lite.frontend.wav_frontend import WavFrontend
from funasr_lite.models.load import load_state_dict_file
from finetune_data import TOKENS, make_example_data, write_cmvn_from_waves, write_funasr_model_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FRONTEND_CONF = {"fs": 16000, "n_mels": 80, "lfr_m": 7, "lfr_n": 6}


def _run(cmd, env, timeout=1200):
    """Run a fine-tuning command; on failure, fail with the tail of its output (a DDP failure under load
    left nothing to read when the output went to /dev/null)."""
    proc = subprocess.run(cmd, env=env, timeout=timeout, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace")
    assert proc.returncode == 0, f"exit {proc.returncode}: {' '.join(map(str, cmd))}\n{proc.stdout[-6000:]}"


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    data_dir, waves, texts = make_example_data(str(root), num_train=14, num_valid=2)
    train = os.path.join(data_dir, "train")
    list_path = str(root / "shards.list")
    paths = write_shards(train, root / "shards", list_path, frontend=WavFrontend(FRONTEND_CONF), utts_per_shard=3, nj=2)
    write_cmvn_from_waves(str(root / "am.mvn"), waves.values())
    return root, list_path, paths, waves, texts


def make_stream(sharded, **kwargs):
    root, list_path, _, _, _ = sharded
    frontend = WavFrontend(FRONTEND_CONF, str(root / "am.mvn"))
    kwargs.setdefault("buffer_size", 4)
    return ShardStream(list_path, CharTokenizer(TOKENS), frontend, kwargs.pop("batch_ms", 4000), seed=3, **kwargs)


def test_shards_hold_every_utterance_audio_and_text(sharded):
    _, list_path, paths, waves, texts = sharded
    assert read_shard_list(list_path) == paths and len(paths) == 5  # 14 utterances, 3 a shard
    seen = {}
    for path in paths:
        for offset, utt, wav, text in iter_shard(path):
            samples, rate = soundfile.read(__import__("io").BytesIO(wav), dtype="int16")
            seen[utt] = (offset, text)
            assert rate == 16000 and np.array_equal(samples, waves[utt])
    train_texts = {u: t for u, t in texts.items() if "_train_" in u}
    assert {u: t for u, (_, t) in seen.items()} == train_texts
    assert [o for o, _ in (seen[u] for u in sorted(seen))][:3] == [0, 1, 2]
    assert [(o, u) for o, u, _, _ in iter_shard(paths[1], start=2)] == [(2, sorted(train_texts)[5])]


def utts_of(batches):
    return [list(b["utt_ids"]) for b in batches]


def test_one_epoch_gives_each_utterance_once_split_over_ranks(sharded):
    _, _, _, _, texts = sharded
    train = sorted(u for u in texts if "_train_" in u)
    single = utts_of(list(make_stream(sharded)))
    assert sorted(sum(single, [])) == train
    assert all(len(b) >= 1 for b in single) and max(len(b) for b in single) > 1
    ranks = [sum(utts_of(list(make_stream(sharded, rank=r, world_size=2))), []) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == train and not set(ranks[0]) & set(ranks[1])
    # another epoch, another order
    stream = make_stream(sharded)
    stream.epoch = 2
    assert sum(utts_of(list(stream)), []) != sum(single, [])
    # batch_ms bounds count x longest (an utterance longer than the budget goes alone)
    for batch in make_stream(sharded, batch_ms=3000):
        assert len(batch["utt_ids"]) == 1 or int(batch["speech_lengths"].max()) * 60 * len(batch["utt_ids"]) <= 3000


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_from_a_saved_position_gives_the_same_remaining_batches(sharded, num_workers):
    full_loader = StreamLoader(make_stream(sharded), num_workers=num_workers)
    full = []
    for batch in full_loader:
        full_loader.advance()
        full.append(batch["utt_ids"])
    assert len(full) >= 5
    for stop in (1, 3):
        loader = StreamLoader(make_stream(sharded), num_workers=num_workers)
        for index, batch in enumerate(loader):
            loader.advance()
            if index + 1 == stop:
                break
        state = loader.state_dict()
        state = torch.load(_roundtrip(state), weights_only=True)  # as a checkpoint stores it
        resumed = StreamLoader(make_stream(sharded), num_workers=num_workers)
        resumed.load_state_dict(state)
        assert resumed.position == stop
        rest = [b["utt_ids"] for b in resumed]
        assert rest == full[stop:], (stop, num_workers)


def _roundtrip(obj):
    import io

    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return buffer


def _finetune_cmd(model_dir, data_dir, out):
    return [sys.executable, "-m", "funasr_lite.bin.finetune", "--model_dir", model_dir, "--data_dir", data_dir,
            "--output_dir", str(out), "--dataset_type", "large", "--batch_bins", "5000", "--max_epoch", "2",
            "--lr", "1e-3", "--shard_size", "3", "--num_avg", "1", "++train_conf.save_every_steps=1",
            "++train_conf.log_interval=1", "++dataset_conf.num_workers=1", "++dataset_conf.bucket_size=4",
            "++train_conf.keep_nbest_models=0", "++train_conf.validate_cer=false", "++train_conf.best_metric=loss"]


def test_killed_large_finetuning_resumes_at_the_saved_shard_position(tmp_path):
    data_dir, waves, _ = make_example_data(str(tmp_path), num_train=12, num_valid=2, seed=5)
    model_dir = write_funasr_model_dir(str(tmp_path / "released"), waves.values())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FUNASR_LITE_NO_PROGRESS": "1", "PYTHONPATH": REPO_ROOT}
    whole = tmp_path / "whole"
    _run(_finetune_cmd(model_dir, data_dir, whole), env)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_finetune_cmd(model_dir, data_dir, killed), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    log = killed / "train.log"
    deadline = time.monotonic() + 1200
    while time.monotonic() < deadline and proc.poll() is None:
        if log.exists() and "epoch 1 step 2 " in log.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "train.done").exists(), "the run finished before it could be killed"
    _run(_finetune_cmd(model_dir, data_dir, killed), env)
    text = log.read_text()
    resumed = re.findall(r"shard stream resumes epoch 1 after batch (\d+): worker 0: shard (\d+) offset (\d+)", text)
    assert len(resumed) == 1 and int(resumed[0][0]) >= 1, text[-3000:]  # mid-epoch, at a recorded shard + offset
    # the killed-and-resumed run ends with exactly the weights of the uninterrupted one
    a = load_state_dict_file(str(whole / "model_dir" / "model.pt"))
    b = load_state_dict_file(str(killed / "model_dir" / "model.pt"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    before = load_state_dict_file(os.path.join(model_dir, "model.pt"))
    assert not all(torch.equal(a[k], before[k]) for k in a)
    assert len(read_kv(str(killed / "data" / "train" / "text"))) == 12


def test_make_shards_cli_names_unreadable_audio_and_shards_the_rest(tmp_path, caplog):
    from funasr_lite.bin import make_shards

    data_dir, waves, texts = make_example_data(str(tmp_path), num_train=4, num_valid=1)
    train = os.path.join(data_dir, "train")
    os.remove(read_kv(os.path.join(train, "wav.scp"))["utt_train_002"])
    list_path = tmp_path / "out" / "shards.list"
    assert make_shards.main(["--data_dir", train, "--out_dir", str(tmp_path / "out"), "--shard_list", str(list_path),
                             "--utts_per_shard", "2", "--nj", "2"]) == 0
    utts = [u for path in read_shard_list(str(list_path)) for _, u, _, _ in iter_shard(path)]
    assert utts == ["utt_train_000", "utt_train_001", "utt_train_003"]
    assert "utt_train_002" in caplog.text and "no such file" in caplog.text
    assert make_shards.main(["--data_dir", str(tmp_path / "nope"), "--out_dir", str(tmp_path / "o2"),
                             "--shard_list", str(tmp_path / "o2.list")]) == 1


def test_torchrun_two_ranks_large_path_uneven_shards(tmp_path):
    """2 ranks, 3 shards (2 + 1): the ranks agree to end the epoch when one runs out (no hang);
    rank 0 prepares the data while rank 1 waits for it; the model dir is written."""
    data_dir, waves, _ = make_example_data(str(tmp_path), num_train=8, num_valid=2, seed=9)
    model_dir = write_funasr_model_dir(str(tmp_path / "released"), waves.values())
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "FUNASR_LITE_NO_PROGRESS": "1", "PYTHONPATH": REPO_ROOT}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "funasr_lite.bin.finetune", "--model_dir", model_dir, "--data_dir", data_dir, "--output_dir", str(out),
           "--dataset_type", "large", "--batch_bins", "5000", "--shard_size", "3", "--max_epoch", "2", "--num_avg", "1",
           "++dataset_conf.num_workers=0", "++train_conf.log_interval=1"]
    _run(cmd, env)
    log = (out / "train.log").read_text()
    assert "on 2 process(es)" in log and "epoch 2 trained" in log
    assert len(read_shard_list(str(out / "data" / "train" / "shards.list"))) == 3
    assert os.path.isfile(out / "model_dir" / "model.pt")
