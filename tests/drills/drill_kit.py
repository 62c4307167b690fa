"""Building blocks of the reliability drills: a tiny random-weight model dir, good audio, damaged
files of every kind, a malicious pickle, and a helper that runs an entry point in a fresh process.

Used by tests/drills/run_drills.py, tests/drills/kill_drill.py, bench/benchmark_rss.py and the
tests under tests/drills/ and tests/reliability/.
"""

from __future__ import annotations

import copy
import io
import os
import pickle
import subprocess
import sys
import tarfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import soundfile
import torch
import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE_RATE = 16000
sys.path.insert(0, os.path.join(REPO_ROOT, "tests"))  # the drills run as scripts too: the shared test kits
from funasr_configs import tiny_paraformer_config  # noqa: E402  (tests/funasr_configs.py)
TOKENS = ["<blank>", "<s>", "</s>", *"的一是了我不人在他有这个上们来到时大地为子中你说", "<unk>"]
TRACEBACK = "Traceback (most recent call last)"


def tiny_model_config(d_model: int = 16) -> Dict:
    """A FunASR-schema config.yaml for a very small SAN-M Paraformer (LFR 7/6, 80 mel bins)."""
    return tiny_paraformer_config(d_model, heads=2, units=32, blocks=1, sample_rate=SAMPLE_RATE)


def write_am_mvn_by_hand(path: str, dim: int, shift: float = -10.0, scale: float = 0.25) -> str:
    """A Kaldi nnet1 am.mvn with constant shift/scale (fbank of these test sounds is ~10 +- 4)."""
    vector = lambda v: " ".join([repr(float(v))] * dim)  # noqa: E731
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"<Nnet>\n<Splice> {dim} {dim}\n[ 0 ]\n")
        f.write(f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {vector(shift)} ]\n")
        f.write(f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {vector(scale)} ]\n</Nnet>\n")
    return path


def write_model_dir(path: str, seed: int = 0, tokens: Sequence[str] = TOKENS, d_model: int = 16) -> str:
    """config.yaml, model.pt (plain state dict, random weights), am.mvn, tokens.txt."""
    from funasr_lite.models import build_model

    os.makedirs(path, exist_ok=True)
    config = tiny_model_config(d_model)
    torch.manual_seed(seed)
    model = build_model({**copy.deepcopy(config), "input_size": 560, "vocab_size": len(tokens)})
    with torch.no_grad():  # alphas near sigmoid(-0.8): a token every 3-4 frames, not none
        model.predictor.cif_output.bias.fill_(-0.8)
    torch.save(model.state_dict(), os.path.join(path, "model.pt"))
    with open(os.path.join(path, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, allow_unicode=True)
    with open(os.path.join(path, "tokens.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")
    write_am_mvn_by_hand(os.path.join(path, "am.mvn"), 560)
    return path


def synth_wave(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech-like float audio in [-1, 1]: gliding tones with syllable-rate envelopes, plus noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    wave = 0.003 * rng.standard_normal(n)
    for _ in range(4):
        f0, glide = rng.uniform(120, 1500), rng.uniform(-200, 200)
        envelope = np.clip(np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)), 0, None) ** 2
        wave += 0.12 * envelope * np.sin(2 * np.pi * (f0 + glide * t) * t)
    return np.clip(wave, -0.99, 0.99).astype(np.float32)


def write_wav(path: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16",
              file_format: str = "WAV") -> str:
    soundfile.write(path, samples, sample_rate, subtype=subtype, format=file_format)
    return path


def scipy_test_wav(name: str) -> Optional[str]:
    """A path to one of the odd wavs scipy's wheel ships in scipy/io/tests/data (None: no scipy)."""
    import importlib.util

    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "io", "tests", "data", name)
    return path if os.path.isfile(path) else None


# ---------------------------------------------------------------- damaged files


def truncate(src: str, dst: str, keep_fraction: float = 0.5) -> str:
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: max(1, int(len(data) * keep_fraction))])
    return dst


def wav_without_data_chunk(src: str, dst: str) -> str:
    """The RIFF header and fmt chunk of ``src`` only (the RIFF size fixed to match)."""
    with open(src, "rb") as f:
        data = f.read()
    position = data.find(b"data")
    head = bytearray(data[:position])
    head[4:8] = (len(head) - 8).to_bytes(4, "little")
    with open(dst, "wb") as f:
        f.write(bytes(head))
    return dst


class _MaliciousPayload:
    """Unpickling this runs ``open(marker, 'w')`` (a harmless stand-in for any code)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def write_malicious_checkpoint(path: str, marker: str, with_weights_from: Optional[str] = None) -> str:
    """A torch zip checkpoint whose pickle creates ``marker`` when unpickled with full pickle.

    With ``with_weights_from`` (a real model.pt), the real weights are kept beside the payload,
    so only the refusal of code, not a shape check, can stop it."""
    state: Dict = {}
    if with_weights_from:
        state.update(torch.load(with_weights_from, map_location="cpu", weights_only=True))
    state["payload"] = _MaliciousPayload(marker)
    torch.save(state, path)
    return path


def write_malicious_pickle(path: str, marker: str) -> str:
    """A plain (non-zip) pickle file with the same payload (legacy torch format)."""
    with open(path, "wb") as f:
        pickle.dump({"model": _MaliciousPayload(marker)}, f, protocol=2)
    return path


def write_tarball(path: str, members: Dict[str, bytes], symlinks: Optional[Dict[str, str]] = None) -> str:
    """A .tgz with the given member names (any name: '../x', '/abs/x') and optional symlinks."""
    with tarfile.open(path, "w:gz") as tar:
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return path


# ---------------------------------------------------------------- running entry points


@dataclass
class ToolRun:
    command: List[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def has_traceback(self) -> bool:
        return TRACEBACK in self.stderr or TRACEBACK in self.stdout


def subprocess_env(extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (REPO_ROOT, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    env["FUNASR_LITE_NO_PROGRESS"] = "1"
    env.update(extra or {})
    return env


def run_tool(args: Sequence[str], cwd: Optional[str] = None, timeout: float = 300,
             env: Optional[Dict[str, str]] = None) -> ToolRun:
    """Run ``python -m funasr_lite.bin.<tool> args`` (args[0] is the tool) or, when args[0] ends
    in .sh, ``bash <script> args``; never raises on a non-zero exit."""
    if args[0].endswith(".sh"):
        command = ["bash", *args]
    else:
        command = [sys.executable, "-m", f"funasr_lite.bin.{args[0]}", *args[1:]]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd or REPO_ROOT, env=subprocess_env(env), capture_output=True,
                            text=True, errors="replace", timeout=timeout, stdin=subprocess.DEVNULL)
    return ToolRun(command, result.returncode, result.stdout, result.stderr, time.perf_counter() - start)
