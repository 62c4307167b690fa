#!/usr/bin/env python3
"""Reliability drills: bad input of many kinds through the real entry points, classified.

    python tests/drills/run_drills.py [--work DIR] [--only KIND...] [--json drills.json]

Each drill builds one damaged input (audio, Kaldi files, configs, model dirs, tarballs) in a
fresh workspace (a tiny random-weight model dir, three good 1 s wavs), runs the stage's real
entry point in a new process (``python -m funasr_lite.bin.<tool>`` or the recipe's shell script)
and classifies what happened:

  clear error       non-zero exit, no traceback, stderr names the file / line / utterance
  skipped+counted   the bad item named and counted, the good ones done (exit status says so)
  handled           the odd input was accepted and processed correctly
  traceback         a Python traceback for a user error (always a failure)
  unclear error     non-zero exit without naming what is wrong
  silently accepted exit 0, the bad item neither named nor processed

and whether good items in the same run were lost (not in the output). A drill passes when its
outcome is one it allows and nothing good is lost where the stage can go on; KNOWN_FAILURES lists
drills that fail today, with the reason (shown in the table, never hidden). It prints a table and
writes JSON. tests/drills/test_drills.py runs every drill in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import drill_kit as kit  # noqa: E402

CLEAR, SKIPPED, HANDLED = "clear error", "skipped+counted", "handled"
TRACEBACK, UNCLEAR, SILENT = "traceback", "unclear error", "silently accepted"
GOOD_KEYS = ("good1", "good2", "good3")

# Drills that fail today: kind -> why. Reported in the table as KNOWN FAILURE, not as passes.
KNOWN_FAILURES: Dict[str, str] = {}


@dataclass
class Drill:
    kind: str                       # short id, unique
    stage: str                      # the entry point / stage it goes through
    what: str                       # the bad input, in words
    build: Callable[["Workspace"], "Plan"]
    allowed: Sequence[str] = (CLEAR,)


@dataclass
class Plan:
    """What to run and what to expect."""

    args: List[str]
    names: Sequence[str]            # any of these in the output counts as naming the bad thing
    bad_key: Optional[str] = None   # the bad item's key, when the stage goes on over many items
    good: Sequence[str] = ()        # keys that must come out
    output: Optional[str] = None    # infer: output_dir; compute_fbank: out_scp; tar: a file that must exist
    outside: Sequence[str] = ()     # paths that must NOT exist afterwards (traversal, pickled code)
    check: Optional[Callable[[], Optional[str]]] = None  # extra check: returns a problem or None


@dataclass
class Result:
    kind: str
    stage: str
    what: str
    outcome: str
    good_lost: str
    verdict: str
    exit_status: int
    message: str
    seconds: float
    notes: List[str] = field(default_factory=list)


class Workspace:
    """A model dir, good wavs and helpers to write the bad inputs, under one directory."""

    def __init__(self, root: str):
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.model_dir = os.path.join(root, "model")
        if not os.path.isfile(os.path.join(self.model_dir, "model.pt")):
            kit.write_model_dir(self.model_dir)
        self.wav_dir = os.path.join(root, "wav")
        os.makedirs(self.wav_dir, exist_ok=True)
        self.good = {}
        for index, key in enumerate(GOOD_KEYS):
            path = os.path.join(self.wav_dir, key + ".wav")
            if not os.path.exists(path):
                kit.write_wav(path, kit.synth_wave(1.0, seed=index))
            self.good[key] = path
        self.counter = 0

    def new_dir(self, name: str) -> str:
        self.counter += 1
        path = os.path.join(self.root, f"{self.counter:02d}_{name}")
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path)
        return path

    def copy_model_dir(self, name: str) -> str:
        path = os.path.join(self.new_dir(name), "model")
        shutil.copytree(self.model_dir, path)
        return path

    def wav_scp(self, directory: str, bad_lines: Sequence[str], name: str = "wav.scp") -> str:
        """good1, the bad lines, good2, good3 (sorted order kept when keys allow)."""
        lines = [f"good1 {self.good['good1']}", *bad_lines, f"good2 {self.good['good2']}",
                 f"good3 {self.good['good3']}"]
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def data_dir(self, directory: str) -> str:
        """A valid data dir (wav.scp, text, utt2spk, spk2utt) of the three good wavs."""
        path = os.path.join(directory, "data")
        os.makedirs(path)
        files = {
            "wav.scp": [f"{k} {v}" for k, v in self.good.items()],
            "text": [f"{k} 的一是" for k in self.good],
            "utt2spk": [f"{k} spk1" for k in self.good],
            "spk2utt": ["spk1 " + " ".join(self.good)],
        }
        for name, lines in files.items():
            with open(os.path.join(path, name), "w", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        return path


# ---------------------------------------------------------------- drills: audio in a wav.scp


def _infer_scp(ws: Workspace, directory: str, scp: str) -> List[str]:
    return ["infer", "--model_dir", ws.model_dir, "--wav_scp", scp, "--output_dir", os.path.join(directory, "out")]


def audio_drill(kind: str, what: str, make: Callable[[Workspace, str], Optional[str]],
                allowed=(SKIPPED,), names_extra: Sequence[str] = ()) -> Drill:
    """One bad audio file between good ones in a wav.scp, through infer."""

    def build(ws: Workspace) -> Plan:
        directory = ws.new_dir(kind)
        bad = make(ws, directory)
        if bad is None:
            raise DrillUnavailable("scipy's test wavs are not installed")
        scp = ws.wav_scp(directory, [f"bad {bad}"])
        return Plan(_infer_scp(ws, directory, scp), names=[bad, "bad", *names_extra], bad_key="bad",
                    good=GOOD_KEYS, output=os.path.join(directory, "out"))

    return Drill(kind, "infer --wav_scp", what, build, allowed)


class DrillUnavailable(Exception):
    """A drill whose input cannot be made here (e.g. scipy missing)."""


def _file(name: str, content: bytes) -> Callable[[Workspace, str], str]:
    def make(ws, directory):
        path = os.path.join(directory, name)
        with open(path, "wb") as f:
            f.write(content)
        return path
    return make


def _written(subtype: str, channels: int = 1, rate: int = kit.SAMPLE_RATE, file_format: str = "WAV",
             name: str = "odd.wav"):
    def make(ws, directory):
        wave = kit.synth_wave(1.0, seed=7, sample_rate=rate)
        samples = np.stack([wave * (0.5 + 0.1 * c) for c in range(channels)], axis=1) if channels > 1 else wave
        return kit.write_wav(os.path.join(directory, name), samples, rate, subtype=subtype, file_format=file_format)
    return make


def _scipy(name: str):
    def make(ws, directory):
        source = kit.scipy_test_wav(name)
        if source is None:
            return None
        return shutil.copy(source, os.path.join(directory, name))
    return make


def _truncated(ws, directory):
    return kit.truncate(ws.good["good1"], os.path.join(directory, "truncated.wav"), 0.6)


def _no_data_chunk(ws, directory):
    return kit.wav_without_data_chunk(ws.good["good1"], os.path.join(directory, "no_data.wav"))


def _missing(ws, directory):
    return os.path.join(directory, "does_not_exist.wav")


def _a_directory(ws, directory):
    path = os.path.join(directory, "a_directory.wav")
    os.makedirs(path)
    return path


import numpy as np  # noqa: E402  (used by the audio makers above)

AUDIO_DRILLS = [
    audio_drill("audio_empty_file", "0-byte .wav", _file("empty.wav", b"")),
    audio_drill("audio_text_file", "a text file named .wav", _file("text.wav", "这不是音频\n".encode())),
    audio_drill("audio_truncated", "wav cut at 60% (header says more)", _truncated),
    audio_drill("audio_no_data_chunk", "RIFF/fmt header, no data chunk", _no_data_chunk),
    audio_drill("audio_missing", "wav.scp names a file that does not exist", _missing),
    audio_drill("audio_directory", "wav.scp names a directory", _a_directory),
    audio_drill("audio_2ch", "2-channel 16-bit wav", _written("PCM_16", channels=2), allowed=(HANDLED, SKIPPED)),
    audio_drill("audio_5ch_5bit", "scipy: 5 channels, 5-bit samples, 8 kHz",
                _scipy("test-8000Hz-le-5ch-9S-5bit.wav"), allowed=(HANDLED, SKIPPED)),
    audio_drill("audio_3ch_36bit", "scipy: 3 channels, 36-bit samples",
                _scipy("test-8000Hz-le-3ch-5S-36bit.wav"), allowed=(HANDLED, SKIPPED)),
    audio_drill("audio_early_eof", "scipy: data chunk ends early",
                _scipy("test-44100Hz-le-1ch-4bytes-early-eof.wav"), allowed=(SKIPPED,)),
    audio_drill("audio_incomplete_chunk", "scipy: incomplete chunk header",
                _scipy("test-44100Hz-le-1ch-4bytes-incomplete-chunk.wav"), allowed=(SKIPPED,)),
    audio_drill("audio_8bit_unsigned", "8-bit unsigned PCM", _written("PCM_U8"), allowed=(HANDLED,)),
    audio_drill("audio_24bit", "24-bit PCM", _written("PCM_24"), allowed=(HANDLED,)),
    audio_drill("audio_float64", "64-bit float wav", _written("DOUBLE"), allowed=(HANDLED,)),
    audio_drill("audio_ulaw", "u-law wav", _written("ULAW"), allowed=(HANDLED,)),
    audio_drill("audio_rf64", "RF64 container", _written("PCM_16", file_format="RF64"), allowed=(HANDLED,)),
    audio_drill("audio_8khz", "8 kHz wav (resampled by default)", _written("PCM_16", rate=8000), allowed=(HANDLED,)),
    audio_drill("audio_pipe_fails", "wav.scp pipe command that exits 1", lambda ws, d: "false |",
                names_extra=["false |", "status 1"]),
]


# ---------------------------------------------------------------- drills: Kaldi files


def _scp_drill(kind: str, what: str, lines_of: Callable[[Workspace], List[str]], allowed, names,
               bad_key: Optional[str] = None, good=GOOD_KEYS, raw: Optional[Callable[[Workspace], bytes]] = None,
               tool: str = "infer") -> Drill:
    """A wav.scp with a format problem, through infer (or compute_fbank)."""

    def build(ws: Workspace) -> Plan:
        directory = ws.new_dir(kind)
        scp = os.path.join(directory, "wav.scp")
        with open(scp, "wb") as f:
            f.write(raw(ws) if raw else ("\n".join(lines_of(ws)) + "\n").encode("utf-8"))
        if tool == "infer":
            return Plan(_infer_scp(ws, directory, scp), names=[scp, *names], bad_key=bad_key, good=good,
                        output=os.path.join(directory, "out"))
        out = os.path.join(directory, "feats")
        args = ["compute_fbank", "--wav_scp", scp, "--out_ark", out + ".ark", "--out_scp", out + ".scp",
                "--out_utt2num_frames", out + ".utt2num_frames"]
        return Plan(args, names=[scp, *names], bad_key=bad_key, good=good, output=out + ".scp")

    return Drill(kind, f"{tool} --wav_scp", what, build, allowed)


def _good_lines(ws: Workspace) -> List[str]:
    return [f"{k} {v}" for k, v in ws.good.items()]


SCP_DRILLS = [
    _scp_drill("scp_unsorted", "wav.scp not sorted by key", lambda ws: _good_lines(ws)[::-1], (HANDLED,), [],
               bad_key="good3"),
    _scp_drill("scp_duplicate_key", "the same key on two lines",
               lambda ws: [*_good_lines(ws), f"good2 {ws.good['good1']}"], (CLEAR,), ["good2", "duplicate"], good=()),
    _scp_drill("scp_non_utf8", "Latin-1 bytes in a path", None, (CLEAR, SKIPPED), [":2"], good=(),
               raw=lambda ws: (f"good1 {ws.good['good1']}\n").encode() + b"caf\xe9 /tmp/caf\xe9.wav\n"
               + (f"good2 {ws.good['good2']}\n").encode()),
    _scp_drill("scp_crlf", "Windows line endings (CRLF)", None, (HANDLED,), [], bad_key="good2",
               raw=lambda ws: "".join(f"{line}\r\n" for line in _good_lines(ws)).encode()),
    _scp_drill("scp_missing_field", "a key without a path", lambda ws: [*_good_lines(ws)[:1], "lonely",
                                                                         *_good_lines(ws)[1:]],
               (CLEAR, SKIPPED), ["lonely", ":2"], good=()),
    _scp_drill("scp_key_with_space", "a key with a space ('utt 1 path')",
               lambda ws: [*_good_lines(ws), f"my utt {ws.good['good1']}"], (CLEAR, SKIPPED), ["my", "utt "]),
    _scp_drill("scp_bom", "UTF-8 byte-order mark before the first key", None, (HANDLED, CLEAR), ["BOM", "\ufeff"],
               bad_key="good1", raw=lambda ws: ("\ufeff" + "\n".join(_good_lines(ws)) + "\n").encode()),
    _scp_drill("scp_empty", "an empty wav.scp", lambda ws: [], (CLEAR,), ["empty", "no utterances", "nothing"],
               good=()),
    _scp_drill("fbank_truncated_wav", "compute_fbank: truncated wav between good ones",
               lambda ws: [f"good1 {ws.good['good1']}", f"good2 {ws.good['good2']}",
                           f"good2x {kit.truncate(ws.good['good1'], ws.good['good1'] + '.cut.wav', 0.5)}",
                           f"good3 {ws.good['good3']}"],
               (SKIPPED,), ["good2x", "truncated"], bad_key="good2x", tool="compute_fbank"),
    _scp_drill("fbank_missing_file", "compute_fbank: a wav that does not exist",
               lambda ws: [*_good_lines(ws)[:2], "good2y /nonexistent/x.wav", _good_lines(ws)[2]],
               (SKIPPED,), ["good2y", "/nonexistent/x.wav"], bad_key="good2y", tool="compute_fbank"),
]


def datadir_drill(kind: str, what: str, edit: Callable[[str], None], names: Sequence[str],
                  allowed=(CLEAR,)) -> Drill:
    """A data dir with one broken file, through validate_data_dir (data_dir_tools validate)."""

    def build(ws: Workspace) -> Plan:
        data = ws.data_dir(ws.new_dir(kind))
        edit(data)
        return Plan(["data_dir_tools", "validate", "--no-feats", data], names=names)

    return Drill(kind, "validate_data_dir", what, build, allowed)


def _rewrite(name: str, transform: Callable[[bytes], bytes]) -> Callable[[str], None]:
    def edit(data):
        path = os.path.join(data, name)
        with open(path, "rb") as f:
            content = f.read()
        with open(path, "wb") as f:
            f.write(transform(content))
    return edit


DATADIR_DRILLS = [
    datadir_drill("text_unsorted", "text not sorted",
                  _rewrite("text", lambda c: b"\n".join(c.strip().split(b"\n")[::-1]) + b"\n"), ["text", "sorted"]),
    datadir_drill("text_duplicate_key", "text with a key twice",
                  _rewrite("text", lambda c: c + c.split(b"\n")[0] + b"\n"), ["text:4", "good1"]),
    datadir_drill("text_non_utf8", "GBK-encoded transcript",
                  _rewrite("text", lambda c: c.replace("的一是".encode(), "的一是".encode("gbk"), 1)), ["text:1"]),
    datadir_drill("text_crlf", "text with CRLF line endings",
                  _rewrite("text", lambda c: c.replace(b"\n", b"\r\n")), ["text"], allowed=(HANDLED, CLEAR)),
    datadir_drill("utt2spk_missing_field", "utt2spk line without a speaker",
                  _rewrite("utt2spk", lambda c: c.replace(b"good2 spk1", b"good2")), ["utt2spk:2", "good2"]),
]


# ---------------------------------------------------------------- drills: configs


def config_drill(kind: str, what: str, text: Optional[str], names: Sequence[str], overrides: Sequence[str] = (),
                 raw: Optional[bytes] = None) -> Drill:
    """A training config with a mistake, through train (refused before any data is read)."""

    def build(ws: Workspace) -> Plan:
        directory = ws.new_dir(kind)
        conf = os.path.join(directory, "conf.yaml")
        with open(conf, "wb") as f:
            f.write(raw if raw is not None else text.encode("utf-8"))
        data = ws.data_dir(directory)
        tokens = os.path.join(ws.model_dir, "tokens.txt")
        args = ["train", "--config", conf, "--train_data", data, "--valid_data", data, "--token_list", tokens,
                "--cmvn_file", os.path.join(ws.model_dir, "am.mvn"), "--output_dir", os.path.join(directory, "exp"),
                *overrides]
        return Plan(args, names=names)

    return Drill(kind, "train --config", what, build, (CLEAR,))


def _config_text(**edits) -> str:
    import yaml

    config = kit.tiny_model_config()
    config.update({"train_conf": {"max_epoch": 1}, "dataset_conf": {"batch_bins": 1000}})
    for key, value in edits.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return yaml.safe_dump(config, allow_unicode=True)


CONFIG_DRILLS = [
    config_drill("config_key_typo", "top-level key misspelt (encoder_cnf)",
                 _config_text().replace("encoder_conf:", "encoder_cnf:"), ["encoder_cnf"]),
    config_drill("config_train_conf_typo", "train_conf.max_epochs (typo)",
                 _config_text(train_conf={"max_epochs": 3}), ["max_epochs"]),
    config_drill("config_wrong_type", "train_conf.max_epoch: 'ten'", _config_text(train_conf={"max_epoch": "ten"}),
                 ["max_epoch"]),
    config_drill("config_block_wrong_type", "encoder_conf is a list", _config_text(encoder_conf=[1, 2]),
                 ["encoder_conf"]),
    config_drill("config_not_yaml", "a config that is not YAML", "model: Paraformer\n  encoder: [unclosed\n",
                 ["conf.yaml"]),
    config_drill("config_non_utf8", "a GBK-encoded config", None, ["conf.yaml"],
                 raw=("# 配置\n" + _config_text()).encode("gbk")),
    config_drill("config_top_level_list", "a YAML list, not a mapping", "- model\n- encoder\n", ["conf.yaml"]),
    config_drill("override_typo", "++train_conf.max_epoc=3", _config_text(), ["max_epoc"],
                 overrides=["++train_conf.max_epoc=3"]),
    config_drill("override_bad_yaml", "++optim_conf.lr=[1e-3 (bad YAML)", _config_text(), ["optim_conf.lr", "[1e-3"],
                 overrides=["++optim_conf.lr=[1e-3"]),
]


# ---------------------------------------------------------------- drills: model dirs


def model_drill(kind: str, what: str, spoil: Callable[[str, str], Optional[str]], names: Sequence[str],
                allowed=(CLEAR,)) -> Drill:
    """A model dir with one spoilt file, through infer (refused before decoding anything)."""

    def build(ws: Workspace) -> Plan:
        model = ws.copy_model_dir(kind)
        directory = os.path.dirname(model)
        marker = spoil(model, directory)
        args = ["infer", "--model_dir", model, "--wav", ws.good["good1"], "--output_dir",
                os.path.join(directory, "out")]
        return Plan(args, names=names, outside=[marker] if marker else [])

    return Drill(kind, "infer --model_dir", what, build, allowed)


def _drop_tokens(model, directory):
    path = os.path.join(model, "tokens.txt")
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split()
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens[:-6] + tokens[-1:]) + "\n")  # <unk> kept: only the size is wrong


def _mvn_80(model, directory):
    kit.write_am_mvn_by_hand(os.path.join(model, "am.mvn"), 80)


def _truncate_model(model, directory):
    path = os.path.join(model, "model.pt")
    kit.truncate(path, path + ".tmp", 0.5)
    os.replace(path + ".tmp", path)


def _pickled_code(model, directory):
    marker = os.path.join(directory, "PWNED")
    kit.write_malicious_checkpoint(os.path.join(model, "model.pt"), marker,
                                   with_weights_from=os.path.join(model, "model.pt"))
    return marker


def _legacy_pickle(model, directory):
    marker = os.path.join(directory, "PWNED_LEGACY")
    kit.write_malicious_pickle(os.path.join(model, "model.pt"), marker)
    return marker


def _remove(name):
    def spoil(model, directory):
        os.remove(os.path.join(model, name))
    return spoil


def _text_model(model, directory):
    with open(os.path.join(model, "model.pt"), "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")  # an LFS pointer


MODEL_DRILLS = [
    model_drill("model_tokens_mismatch", "tokens.txt 5 tokens short of the model's vocabulary", _drop_tokens,
                ["tokens.txt", "vocab"]),
    model_drill("model_am_mvn_dim", "am.mvn of dimension 80 (model wants 560)", _mvn_80, ["am.mvn"]),
    model_drill("model_truncated", "model.pt cut in half", _truncate_model, ["model.pt"]),
    model_drill("model_pickled_code", "model.pt whose pickle runs code (plus the real weights)", _pickled_code,
                ["model.pt"]),
    model_drill("model_legacy_pickle", "model.pt: a plain pickle that runs code", _legacy_pickle, ["model.pt"]),
    model_drill("model_git_lfs_pointer", "model.pt is a git-lfs pointer (text)", _text_model, ["model.pt"]),
    model_drill("model_no_config", "config.yaml missing", _remove("config.yaml"), ["config.yaml"]),
    model_drill("model_no_am_mvn", "am.mvn missing", _remove("am.mvn"), ["am.mvn"]),
]


# ---------------------------------------------------------------- drills: tarballs


def tar_drill(kind: str, what: str, members: Callable[[str], Dict], names: Sequence[str],
              allowed=(CLEAR,), cut: bool = False, may_complete: bool = False) -> Drill:
    """A data_aishell.tgz served from a file:// mirror, through local/download_and_untar.sh."""

    def build(ws: Workspace) -> Plan:
        directory = ws.new_dir(kind)
        mirror = os.path.join(directory, "mirror")
        os.makedirs(mirror)
        base = os.path.join(directory, "corpus")
        spec = members(directory)
        tarball = kit.write_tarball(os.path.join(mirror, "resource_aishell.tgz"), spec["members"],
                                    spec.get("symlinks"))
        if cut:
            kit.truncate(tarball, tarball + ".cut", 0.5)
            os.replace(tarball + ".cut", tarball)
        script = os.path.join(kit.REPO_ROOT, "egs", "aishell1", "local", "download_and_untar.sh")
        return Plan([script, base, "file://" + mirror, "resource_aishell"], names=names,
                    outside=spec.get("outside", []),
                    check=lambda: None if may_complete or not os.path.exists(
                        os.path.join(base, "resource_aishell", ".complete"))
                    else "a .complete marker was written for a bad archive")

    return Drill(kind, "download_and_untar.sh", what, build, allowed)


