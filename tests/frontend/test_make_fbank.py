"""utils/make_fbank.sh: nj=2 gives the same data dir as nj=1."""
import json
import os
import shutil
import subprocess

import kaldiio
import numpy as np
import soundfile as sf

from funasr_lite.data.datadir import read_kv


def make_data_dir(root):
    audio = root / "audio"
    audio.mkdir()
    rng = np.random.RandomState(7)
    wav_scp = {}
    for i, num_samples in enumerate([9000, 12000, 4000, 7000]):
        path = audio / f"spk1_utt{i}.wav"
        sf.write(str(path), rng.randint(-5000, 5000, num_samples).astype(np.int16), 16000, subtype="PCM_16")
        wav_scp[f"spk1_utt{i}"] = str(path)
        wav_scp[f"sp0.9-spk1_utt{i}"] = str(path)
    (audio / "broken.wav").write_bytes(b"garbage" * 100)
    wav_scp["spk2_broken"] = str(audio / "broken.wav")
    data = root / "data" / "train"
    data.mkdir(parents=True)
    (data / "wav.scp").write_text("".join(f"{k} {v}\n" for k, v in sorted(wav_scp.items())))
    (data / "utt2speed").write_text("".join(f"{k} 0.9\n" for k in sorted(wav_scp) if k.startswith("sp0.9")))
    return data


def run_make_fbank(repo_root, data, nj, tag):
    work = data.parent.parent
    command = (f". {repo_root}/path.sh && utils/make_fbank.sh --nj {nj} --cmd run_local.py "
               f"{data} {work}/log_{tag} {work}/fbank_{tag}")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(["bash", "-c", command], cwd=repo_root, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stderr


def test_nj2_equals_nj1(repo_root, tmp_path):
    data1 = make_data_dir(tmp_path)
    data2 = tmp_path / "data" / "train_nj2"
    shutil.copytree(data1, data2)

    log1 = run_make_fbank(repo_root, data1, 1, "nj1")
    log2 = run_make_fbank(repo_root, data2, 2, "nj2")
    for log in (log1, log2):
        assert "9 utterances, 8 with features, 1 dropped: 1 corrupt" in log

    assert len(list((tmp_path / "log_nj2").glob("make_fbank_train_nj2.*.log"))) == 2
    feats1 = dict(kaldiio.load_scp(str(data1 / "feats.scp")))
    feats2 = dict(kaldiio.load_scp(str(data2 / "feats.scp")))
    assert list(feats1) == sorted(feats1) and len(feats1) == 8 and "spk2_broken" not in feats1
    assert list(feats1) == list(feats2)
    for utt in feats1:
        np.testing.assert_array_equal(feats1[utt], feats2[utt])
    # The nj=2 features really live in two arks.
    arks = {value.rsplit(":", 1)[0] for value in read_kv(data2 / "feats.scp").values()}
    assert len(arks) == 2

    frames1 = read_kv(data1 / "utt2num_frames")
    assert frames1 == read_kv(data2 / "utt2num_frames")
    assert int(frames1["spk1_utt0"]) == 1 + (9000 - 400) // 160
    assert int(frames1["sp0.9-spk1_utt0"]) == 1 + (10000 - 400) // 160  # 9000 / 0.9 samples
    for data in (data1, data2):  # no --fbank-config: FunASR's defaults, recorded beside the features
        options = json.loads((data / "fbank.json").read_text())
        assert (options["n_mels"], options["frame_length"], options["window"], options["dither"]) == (80, 25.0, "hamming", 0.0)
    for data in (data1, data2):
        dropped = read_kv(data / "fbank.dropped")
        assert list(dropped) == ["spk2_broken"] and dropped["spk2_broken"].startswith("corrupt ")
