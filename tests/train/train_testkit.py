"""Tiny data dirs, token lists, am.mvn files and configs for the training tests."""

import os
import sys

import kaldiio
import numpy as np

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTKIT_DIR = os.path.dirname(os.path.abspath(__file__))

CHARS = list("abcdef")
TOKENS = ["<blank>", "<s>", "</s>", *CHARS, "<unk>"]


def write_tokens(path, tokens=TOKENS):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    return str(path)


def write_am_mvn_text(path, shift, scale):
    """am.mvn in Kaldi nnet1 text, written here by hand (independent of the cmvn module)."""
    dim = len(shift)
    with open(path, "w", encoding="utf-8") as f:
        f.write("<Nnet>\n")
        f.write(f"<Splice> {dim} {dim}\n[ 0 ]\n")
        f.write(f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {' '.join(repr(float(v)) for v in shift)} ]\n")
        f.write(f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {' '.join(repr(float(v)) for v in scale)} ]\n")
        f.write("</Nnet>\n")
    return str(path)


def write_data_dir(path, utterances, n_mels=4, seed=0, extra_text=None):
    """utterances: [(utt_id, num_frames, text)] -> feats.ark/scp, text, utt2num_frames.

    Returns {utt_id: (T, n_mels) float32 matrix}. ``extra_text``: {utt_id: text} written to
    ``text`` only (no features).
    """
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    matrices = {}
    ark = os.path.join(path, "feats.ark")
    scp = os.path.join(path, "feats.scp")
    with kaldiio.WriteHelper(f"ark,scp:{ark},{scp}") as writer:
        for utt_id, frames, _ in sorted(utterances):
            matrix = rng.normal(size=(frames, n_mels)).astype(np.float32)
            writer(utt_id, matrix)
            matrices[utt_id] = matrix
    texts = {utt_id: text for utt_id, _, text in utterances}
    texts.update(extra_text or {})
    with open(os.path.join(path, "text"), "w", encoding="utf-8") as f:
        for utt_id in sorted(texts):
            f.write(f"{utt_id} {texts[utt_id]}\n")
    with open(os.path.join(path, "utt2num_frames"), "w", encoding="utf-8") as f:
        for utt_id, frames, _ in sorted(utterances):
            f.write(f"{utt_id} {frames}\n")
    return matrices


def random_utterances(count, seed, prefix="utt", min_frames=12, max_frames=40):
    rng = np.random.default_rng(seed)
    utterances = []
    for index in range(count):
        frames = int(rng.integers(min_frames, max_frames + 1))
        num_chars = int(rng.integers(1, 5))
        text = "".join(rng.choice(CHARS, size=num_chars))
        utterances.append((f"{prefix}{index:03d}", frames, text))
    return utterances


def tiny_config_text(n_mels=4, lfr_m=3, lfr_n=2, extra=""):
    """A FunASR-schema YAML for a tiny Paraformer (SANM encoder/decoder, CIF v2, CTC, SpecAugLFR)."""
    return f"""
model: Paraformer
model_conf:
  ctc_weight: 0.3
  lsm_weight: 0.1
  predictor_weight: 1.0
  sampling_ratio: 0.4
encoder: SANMEncoder
encoder_conf:
  output_size: 8
  attention_heads: 2
  linear_units: 16
  num_blocks: 2
  dropout_rate: 0.1
  positional_dropout_rate: 0.1
  kernel_size: 3
decoder: ParaformerSANMDecoder
decoder_conf:
  attention_heads: 2
  linear_units: 16
  num_blocks: 1
  att_layer_num: 1
  dropout_rate: 0.1
  kernel_size: 3
predictor: CifPredictorV2
predictor_conf:
  l_order: 1
  r_order: 1
  threshold: 1.0
specaug: SpecAugLFR
specaug_conf:
  apply_time_warp: false
  freq_mask_width_range: [0, 2]
  num_freq_mask: 1
  lfr_rate: {lfr_m - 1}
  time_mask_width_range: [0, 3]
  num_time_mask: 1
frontend: WavFrontend
frontend_conf:
  fs: 16000
  n_mels: {n_mels}
  frame_shift: 10
  lfr_m: {lfr_m}
  lfr_n: {lfr_n}
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
  best_metric: loss
dataset_conf:
  batch_bins: 60
  bucket_size: 8
  num_workers: 0
  max_frames: 100
seed: 3
{extra}
"""


def make_experiment(tmp_path, num_train=10, num_valid=4, extra="", n_mels=4, lfr_m=3, lfr_n=2):
    """Write train/dev data dirs, tokens.txt, am.mvn and conf.yaml under tmp_path; return paths."""
    root = str(tmp_path)
    write_data_dir(os.path.join(root, "data/train"), random_utterances(num_train, 1, "tr"), n_mels, seed=1)
    write_data_dir(os.path.join(root, "data/dev"), random_utterances(num_valid, 2, "dv"), n_mels, seed=2)
    tokens = write_tokens(os.path.join(root, "tokens.txt"))
    dim = n_mels * lfr_m
    cmvn = write_am_mvn_text(os.path.join(root, "am.mvn"), [0.0] * dim, [1.0] * dim)
    conf = os.path.join(root, "conf.yaml")
    with open(conf, "w", encoding="utf-8") as f:
        f.write(tiny_config_text(n_mels, lfr_m, lfr_n, extra))
    return {
        "config": conf,
        "train_data": os.path.join(root, "data/train"),
        "valid_data": os.path.join(root, "data/dev"),
        "token_list": tokens,
        "cmvn_file": cmvn,
        "output_dir": os.path.join(root, "exp"),
    }


def cli_args(paths, output_dir=None):
    args = []
    for key in ("config", "train_data", "valid_data", "token_list", "cmvn_file"):
        args += [f"--{key}", paths[key]]
    args += ["--output_dir", output_dir or paths["output_dir"]]
    return args


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, TESTKIT_DIR, env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    env["FUNASR_LITE_NO_PROGRESS"] = "1"
    return env


if TESTKIT_DIR not in sys.path:
    sys.path.insert(0, TESTKIT_DIR)
