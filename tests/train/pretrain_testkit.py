"""Tiny data dirs WITHOUT transcripts and a tiny data2vec config for the pretraining tests."""

import os

from train_testkit import random_utterances, write_am_mvn_text, write_data_dir

N_MELS = 8
# FunASR's released pretraining config's keys (egs/aishell2/data2vec_pretrain), a tiny encoder.
TINY_ENCODER = {
    "extractor_mode": "layer_norm", "conv_feature_layers": "[(16,2,2)] + [(16,2,2)]", "encoder_layers": 3,
    "encoder_embed_dim": 16, "encoder_ffn_embed_dim": 32, "encoder_attention_heads": 2, "conv_pos": 6,
    "conv_pos_groups": 2, "pos_conv_depth": 2, "average_top_k_layers": 2, "instance_norm_target_layer": True,
    "mask_prob": 0.65, "mask_length": 3, "encoder_layerdrop": 0.05, "ema_decay": 0.9, "ema_end_decay": 0.99,
    "ema_anneal_end_step": 20,
}


def make_audio_dirs(root, num_train=12, num_valid=4):
    """data/{train,dev} with feats.scp + utt2num_frames only (their text files removed), an
    identity am.mvn of N_MELS dims. Returns the paths."""
    root = str(root)
    paths = {}
    for name, count, seed in (("train", num_train, 1), ("dev", num_valid, 2)):
        path = os.path.join(root, "data", name)
        write_data_dir(path, random_utterances(count, seed, name[:2], 30, 80), N_MELS, seed=seed)
        os.unlink(os.path.join(path, "text"))
        paths[name] = path
    paths["cmvn"] = write_am_mvn_text(os.path.join(root, "am.mvn"), [0.0] * N_MELS, [1.0] * N_MELS)
    return paths


def pretrain_config_text(encoder_overrides=None, extra=""):
    encoder = dict(TINY_ENCODER, **(encoder_overrides or {}))
    lines = "\n".join(f"  {key}: {value!r}" if isinstance(value, str) else f"  {key}: {str(value).lower()}"
                      if isinstance(value, bool) else f"  {key}: {value}" for key, value in encoder.items())
    return f"""
model: data2vec
encoder: data2vec_encoder
encoder_conf:
{lines}
normalize: None
frontend_conf: {{fs: 16000, n_mels: {N_MELS}, lfr_m: 1, lfr_n: 1}}
optim: fairseq_adam
optim_conf: {{lr: 0.005, adam_betas: [0.9, 0.98], adam_eps: 1.0e-6, weight_decay: 0.01}}
scheduler: tri_stage
scheduler_conf: {{phase_ratio: [0.1, 0.6, 0.3]}}
dataset_conf: {{batch_bins: 200, bucket_size: 8, num_workers: 0}}
train_conf: {{max_epoch: 3, max_steps: 18, log_interval: 1, best_metric: loss, avg_nbest_model: 1,
             keep_nbest_models: 0, validate_cer: false}}
seed: 3
{extra}
"""


def write_pretrain_config(root, encoder_overrides=None, extra=""):
    path = os.path.join(str(root), "pretrain.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(pretrain_config_text(encoder_overrides, extra))
    return path