def _traversal(directory):
    return {"members": {"resource_aishell/lexicon.txt": b"x\n", "resource_aishell/../../escaped.txt": b"evil\n"},
            "outside": [os.path.join(directory, "escaped.txt"), os.path.join(os.path.dirname(directory), "escaped.txt")]}


def _absolute(directory):
    target = os.path.join(directory, "absolute_escape.txt")
    return {"members": {"resource_aishell/lexicon.txt": b"x\n", target: b"evil\n"}, "outside": [target]}


def _symlink(directory):
    outside = os.path.join(directory, "outside_dir")
    os.makedirs(outside)
    return {"members": {"resource_aishell/lexicon.txt": b"x\n", "resource_aishell/link/escaped.txt": b"evil\n"},
            "symlinks": {"resource_aishell/link": outside}, "outside": [os.path.join(outside, "escaped.txt")]}


def _big(directory):
    return {"members": {f"resource_aishell/f{i}.bin": os.urandom(4096) for i in range(8)}}


TAR_DRILLS = [
    tar_drill("tar_path_traversal", "member '../../escaped.txt'", _traversal, [".."]),
    # GNU tar strips the leading '/': the member lands inside the target, the part is complete.
    tar_drill("tar_absolute_path", "member with an absolute path (unpacked inside the target)", _absolute,
              ["absolute_escape.txt"], allowed=(CLEAR, HANDLED), may_complete=True),
    tar_drill("tar_symlink_escape", "symlink to a dir outside, then a file through it", _symlink, ["link"]),
    tar_drill("tar_truncated", "archive cut in half", _big, ["resource_aishell.tgz"], cut=True),
]

