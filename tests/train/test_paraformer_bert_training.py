"""ParaformerBert training on data dirs with per-token embeddings (dataset_conf.embeds: a Kaldi
ark of L x D matrices per utterance, here small random ones: no Chinese BERT is reachable)."""

import json
import logging
import os

import kaldiio
import numpy as np
import pytest
import torch

from funasr_lite.data.collate import collate_batch
from funasr_lite.data.dataset import AsrDataset, DatasetError
from funasr_lite.data.tokenizer import CharTokenizer
from funasr_lite.train.config import resolve_training_config
from funasr_lite.train.tasks.asr import run_training
from train_testkit import TOKENS, make_experiment, write_am_mvn_text

torch.set_num_threads(1)
EMBED_DIM = 6


def write_embeds(data_dir, dim=EMBED_DIM, seed=0, skip=(), wrong_rows=()):
    """embeds.scp/ark: one random row per character of each transcript (``skip``: left out;
    ``wrong_rows``: one row too many)."""
    rng = np.random.default_rng(seed)
    texts = dict(line.split(maxsplit=1) for line in open(os.path.join(data_dir, "text"), encoding="utf-8"))
    ark, scp = os.path.join(data_dir, "embeds.ark"), os.path.join(data_dir, "embeds.scp")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt, text in sorted(texts.items()):
            if utt in skip:
                continue
            rows = len(text.strip()) + (1 if utt in wrong_rows else 0)
            writer(utt, rng.normal(size=(rows, dim)).astype(np.float32))


def bert_experiment(tmp_path):
    paths = make_experiment(tmp_path, num_train=12, num_valid=4)
    with open(paths["config"], encoding="utf-8") as f:
        text = f.read()
    text = text.replace("model: Paraformer\n", "model: ParaformerBert\n").replace(
        "  sampling_ratio: 0.4\n", f"  sampling_ratio: 0.4\n  embeds_id: 0\n  embed_dims: {EMBED_DIM}\n"
                                   "  embeds_loss_weight: 2.0\n").replace("dataset_conf:\n", "dataset_conf:\n  embeds: embeds.scp\n")
    with open(paths["config"], "w", encoding="utf-8") as f:
        f.write(text)
    write_embeds(paths["train_data"], seed=1)
    write_embeds(paths["valid_data"], seed=2)
    return paths


def test_training_reads_the_embeddings_and_learns_the_distillation_term(tmp_path):
    paths = bert_experiment(tmp_path)
    config = resolve_training_config(paths["config"], ["++train_conf.max_epoch=4"], token_list=paths["token_list"],
                                     cmvn_file=paths["cmvn_file"], train_data=paths["train_data"],
                                     valid_data=paths["valid_data"], output_dir=paths["output_dir"])
    assert run_training(config, device="cpu")
    with open(os.path.join(paths["output_dir"], "epochs.jsonl"), encoding="utf-8") as f:
        epochs = [json.loads(line) for line in f]
    train_cos = [e["train"]["cos_loss"] for e in epochs]
    assert all(value > 0 for value in train_cos) and all(e["valid"]["cos_loss"] > 0 for e in epochs)
    assert train_cos[-1] < train_cos[0]  # the projection learns the (random) targets
    state = torch.load(os.path.join(paths["output_dir"], "model.avg2.pt"), weights_only=True)
    assert state["pro_nn.weight"].shape == (EMBED_DIM, 8)


def test_missing_and_misshapen_embeddings_are_named_and_counted(tmp_path, caplog):
    paths = make_experiment(tmp_path, num_train=6, num_valid=2)
    data = paths["train_data"]
    utts = sorted(line.split()[0] for line in open(os.path.join(data, "text"), encoding="utf-8"))
    write_embeds(data, skip={utts[0]}, wrong_rows={utts[1]})
    tokenizer = CharTokenizer(TOKENS)
    cmvn = write_am_mvn_text(tmp_path / "mvn4", [0.0] * 4, [1.0] * 4)
    with caplog.at_level(logging.WARNING):
        dataset = AsrDataset(data, tokenizer, cmvn_file=cmvn, embeds="embeds.scp")
    assert utts[0] not in dataset.utt_ids and len(dataset) == 5
    assert dataset.filter_summary.dropped["in feats.scp but not in embeds.scp"] == [utts[0]]
    bad = dataset.utt_ids.index(utts[1])
    assert "unreadable" in dataset[bad] and "one row per token" in dataset[bad]["unreadable"]
    good = [dataset[i] for i in range(len(dataset)) if i != bad]
    batch = collate_batch(good)
    assert batch["embed"].shape == (4, int(batch["text_lengths"].max()), EMBED_DIM)
    assert batch["embed_lengths"].tolist() == batch["text_lengths"].tolist()
    with pytest.raises(DatasetError, match="missing nope.scp"):
        AsrDataset(data, tokenizer, cmvn_file=cmvn, embeds="nope.scp")
