"""egs/aishell1/local/download_and_untar.sh on a tiny fake AISHELL-1 served via file://."""

import os
import subprocess
import tarfile

import numpy as np
import pytest
import soundfile

SCRIPT = os.path.join("egs", "aishell1", "local", "download_and_untar.sh")

SPEAKER_WAVS = {
    "S0002": ["train/S0002/BAC009S0002W0122", "train/S0002/BAC009S0002W0123"],
    "S0724": ["test/S0724/BAC009S0724W0121"],
}


def _write_wav(path, seed):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    audio = np.random.default_rng(seed).uniform(-0.1, 0.1, 1600).astype(np.float32)
    soundfile.write(path, audio, 16000, subtype="PCM_16")


def _make_fake_corpus(root, corrupt_speaker=None):
    """<root>/mirror/data_aishell.tgz shaped like OpenSLR's; returns the mirror dir."""
    staging = os.path.join(root, "staging")
    part = os.path.join(staging, "data_aishell")
    os.makedirs(os.path.join(part, "wav"))
    os.makedirs(os.path.join(part, "transcript"))
    speaker_files = os.path.join(staging, "speaker_files")
    for seed, (speaker, utts) in enumerate(SPEAKER_WAVS.items()):
        tarball = os.path.join(part, "wav", f"{speaker}.tar.gz")
        if speaker == corrupt_speaker:
            with open(tarball, "wb") as f:
                f.write(b"\x1f\x8b\x08\x00 this is not a gzip stream" * 10)
            continue
        with tarfile.open(tarball, "w:gz") as tar:
            for i, utt in enumerate(utts):
                wav = os.path.join(speaker_files, utt + ".wav")
                _write_wav(wav, seed * 10 + i)
                tar.add(wav, arcname=utt + ".wav")
    with open(os.path.join(part, "transcript", "aishell_transcript_v0.8.txt"), "w", encoding="utf-8") as f:
        f.write("BAC009S0002W0122 而 对 楼市\nBAC009S0002W0123 也 成为 地方\nBAC009S0724W0121 甚至 出现\n")
    mirror = os.path.join(root, "mirror")
    os.makedirs(mirror)
    with tarfile.open(os.path.join(mirror, "data_aishell.tgz"), "w:gz") as tar:
        tar.add(part, arcname="data_aishell")
    return mirror


def _run(repo_root, *args):
    return subprocess.run(["bash", SCRIPT, *args], cwd=repo_root, capture_output=True, text=True)


def test_download_untar_and_rerun(tmp_path, repo_root):
    mirror = _make_fake_corpus(str(tmp_path))
    data = tmp_path / "data"
    result = _run(repo_root, str(data), f"file://{mirror}", "data_aishell")
    assert result.returncode == 0, result.stderr

    part = data / "data_aishell"
    wavs = sorted(str(p.relative_to(part / "wav")) for p in (part / "wav").rglob("*.wav"))
    assert wavs == sorted(u + ".wav" for utts in SPEAKER_WAVS.values() for u in utts)
    audio, rate = soundfile.read(part / "wav" / "train" / "S0002" / "BAC009S0002W0122.wav")
    assert rate == 16000 and len(audio) == 1600
    assert list((part / "wav").glob("*.tar.gz")) == []  # inner tarballs removed
    assert (part / "transcript" / "aishell_transcript_v0.8.txt").is_file()
    assert (part / ".complete").is_file()
    assert (data / "data_aishell.tgz").is_file()  # kept without --remove-archive

    # A rerun is a no-op: it neither needs the archive nor touches the unpacked files.
    os.remove(data / "data_aishell.tgz")
    os.remove(os.path.join(mirror, "data_aishell.tgz"))
    marker_mtime = (part / ".complete").stat().st_mtime_ns
    wav_mtime = (part / "wav" / "test" / "S0724" / "BAC009S0724W0121.wav").stat().st_mtime_ns
    result = _run(repo_root, str(data), f"file://{mirror}", "data_aishell")
    assert result.returncode == 0, result.stderr
    assert "already complete" in result.stderr
    assert (part / ".complete").stat().st_mtime_ns == marker_mtime
    assert (part / "wav" / "test" / "S0724" / "BAC009S0724W0121.wav").stat().st_mtime_ns == wav_mtime
    assert not (data / "data_aishell.tgz").exists()


def test_remove_archive(tmp_path, repo_root):
    mirror = _make_fake_corpus(str(tmp_path))
    data = tmp_path / "data"
    result = _run(repo_root, "--remove-archive", str(data), f"file://{mirror}/", "data_aishell")
    assert result.returncode == 0, result.stderr
    assert not (data / "data_aishell.tgz").exists()
    assert (data / "data_aishell" / ".complete").is_file()


def test_corrupt_inner_tarball_is_named(tmp_path, repo_root):
    mirror = _make_fake_corpus(str(tmp_path), corrupt_speaker="S0724")
    data = tmp_path / "data"
    result = _run(repo_root, str(data), f"file://{mirror}", "data_aishell")
    assert result.returncode != 0
    assert "S0724.tar.gz" in result.stderr
    assert "S0002.tar.gz" not in result.stderr
    part = data / "data_aishell"
    assert not (part / ".complete").exists()
    # the good speaker is unpacked and its tarball removed; the bad one stays for inspection
    assert (part / "wav" / "train" / "S0002" / "BAC009S0002W0122.wav").is_file()
    assert not (part / "wav" / "S0002.tar.gz").exists()
    assert (part / "wav" / "S0724.tar.gz").exists()


@pytest.mark.parametrize("args, message", [
    (["only", "two"], "Usage"),
    (["DATA", "file:///nowhere", "data_foo"], "unknown corpus part"),
    (["DATA", "file:///nowhere/at/all", "resource_aishell"], "downloading file:///nowhere/at/all"),
])
def test_bad_arguments_fail_clearly(tmp_path, repo_root, args, message):
    args = [str(tmp_path / "data") if a == "DATA" else a for a in args]
    result = _run(repo_root, *args)
    assert result.returncode != 0
    assert message in result.stderr


def _fake_curl(tmp_path):
    """A directory holding a curl stand-in that writes 100 bytes, so no network is needed."""
    fakebin = tmp_path / "fakebin"
    fakebin.mkdir()
    curl = fakebin / "curl"
    curl.write_text('#!/usr/bin/env bash\nwhile [ $# -gt 0 ]; do\n  if [ "$1" = --output ]; then out=$2; fi\n'
                    '  shift\ndone\nhead -c 100 /dev/zero > "$out"\n')
    curl.chmod(0o755)
    return fakebin


def test_wrong_size_for_openslr_is_rejected(tmp_path, repo_root):
    # For the real OpenSLR URL a pre-existing archive of the wrong size is discarded, and a
    # download of the wrong size is not accepted.
    data = tmp_path / "data"
    data.mkdir()
    (data / "resource_aishell.tgz").write_bytes(b"too short")
    fakebin = _fake_curl(tmp_path)
    result = subprocess.run(
        ["bash", SCRIPT, str(data), "www.openslr.org/resources/33", "resource_aishell"],
        cwd=repo_root, capture_output=True, text=True,
        env={**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}"})
    assert result.returncode != 0
    assert "has 9 bytes, expected 1246920" in result.stderr
    assert "has 100 bytes, expected 1246920" in result.stderr
    assert not (data / "resource_aishell.tgz").exists()
    assert not (data / "resource_aishell" / ".complete").exists()
