"""Every entry point in funasr_lite/bin: ``--help`` exits 0, its usage line shows the real command
(``python -m funasr_lite.bin.X``, or the console script ``funasr-lite-x`` when run as one), every
option's default is shown; setup.py has a console script for each."""
import argparse
import importlib
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN_DIR = os.path.join(REPO, "funasr_lite", "bin")
MODULES = sorted(f[:-3] for f in os.listdir(BIN_DIR) if f.endswith(".py") and not f.startswith("_"))


def _help_of(module, argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        module.main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def _parsers(parser):
    """The parser and those of its subcommands."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_the_bin_directory_has_the_expected_tools():
    assert {"infer", "train", "train_lm", "compute_fbank", "compute_cmvn", "compute_cer"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_help_shows_the_real_command_and_every_default(name, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [os.path.join(BIN_DIR, f"{name}.py")])  # as `python -m` sets it
    module = importlib.import_module(f"funasr_lite.bin.{name}")
    text = _help_of(module, ["--help"], capsys)
    assert text.startswith(f"usage: python -m funasr_lite.bin.{name} ")
    assert f"{name}.py" not in text.splitlines()[0]
    parser = module.build_parser()
    checked = 0
    for sub in _parsers(parser):
        sub_help = " ".join(sub.format_help().split())  # the wrapping may split "(default: X)"
        for action in sub._actions:
            if not action.option_strings or action.required or action.default in (None, argparse.SUPPRESS):
                continue
            # The help text either states the default itself or gets "(default: X)" appended.
            assert (f"(default: {action.default})" in sub_help
                    or "default" in (action.help or "").lower()), f"{name}: {action.option_strings[0]} hides its default"
            checked += 1
    assert checked or name in ("export_model_dir", "compute_cer"), f"{name}: no option with a default?"


def test_console_script_name_in_usage_when_run_as_one(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["/venv/bin/funasr-lite-train-lm"])
    from funasr_lite.bin import train_lm

    assert _help_of(train_lm, ["--help"], capsys).startswith("usage: funasr-lite-train-lm ")


def test_python_dash_m_and_the_installed_console_script():
    result = subprocess.run([sys.executable, "-m", "funasr_lite.bin.average_checkpoints", "--help"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: python -m funasr_lite.bin.average_checkpoints ")
    assert "--num NUM" in result.stdout and "(default: 10)" in result.stdout
    # tools/setup.sh installs the package (pip install --no-deps -e .): the scripts sit beside python.
    script = os.path.join(os.path.dirname(sys.executable), "funasr-lite-compute-cmvn")
    assert os.path.exists(script), f"{script} missing: run tools/setup.sh (setup.py changed)"
    result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.startswith("usage: funasr-lite-compute-cmvn ")


def test_setup_py_declares_one_console_script_per_tool():
    import runpy

    import setuptools

    captured = {}
    original = setuptools.setup
    setuptools.setup = lambda **kwargs: captured.update(kwargs)
    try:
        runpy.run_path(os.path.join(REPO, "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
    scripts = dict(re.match(r"^(\S+) = (\S+)$", entry).groups() for entry in captured["entry_points"]["console_scripts"])
    assert scripts == {f"funasr-lite-{name.replace('_', '-')}": f"funasr_lite.bin.{name}:main" for name in MODULES}
    for name in MODULES:
        assert callable(importlib.import_module(f"funasr_lite.bin.{name}").main)
    requirements = captured["install_requires"]
    assert all(re.match(r"^[A-Za-z0-9_.-]+>=[\d.]+,<[\d.]+$", r) for r in requirements), requirements
    with open(os.path.join(REPO, "requirements.txt")) as f:
        pinned = {line.split("==")[0].lower(): line.split("==")[1].strip() for line in f if "==" in line}
    for requirement in requirements:  # every range admits the pinned, tested version
        name, low, high = re.match(r"^(\S+?)>=([\d.]+),<([\d.]+)$", requirement).groups()
        version = tuple(int(part) for part in pinned[name.lower()].split(".")[:3])
        assert tuple(int(p) for p in low.split(".")) <= version < tuple(int(p) for p in high.split(".")), requirement
