"""Tiny Kaldi data dirs of generated tones for the trainer/learning-curve tool tests (one writer for both)."""

import kaldiio
import numpy as np
import soundfile

from funasr_lite.frontend.fbank import compute_fbank


def write_tone_data_dir(data_dir, wav_dir, durations, rng, prefix, texts_for, base_hz=180.0, step_hz=35.0):
    """wav.scp (16 kHz tones + noise), feats.scp (fbank of those wavs), text, utt2num_frames.

    Utterance ``i`` is a ``base_hz + step_hz * i`` tone of ``durations[i]`` seconds; its transcript is
    ``texts_for(rng)``. Returns ``(feats, texts)`` keyed ``f"{prefix}{i}"``.
    """
    data_dir.mkdir(parents=True)
    wav_dir.mkdir(parents=True, exist_ok=True)
    feats, wavs, texts = {}, {}, {}
    for i, seconds in enumerate(durations):
        key = f"{prefix}{i}"
        t = np.arange(int(16000 * seconds)) / 16000.0
        wave = 0.3 * np.sin(2 * np.pi * (base_hz + step_hz * i) * t) + 0.05 * rng.standard_normal(t.size)
        path = wav_dir / f"{key}.wav"
        soundfile.write(path, wave.astype(np.float32), 16000, subtype="PCM_16")
        samples, _ = soundfile.read(path, dtype="float32")
        feats[key] = compute_fbank(samples).numpy()
        wavs[key] = str(path)
        texts[key] = texts_for(rng)
    with kaldiio.WriteHelper(f"ark,scp:{data_dir / 'feats.ark'},{data_dir / 'feats.scp'}") as writer:
        for key, value in feats.items():
            writer(key, value)
    (data_dir / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in wavs.items()))
    (data_dir / "utt2num_frames").write_text("".join(f"{k} {len(v)}\n" for k, v in feats.items()))
    (data_dir / "text").write_text("".join(f"{k} {v}\n" for k, v in texts.items()), encoding="utf-8")
    return feats, texts
