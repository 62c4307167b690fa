"""compute_fbank CLI on a tiny data set with every kind of bad utterance."""
import os
import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile as sf
import torch

from funasr_lite.bin.compute_fbank import main as compute_fbank_main
from funasr_lite.data.datadir import DataDirError, read_kv
from funasr_lite.frontend.audio import read_audio
from funasr_lite.frontend.fbank import compute_fbank, read_utt2speed
from funasr_lite.frontend.speed_perturb import speed_perturb

torch.set_num_threads(1)


def tool_env(repo_root):
    env = dict(os.environ, OMP_NUM_THREADS="1", FUNASR_LITE_NO_PROGRESS="1")
    env["PYTHONPATH"] = repo_root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def random_pcm(seed, num_samples):
    return np.random.RandomState(seed).randint(-6000, 6000, size=num_samples).astype(np.int16)


@pytest.fixture
def tiny_corpus(tmp_path):
    """wav.scp with 6 good entries (one a pipe, two speed-perturbed, one stereo) and 5 bad ones."""
    audio = tmp_path / "audio"
    audio.mkdir()
    for name, seed, num_samples in [("good1", 1, 16000), ("good2", 2, 8000), ("good3", 3, 11200)]:
        sf.write(str(audio / f"{name}.wav"), random_pcm(seed, num_samples), 16000, subtype="PCM_16")
    sf.write(str(audio / "narrow.wav"), random_pcm(4, 8000), 8000, subtype="PCM_16")  # 1 s at 8 kHz
    sf.write(str(audio / "stereo.wav"), np.stack([random_pcm(5, 4000), random_pcm(7, 4000)], axis=1), 16000,
             subtype="PCM_16")
    sf.write(str(audio / "short.wav"), random_pcm(6, 200), 16000, subtype="PCM_16")
    (audio / "garbage.wav").write_bytes(b"\x00\x01junk" * 300)
    full = (audio / "good1.wav").read_bytes()
    (audio / "truncated.wav").write_bytes(full[:5000])
    entries = {
        "good1": f"{audio}/good1.wav",
        "good2": f"{audio}/good2.wav",
        "good3": f"cat {audio}/good3.wav |",
        "sp0.9-good1": f"{audio}/good1.wav",
        "sp1.1-good2": f"{audio}/good2.wav",
        "bad_garbage": f"{audio}/garbage.wav",
        "bad_truncated": f"{audio}/truncated.wav",
        "missing": f"{audio}/not_there.wav",
        "narrow": f"{audio}/narrow.wav",
        "short": f"{audio}/short.wav",
        "stereo": f"{audio}/stereo.wav",
    }
    wav_scp = tmp_path / "wav.scp"
    wav_scp.write_text("".join(f"{k} {v}\n" for k, v in sorted(entries.items())))
    utt2speed = tmp_path / "utt2speed"
    utt2speed.write_text("good1 1.0\nsp0.9-good1 0.9\nsp1.1-good2 1.1\n")
    return tmp_path, entries


def run_cli(repo_root, work, resample):
    out = work / f"out_{resample}"
    args = [
        sys.executable, "-m", "funasr_lite.bin.compute_fbank",
        "--wav_scp", str(work / "wav.scp"), "--utt2speed", str(work / "utt2speed"),
        "--out_ark", str(out / "feats.1.ark"), "--out_scp", str(out / "feats.1.scp"),
        "--out_utt2num_frames", str(out / "utt2num_frames.1"), "--resample", resample,
    ]
    result = subprocess.run(args, env=tool_env(repo_root), capture_output=True, text=True, cwd=str(work))
    return result, out


def test_resample_false_drops_each_bad_utterance_and_writes_the_rest(repo_root, tiny_corpus):
    work, entries = tiny_corpus
    result, out = run_cli(repo_root, work, "false")
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert f"WARNING: utt bad_garbage ({entries['bad_garbage']}): corrupt: cannot decode" in log
    assert f"WARNING: utt bad_truncated ({entries['bad_truncated']}): corrupt: truncated" in log
    assert f"WARNING: utt missing ({entries['missing']}): missing: no such file, dropped" in log
    assert ("WARNING: utt narrow (%s): wrong sample rate: refused: 8000 Hz, expected 16000; "
            "pass --resample true, dropped" % entries["narrow"]) in log
    assert f"WARNING: utt short ({entries['short']}): too short: 200 samples" in log
    assert "11 utterances, 6 written, 5 dropped: 2 corrupt, 1 missing, 1 too short, 1 wrong sample rate" in log

    dropped = read_kv(out / "feats.1.scp.dropped")
    assert {utt: value.split()[0] for utt, value in dropped.items()} == {
        "bad_garbage": "corrupt", "bad_truncated": "corrupt", "missing": "missing",
        "narrow": "wrong_sample_rate", "short": "too_short",
    }
    assert sorted(os.listdir(out)) == ["feats.1.ark", "feats.1.scp", "feats.1.scp.dropped", "utt2num_frames.1"]

    written = dict(kaldiio.load_scp(str(out / "feats.1.scp")))
    assert sorted(written) == ["good1", "good2", "good3", "sp0.9-good1", "sp1.1-good2", "stereo"]
    # A stereo file is averaged to mono by default, as FunASR's loader does.
    mean = (random_pcm(5, 4000).astype(np.float64) + random_pcm(7, 4000)) / 2 / 32768.0
    np.testing.assert_allclose(written["stereo"], compute_fbank(mean.astype(np.float32)).numpy(), rtol=1e-5, atol=1e-4)
    num_frames = read_kv(out / "utt2num_frames.1")
    speeds = {"sp0.9-good1": 0.9, "sp1.1-good2": 1.1}
    for utt, feats in written.items():
        samples, rate, _ = read_audio(entries[utt])
        if utt in speeds:
            samples = speed_perturb(samples, rate, speeds[utt])
        expected = compute_fbank(samples, rate).numpy()
        assert feats.dtype == np.float32
        np.testing.assert_array_equal(feats, expected)
        assert int(num_frames[utt]) == expected.shape[0]
    # Independent frame counts: 1 + (N - 400) // 160, with N ≈ N0 / factor for perturbed copies.
    assert int(num_frames["good1"]) == 1 + (16000 - 400) // 160
    assert int(num_frames["good3"]) == 1 + (11200 - 400) // 160
    assert int(num_frames["sp0.9-good1"]) == 1 + (17778 - 400) // 160
    assert int(num_frames["sp1.1-good2"]) == 1 + (7273 - 400) // 160