ALL_DRILLS: List[Drill] = [*AUDIO_DRILLS, *SCP_DRILLS, *DATADIR_DRILLS, *CONFIG_DRILLS, *MODEL_DRILLS, *TAR_DRILLS]


# ---------------------------------------------------------------- classification


def _output_keys(plan: Plan) -> Optional[List[str]]:
    """Keys the stage produced (infer: 1best_recog/text; compute_fbank: out_scp), None if none."""
    if plan.output is None:
        return None
    path = os.path.join(plan.output, "1best_recog", "text") if os.path.isdir(plan.output) else plan.output
    if not os.path.isfile(path):
        return []
    with open(path, "rb") as f:
        return [line.split(maxsplit=1)[0].decode("utf-8", "replace") for line in f if line.strip()]


def _failed_keys(plan: Plan) -> List[str]:
    """Keys listed as failed beside the outputs (infer: 1best_recog/failed; fbank: <scp>.dropped)."""
    candidates = [os.path.join(plan.output, "1best_recog", "failed")] if plan.output and os.path.isdir(plan.output) \
        else [plan.output + ".dropped"] if plan.output else []
    keys = []
    for path in candidates:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                keys += [line.split(maxsplit=1)[0].decode("utf-8", "replace") for line in f if line.strip()]
    return keys


