"""`bash egs/aishell1/run.sh --help` lists every option of run.sh's option block with its default
and meaning (generated from the block by utils/parse_options.sh, so it cannot drift)."""
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_SH = os.path.join(REPO, "egs", "aishell1", "run.sh")


def option_block():
    """[(name, default as written, comment)] of run.sh's option block, read here independently."""
    with open(RUN_SH, encoding="utf-8") as f:
        text = f.read()
    block = text.split("\n# ---- options", 1)[1].split("\n# ---- end of options", 1)[0]
    options = []
    for line in block.splitlines()[1:]:
        match = re.match(r'^([A-Za-z_]\w*)=("[^"]*"|\S*)\s*(?:#\s*(.*))?$', line)
        if match:
            options.append((match.group(1), match.group(2), (match.group(3) or "").strip()))
        else:
            assert line.startswith("#") or not line.strip(), f"run.sh option block: unexpected line {line!r}"
    return options


def test_run_sh_help_lists_every_option_with_default_and_meaning():
    options = option_block()
    assert len(options) >= 30 and options[0][0] == "stage"
    result = subprocess.run(["bash", RUN_SH, "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    help_text = result.stdout
    assert help_text.startswith("Usage: bash run.sh")
    for name, default, meaning in options:
        assert meaning, f"run.sh option {name} has no comment: the help would show no meaning"
        shown = default if default else '""'
        assert re.search(rf"^  --{name} {re.escape(shown)}(\s|$)", help_text, re.M), f"--{name} {shown} not listed"
        assert meaning in help_text, f"meaning of --{name} not shown"
    listed = re.findall(r"^  --(\w+) ", help_text, re.M)
    assert listed == [name for name, _, _ in options]  # every option, in the block's order, once
