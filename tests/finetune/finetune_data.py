"""Helpers of the fine-tuning tests: a seed-style ``example_data`` (wavs + text) and model dirs.

``write_funasr_model_dir`` builds the model dir with the ``funasr`` package itself (its
Paraformer class, random weights, FunASR's config.yaml schema, tokens.json), so the fine-tuning
entry point is tested on a dir it did not write.
"""

import os

import numpy as np
import soundfile

from funasr_lite.frontend.cmvn import write_am_mvn
from funasr_lite.frontend.fbank import compute_fbank
from funasr_lite.frontend.lfr import lfr_stack
from funasr_configs import funasr_paraformer_config, funasr_sanm_confs  # tests/funasr_configs.py
from funasr_dirs import build_funasr_model, save_funasr_dir  # tests/funasr_dirs.py

SAMPLE_RATE = 16000
CHARS = "的一是了我不人在他有这个上们来到时大地为子中你说"
TOKENS = ["<blank>", "<s>", "</s>", *CHARS, "<unk>"]
# CIF output bias of the random model: it fires every 3-4 LFR frames, so outputs are not empty.
ALPHA_BIAS = -0.8


def synth_wave(seconds, seed, sample_rate=SAMPLE_RATE):
    """Speech-like int16 audio: gliding tones with syllable-rate envelopes, plus noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave = 0.003 * rng.standard_normal(n)
    for _ in range(4):
        f0 = rng.uniform(120, 1500)
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None) ** 2
        wave += 0.12 * envelope * np.sin(2 * np.pi * (f0 + rng.uniform(-200, 200) * t) * t)
    return np.round(np.clip(wave, -0.99, 0.99) * 32767).astype(np.int16)


def write_wav(path, samples, sample_rate=SAMPLE_RATE):
    soundfile.write(str(path), samples, sample_rate, subtype="PCM_16")
    return str(path)


def random_text(rng, length):
    return "".join(rng.choice(list(CHARS), size=length))


def make_example_data(root, num_train=8, num_valid=3, seed=0, prefix="utt"):
    """``<root>/example_data/{train,validation}/{text,wav.scp}`` + ``<root>/wavs/*.wav``.

    Returns (data_dir, {utt: int16 samples}, {utt: text}).
    """
    rng = np.random.default_rng(seed)
    data_dir = os.path.join(root, "example_data")
    wav_dir = os.path.join(root, "wavs")
    os.makedirs(wav_dir, exist_ok=True)
    waves, texts = {}, {}
    for split, count in (("train", num_train), ("validation", num_valid)):
        split_dir = os.path.join(data_dir, split)
        os.makedirs(split_dir, exist_ok=True)
        with open(os.path.join(split_dir, "wav.scp"), "w", encoding="utf-8") as wav_scp, \
                open(os.path.join(split_dir, "text"), "w", encoding="utf-8") as text:
            for i in range(count):
                utt = f"{prefix}_{split}_{i:03d}"
                seconds = float(rng.uniform(1.0, 2.5))
                waves[utt] = synth_wave(seconds, seed=seed * 1000 + len(waves))
                texts[utt] = random_text(rng, int(rng.integers(3, 7)))
                wav_scp.write(f"{utt} {write_wav(os.path.join(wav_dir, utt + '.wav'), waves[utt])}\n")
                text.write(f"{utt} {texts[utt]}\n")
    return data_dir, waves, texts


def write_cmvn_from_waves(path, waves, lfr_m=7, lfr_n=6):
    frames = []
    for samples in waves:
        fbank = compute_fbank(samples.astype(np.float32) / 32768.0)
        frames.append(lfr_stack(fbank, m=lfr_m, n=lfr_n)[0].numpy())
    frames = np.concatenate(frames).astype(np.float64)
    write_am_mvn(path, -frames.mean(0), 1.0 / np.maximum(frames.std(0), 1e-3))


ENCODER_CONF, DECODER_CONF = funasr_sanm_confs(output_size=32, linear_units=64, kernel_size=5)


def funasr_config():
    """A released model dir's config.yaml, tiny: FunASR's class names, files in the dir."""
    return dict(funasr_paraformer_config(ENCODER_CONF, DECODER_CONF, dither=1.0),
                scheduler="warmuplr", scheduler_conf={"warmup_steps": 30000})


# The released BiCif (paraformer-large-vad-punc) predictor_conf values, at this width.
BICIF_PREDICTOR_CONF = {"smooth_factor2": 0.25, "noise_threshold2": 0.01, "upsample_times": 3,
                        "use_cif1_cnn": False, "upsample_type": "cnn_blstm"}


def write_funasr_model_dir(path, cmvn_waves, seed=0, bicif=False, seaco=False, streaming=False):
    """A FunASR-format model dir whose weights are funasr's own Paraformer (random, seeded), its
    BiCifParaformer with ``bicif``, its SeacoParaformer with ``seaco``, its ParaformerStreaming
    with ``streaming``: config.yaml, model.pt, am.mvn, tokens.json. Returns the dir."""
    from funasr.models.bicif_paraformer.model import BiCifParaformer
    from funasr.models.paraformer.model import Paraformer as FunasrParaformer
    from funasr.models.seaco_paraformer.model import SeacoParaformer

    os.makedirs(path, exist_ok=True)
    config = funasr_config()
    if bicif or seaco:
        FunasrParaformer = SeacoParaformer if seaco else BiCifParaformer  # noqa: N806 (funasr's class name)
        config.update(model="SeacoParaformer" if seaco else "BiCifParaformer", predictor="CifPredictorV3",
                      predictor_conf=dict(config["predictor_conf"], **BICIF_PREDICTOR_CONF))
    if streaming:
        from funasr.models.paraformer_streaming.model import ParaformerStreaming

        FunasrParaformer = ParaformerStreaming  # noqa: N806 (funasr's class name)
        config.update(model="ParaformerStreaming", encoder="SANMEncoderChunkOpt", frontend="WavFrontendOnline")
        config["encoder_conf"] = dict(config["encoder_conf"], input_layer="pe_online", chunk_size=[12, 15],
                                      stride=[8, 10], pad_left=[0, 0], encoder_att_look_back_factor=[4, 4],
                                      decoder_att_look_back_factor=[1, 1])
        config["decoder_conf"] = dict(config["decoder_conf"], sanm_shfit=2)
    if seaco:
        width = ENCODER_CONF["output_size"]
        config.update(seaco_decoder="ParaformerSANMDecoder",
                      seaco_decoder_conf={"attention_heads": 4, "linear_units": 32, "num_blocks": 4, "kernel_size": 5,
                                          "use_output_layer": False, "wo_input_layer": True})
        config["model_conf"].update(inner_dim=width, NO_BIAS=0, train_decoder=False, seaco_lsm_weight=0.1)
    model = build_funasr_model(FunasrParaformer, config, len(TOKENS), seed, ALPHA_BIAS)
    save_funasr_dir(str(path), config, model, TOKENS, lambda mvn: write_cmvn_from_waves(mvn, list(cmvn_waves)))
    return str(path)
