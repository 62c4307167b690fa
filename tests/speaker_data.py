"""Tiny speaker data dirs for the speaker tests: stored "fbank" whose mean depends on the speaker,
with the fbank.json that stage 1 writes, and a tiny x-vector config (shared by tests/train and
tests/e2e)."""

import os

import kaldiio
import numpy as np

from funasr_lite.frontend.wav_frontend import fbank_options, write_fbank_options
from funasr_lite.utils.config import resolve_frontend_conf

TINY_FRONTEND_CONF = {"fs": 16000, "window": "hamming", "n_mels": 8, "frame_length": 25, "frame_shift": 10}
TINY_MODEL_OVERRIDES = [
    "++encoder_conf.layers_in_block=[1,1,1,1]", "++encoder_conf.filters_in_block=[2,4,4,8]",
    "++encoder_conf.num_nodes_pooling_layer=8", "++decoder_conf.num_nodes_resnet1=6",
    "++decoder_conf.num_nodes_last_layer=5", "++frontend_conf.n_mels=8",
]


def write_speaker_data_dir(path, speakers, per_speaker, seed=0, n_mels=8, frames=(15, 40), prefix="S",
                           first_speaker=0, spread=1.5):
    """A data dir of ``speakers`` x ``per_speaker`` utterances: feats.ark/scp (each speaker's frames
    drawn around its own random mean, which depends on the speaker number only, so that a speaker
    sounds the same in every dir; ``seed`` draws the utterances), utt2spk, spk2utt, utt2num_frames, wav.scp (placeholder
    paths: only the stored features are read), fbank.json. Returns {utt: speaker}."""
    os.makedirs(path, exist_ok=True)
    rng = np.random.default_rng(seed)
    utt2spk = {}
    matrices = {}
    for s in range(first_speaker, first_speaker + speakers):
        speaker = f"{prefix}{s:04d}"
        mean = np.random.default_rng(10_000 + s).normal(scale=spread, size=n_mels)
        for u in range(per_speaker):
            utt = f"BAC009{speaker}W{u + 1:04d}"
            length = int(rng.integers(frames[0], frames[1] + 1))
            matrices[utt] = (mean + rng.normal(size=(length, n_mels))).astype(np.float32)
            utt2spk[utt] = speaker
    utts = sorted(utt2spk)
    with kaldiio.WriteHelper(f"ark,scp:{os.path.join(path, 'feats.ark')},{os.path.join(path, 'feats.scp')}") as writer:
        for utt in utts:
            writer(utt, matrices[utt])

    def write(name, lines):
        with open(os.path.join(path, name), "w", encoding="utf-8") as f:
            f.writelines(f"{line}\n" for line in lines)

    write("utt2spk", [f"{u} {utt2spk[u]}" for u in utts])
    write("utt2num_frames", [f"{u} {matrices[u].shape[0]}" for u in utts])
    write("wav.scp", [f"{u} /nonexistent/{u}.wav" for u in utts])
    write("text", [f"{u} 你好" for u in utts])
    speakers_of = sorted(set(utt2spk.values()))
    write("spk2utt", [f"{s} {' '.join(u for u in utts if utt2spk[u] == s)}" for s in speakers_of])
    conf = resolve_frontend_conf({**TINY_FRONTEND_CONF, "n_mels": n_mels})
    write_fbank_options(os.path.join(path, "fbank.json"), fbank_options(conf))
    return utt2spk
