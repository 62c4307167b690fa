"""The Conformer AED learns: a tiny one memorises two utterances and every search decodes them;
the trainer trains one (validation CER through attention greedy), and the exp dir decodes and
exports like a Paraformer's."""

import copy
import os
import sys

import torch

from funasr_lite.decode.aed_search import search_batch
from funasr_lite.models import build_model

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))

TEXT = torch.tensor([[3, 7, 5, 9, 4], [8, 6, 10, -1, -1]])
TEXT_LENGTHS = torch.tensor([5, 3])
CONFIG = {
    "model": "Conformer",
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1},
    "encoder": "ConformerEncoder",
    "encoder_conf": {"output_size": 32, "attention_heads": 4, "linear_units": 64, "num_blocks": 2,
                     "input_layer": "linear", "cnn_module_kernel": 3, "dropout_rate": 0.0,
                     "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0,
                     "pos_enc_layer_type": "rel_pos", "selfattention_layer_type": "rel_selfattn",
                     "macaron_style": True},
    "decoder": "TransformerDecoder",
    "decoder_conf": {"attention_heads": 4, "linear_units": 64, "num_blocks": 2, "dropout_rate": 0.0,
                     "positional_dropout_rate": 0.0},
    "input_size": 24,
    "vocab_size": 12,
}


def test_tiny_aed_memorises_two_utterances_and_every_search_finds_them():
    torch.manual_seed(0)
    model = build_model(copy.deepcopy(CONFIG))
    feats = torch.randn(2, 24, 24)
    lengths = torch.tensor([24, 17])
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(150):
        loss, stats, _ = model(feats, lengths, TEXT, TEXT_LENGTHS)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]
    assert float(stats["acc"]) == 1.0
    model.eval()
    expected = [[3, 7, 5, 9, 4], [8, 6, 10]]
    assert [r["token_ids"] for r in model.decode_greedy(feats, lengths)] == expected
    for mode, options in (("beam", {"beam_size": 4, "ctc_weight": 0.3}), ("ctc_greedy", {}), ("greedy", {})):
        outputs = search_batch(model, feats, lengths, mode, frame_ms=60.0, **options)
        assert [o["token_ids"] for o in outputs] == expected, mode
        assert [len(o["timestamp"]) for o in outputs] == [5, 3]


AED_TRAIN_CONFIG = """
model: Conformer
model_conf:
  ctc_weight: 0.3
  lsm_weight: 0.1
encoder: ConformerEncoder
encoder_conf:
  output_size: 8
  attention_heads: 2
  linear_units: 16
  num_blocks: 2
  input_layer: linear
  cnn_module_kernel: 3
decoder: TransformerDecoder
decoder_conf:
  attention_heads: 2
  linear_units: 16
  num_blocks: 1
specaug: SpecAugLFR
specaug_conf:
  apply_time_warp: false
  freq_mask_width_range: [0, 2]
  num_freq_mask: 1
  lfr_rate: 2
  time_mask_width_range: [0, 3]
  num_time_mask: 1
frontend: WavFrontend
frontend_conf:
  fs: 16000
  n_mels: 4
  frame_shift: 10
  lfr_m: 3
  lfr_n: 2
optim: adam
optim_conf:
  lr: 0.01
scheduler: warmuplr
scheduler_conf:
  warmup_steps: 4
train_conf:
  max_epoch: 2
  log_interval: 1
  keep_nbest_models: 10
  avg_nbest_model: 2
  best_metric: cer
dataset_conf:
  batch_bins: 60
  bucket_size: 8
  num_workers: 0
  max_frames: 100
seed: 3
"""


def test_trainer_trains_an_aed_and_its_exp_dir_decodes_and_exports(tmp_path):
    from train_testkit import make_experiment

    from funasr_lite.inference.speech2text import DecodeOptions, Speech2Text, items_from_data_dir
    from funasr_lite.export.model_dir import export_model_dir
    from funasr_lite.inference.model_dir import load_model_dir
    from funasr_lite.train.config import resolve_training_config
    from funasr_lite.train.tasks.asr import run_training

    paths = make_experiment(tmp_path)
    with open(paths["config"], "w", encoding="utf-8") as f:
        f.write(AED_TRAIN_CONFIG)
    config = resolve_training_config(
        paths["config"], [], token_list=paths["token_list"], cmvn_file=paths["cmvn_file"],
        train_data=paths["train_data"], valid_data=paths["valid_data"], output_dir=paths["output_dir"],
    )
    assert run_training(config, device="cpu")
    exp = paths["output_dir"]
    assert os.path.exists(os.path.join(exp, "model.avg2.pt"))
    with open(os.path.join(exp, "train.log"), encoding="utf-8") as f:
        assert "cer" in f.read()  # validation decoded with attention greedy
    loaded = load_model_dir(exp, "model.avg2.pt")
    assert type(loaded.model).__name__ == "Conformer"
    items = items_from_data_dir(paths["valid_data"], loaded.frontend)
    for mode, extra in (("greedy", {}), ("beam", {"beam_size": 3, "ctc_weight": 0.3}), ("ctc_greedy", {})):
        results = Speech2Text(loaded, DecodeOptions(decode_mode=mode, **extra)).decode(items)
        assert [r["key"] for r in results] == [item.key for item in items]
        assert all(len(r["timestamp"]) == len(r["token"]) for r in results)
    out = export_model_dir(exp, str(tmp_path / "model_dir"), "model.avg2.pt")
    exported = load_model_dir(out)
    greedy = DecodeOptions(decode_mode="greedy")
    assert ([r["text"] for r in Speech2Text(exported, greedy).decode(items)]
            == [r["text"] for r in Speech2Text(loaded, greedy).decode(items)])