def classify(drill: Drill, plan: Plan, run: kit.ToolRun) -> Result:
    text = run.stderr + "\n" + run.stdout
    named = any(name and name in text for name in plan.names)
    keys = _output_keys(plan)
    notes = []
    if run.has_traceback:
        outcome = TRACEBACK
    elif plan.bad_key and keys and plan.bad_key in keys:
        outcome = HANDLED  # the odd item was processed
    elif run.returncode != 0 and not keys:
        outcome = CLEAR if named else UNCLEAR  # the whole run refused
    elif keys:  # the run went on over the other items
        if named:
            outcome = SKIPPED
            if plan.bad_key and plan.bad_key not in _failed_keys(plan):
                notes.append(f"{plan.bad_key} named but not listed in the failed/dropped file")
        else:
            outcome = SILENT if run.returncode == 0 else UNCLEAR
    elif run.returncode == 0:  # a stage without per-item output accepted the input
        outcome = HANDLED if HANDLED in drill.allowed else SILENT
    else:
        outcome = UNCLEAR
    lost = [k for k in plan.good if keys is None or k not in keys]
    for path in plan.outside:
        if os.path.lexists(path):
            notes.append(f"{path} was created")
    if plan.check is not None:
        problem = plan.check()
        if problem:
            notes.append(problem)
    ok = outcome in drill.allowed and not lost and not notes and outcome != TRACEBACK
    if drill.kind in KNOWN_FAILURES and not ok:
        verdict = "KNOWN FAILURE"
        notes.append(KNOWN_FAILURES[drill.kind])
    else:
        verdict = "ok" if ok else "FAIL"
    message = _first_error_line(run.stderr, plan.names) if outcome in (CLEAR, SKIPPED, UNCLEAR, TRACEBACK) else ""
    return Result(drill.kind, drill.stage, drill.what, outcome, f"yes ({len(lost)})" if lost else "no", verdict,
                  run.returncode, message, round(run.seconds, 1), notes)