def test_resample_true_keeps_the_8khz_file(repo_root, tiny_corpus):
    work, _ = tiny_corpus
    result, out = run_cli(repo_root, work, "true")
    assert result.returncode == 0, result.stderr
    assert "11 utterances, 7 written, 4 dropped: 2 corrupt, 1 missing, 1 too short" in result.stderr
    assert "(1 resampled to the target rate)" in result.stderr
    assert int(read_kv(out / "utt2num_frames.1")["narrow"]) == 1 + (16000 - 400) // 160


def test_exit_status_when_everything_fails_or_nothing_given(tmp_path):
    (tmp_path / "wav.scp").write_text(f"a {tmp_path}/x.wav\nb {tmp_path}/y.wav\n")
    common = ["--out_ark", str(tmp_path / "o.ark"), "--out_scp", str(tmp_path / "o.scp"),
              "--out_utt2num_frames", str(tmp_path / "o.u2nf")]
    assert compute_fbank_main(["--wav_scp", str(tmp_path / "wav.scp")] + common) == 1
    assert read_kv(tmp_path / "o.scp.dropped") == {"a": f"missing {tmp_path}/x.wav: no such file",
                                                   "b": f"missing {tmp_path}/y.wav: no such file"}
    (tmp_path / "empty.scp").write_text("")
    assert compute_fbank_main(["--wav_scp", str(tmp_path / "empty.scp")] + common) == 1
    (tmp_path / "broken.scp").write_text("a\n")
    assert compute_fbank_main(["--wav_scp", str(tmp_path / "broken.scp")] + common) == 1


def test_bad_utt2speed_is_refused_naming_the_line(tmp_path):
    (tmp_path / "utt2speed").write_text("a 0.9\nb fast\n")
    with pytest.raises(DataDirError, match=r"utt2speed:2: speed factor 'fast' for 'b' is not a number"):
        read_utt2speed(tmp_path / "utt2speed")
    (tmp_path / "utt2speed").write_text("a -1\n")
    with pytest.raises(DataDirError, match=r"utt2speed:1: speed factor -1.0 for 'a' is out of range"):
        read_utt2speed(tmp_path / "utt2speed")


def test_max_failures_makes_bad_utterances_fatal_and_writes_nothing(repo_root, tiny_corpus):
    work, entries = tiny_corpus
    out = work / "out_limit"
    common = ["--wav_scp", str(work / "wav.scp"), "--out_ark", str(out / "f.ark"), "--out_scp", str(out / "f.scp"),
              "--out_utt2num_frames", str(out / "u2nf")]
    # 5 bad utterances (resample false): a limit of 5 still finishes, 4 stops at the 5th (in wav.scp order).
    assert compute_fbank_main(common + ["--resample", "false", "--max_failures", "5"]) == 0
    assert len(read_kv(out / "f.scp.dropped")) == 5
    for name in os.listdir(out):
        os.unlink(out / name)
    args = [sys.executable, "-m", "funasr_lite.bin.compute_fbank", *common, "--resample", "false", "--max_failures", "0"]
    result = subprocess.run(args, env=tool_env(repo_root), capture_output=True, text=True, cwd=str(work))
    assert result.returncode == 1
    assert (f"ERROR: utt bad_garbage ({entries['bad_garbage']}): corrupt: cannot decode" in result.stderr
            and "more than max_failures=0: stopping, nothing written" in result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert os.listdir(out) == []  # no ark, scp, dropped list or temp file left behind


def test_channel_option_keeps_one_channel(tmp_path):
    left, right = random_pcm(5, 4000), random_pcm(7, 4000)
    sf.write(str(tmp_path / "stereo.wav"), np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    (tmp_path / "wav.scp").write_text(f"st {tmp_path}/stereo.wav\n")
    common = ["--wav_scp", str(tmp_path / "wav.scp"), "--out_ark", str(tmp_path / "o.ark"),
              "--out_scp", str(tmp_path / "o.scp"), "--out_utt2num_frames", str(tmp_path / "o.u2nf")]
    assert compute_fbank_main(common + ["--channel", "1"]) == 0
    written = dict(kaldiio.load_scp(str(tmp_path / "o.scp")))
    np.testing.assert_array_equal(written["st"], compute_fbank(right.astype(np.float32) / 32768.0).numpy())
    assert compute_fbank_main(common + ["--channel", "2"]) == 1  # its only utterance dropped
    assert read_kv(tmp_path / "o.scp.dropped")["st"].startswith("multichannel ")
