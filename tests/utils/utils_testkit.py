"""Helpers shared by the tests of utils/ (a uniquely named module: conftest.py names clash)."""
import os

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
UTILS_DIR = os.path.join(REPO_ROOT, "utils")
VENV_BIN = os.path.join(REPO_ROOT, ".venv", "bin")


def tool_env(extra_path=()):
    """Environment of a recipe after path.sh: utils/ and the venv on PATH, the repo on PYTHONPATH."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([*extra_path, UTILS_DIR, VENV_BIN, env.get("PATH", "")])
    env["PYTHONPATH"] = REPO_ROOT
    env["LC_ALL"] = "C.UTF-8"
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # the job runner's thread rules start from unset
        env.pop(name, None)
    return env


def write_lines(path, lines):
    """Write lines exactly as given (order kept, so tests can make unsorted files)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)


def make_data_dir(path, utts, feats=False):
    """A valid data dir. ``utts``: {utt: (spk, transcript)}; wav paths are fake."""
    path = str(path)
    keys = sorted(utts, key=lambda u: u.encode())
    write_lines(os.path.join(path, "wav.scp"), [f"{u} /corpus/{u}.wav" for u in keys])
    write_lines(os.path.join(path, "text"), [f"{u} {utts[u][1]}" for u in keys])
    write_lines(os.path.join(path, "utt2spk"), [f"{u} {utts[u][0]}" for u in keys])
    spk2utt = {}
    for u in keys:
        spk2utt.setdefault(utts[u][0], []).append(u)
    write_lines(os.path.join(path, "spk2utt"),
                [f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt, key=lambda s: s.encode())])
    if feats:
        write_lines(os.path.join(path, "feats.scp"), [f"{u} /fbank/raw.1.ark:{i * 10 + 7}" for i, u in enumerate(keys)])
        write_lines(os.path.join(path, "utt2num_frames"), [f"{u} {100 + i}" for i, u in enumerate(keys)])
    return path


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


SMALL_CORPUS = {
    "S1-U1": ("S1", "你 好"),
    "S1-U2": ("S1", "再 见"),
    "S2-U3": ("S2", "早 上 好"),
    "S2-U4": ("S2", "谢 谢"),
    "S3-U5": ("S3", "好 的"),
}