_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (\([^)]*\) )?(\[rank \d+\] )?")


def _first_error_line(stderr: str, names: Sequence[str] = ()) -> str:
    """The line that says what went wrong (one naming the bad thing first), without the log prefix."""
    lines = [_LOG_PREFIX.sub("", line.strip()) for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith("INFO")]
    for marker in ("ERROR", "error:", "Error", "WARNING", "skipped", "failed", "tar:"):
        for line in lines:
            if marker in line and any(name and name in line for name in names):
                return line[:240]
    for marker in ("ERROR", "error:", "Error", "WARNING", "skipped", "failed", "tar:"):
        for line in lines:
            if marker in line:
                return line[:240]
    return lines[-1][:240] if lines else ""


def run_drill(drill: Drill, ws: Workspace) -> Result:
    try:
        plan = drill.build(ws)
    except DrillUnavailable as e:
        return Result(drill.kind, drill.stage, drill.what, "not run", "-", "not run", 0, str(e), 0.0)
    run = kit.run_tool(plan.args, cwd=ws.root)
    return classify(drill, plan, run)


def format_table(results: Sequence[Result]) -> str:
    header = "| kind | stage | bad input | outcome | good lost | verdict | message (first error line) |"
    rows = [header, "|---|---|---|---|---|---|---|"]
    for r in results:
        message = r.message.replace("|", "\\|")
        if len(message) > 110:
            message = message[:107] + "..."
        notes = ("; " + "; ".join(r.notes)) if r.notes else ""
        rows.append(f"| {r.kind} | {r.stage} | {r.what} | {r.outcome} | {r.good_lost} | {r.verdict}{notes} | {message} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", help="workspace (default: a temp dir, removed afterwards)")
    parser.add_argument("--only", nargs="+", help="run only these kinds (prefixes allowed)")
    parser.add_argument("--json", default="drills.json", help="where the results go")
    args = parser.parse_args(argv)
    drills = [d for d in ALL_DRILLS if not args.only or any(d.kind.startswith(o) for o in args.only)]
    root = args.work or tempfile.mkdtemp(prefix="drills_")
    try:
        ws = Workspace(root)
        results = []
        for drill in drills:
            result = run_drill(drill, ws)
            print(f"{result.verdict:>13}  {result.kind:<26} {result.outcome:<17} lost={result.good_lost}",
                  file=sys.stderr, flush=True)
            results.append(result)
    finally:
        if not args.work:
            shutil.rmtree(root, ignore_errors=True)
    print(format_table(results))
    counts = {}
    for r in results:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    print("\n" + ", ".join(f"{v}: {n}" for v, n in sorted(counts.items())) + f" (of {len(results)} drills)")
    with open(args.json, "w", encoding="utf-8") as f:
        json.dump({"results": [asdict(r) for r in results], "counts": counts}, f, indent=1, ensure_ascii=False)
    return 1 if counts.get("FAIL") else 0


if __name__ == "__main__":
    sys.exit(main())
