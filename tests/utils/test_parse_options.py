"""parse_options.sh: Kaldi semantics (--foo-bar x -> foo_bar=x, only known names, --config, bools)."""
import os

from utils_testkit import UTILS_DIR

DEMO = f"""set -euo pipefail
foo_bar=default
use_gpu=false
nj=1
help_message="Usage: demo.sh [--foo-bar X] [--use-gpu true|false] [--nj N] <args>"
. {UTILS_DIR}/parse_options.sh
echo "foo_bar=$foo_bar use_gpu=$use_gpu nj=$nj args=$*"
"""


def run_demo(run_tool, tmp_path, args):
    (tmp_path / "demo.sh").write_text(DEMO)
    return run_tool(f"bash demo.sh {args}")


def test_known_options_set_variables_and_keep_positionals(run_tool, tmp_path):
    result = run_demo(run_tool, tmp_path, "--foo-bar 'x y' --use-gpu true --nj=8 a b")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "foo_bar=x y use_gpu=true nj=8 args=a b"


def test_unknown_option_is_an_error_naming_it(run_tool, tmp_path):
    result = run_demo(run_tool, tmp_path, "--nj 2 --no-such-thing 3 a")
    assert result.returncode == 1
    assert "unknown option --no-such-thing" in result.stderr
    assert result.stdout == ""


def test_config_file_is_sourced_and_later_options_win(run_tool, tmp_path):
    (tmp_path / "my.conf").write_text("foo_bar=from_config\nnj=5\n")
    result = run_demo(run_tool, tmp_path, "--config my.conf --nj 6 x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "foo_bar=from_config use_gpu=false nj=6 args=x"
    missing = run_demo(run_tool, tmp_path, "--config nope.conf x")
    assert missing.returncode == 1 and "nope.conf" in missing.stderr


def test_boolean_option_only_takes_true_or_false(run_tool, tmp_path):
    result = run_demo(run_tool, tmp_path, "--use-gpu yes x")
    assert result.returncode == 1
    assert "--use-gpu takes true or false" in result.stderr
    ok = run_demo(run_tool, tmp_path, "--use-gpu false x")
    assert ok.returncode == 0 and "use_gpu=false" in ok.stdout


def test_parsing_stops_at_first_positional_argument(run_tool, tmp_path):
    result = run_demo(run_tool, tmp_path, "--nj 3 first --foo-bar x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "foo_bar=default use_gpu=false nj=3 args=first --foo-bar x"


def test_missing_value_and_help(run_tool, tmp_path):
    result = run_demo(run_tool, tmp_path, "--nj")
    assert result.returncode == 1 and "--nj needs a value" in result.stderr
    help_result = run_demo(run_tool, tmp_path, "--help")
    assert help_result.returncode == 0
    assert help_result.stdout.startswith("Usage: demo.sh")


def test_helper_variables_do_not_leak(run_tool, tmp_path):
    script = DEMO.replace('echo "foo_bar', 'compgen -v __po_ || true\necho "foo_bar')
    (tmp_path / "demo.sh").write_text(script)
    result = run_tool("bash demo.sh --nj 2 x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["foo_bar=default use_gpu=false nj=2 args=x"]
    assert os.access(os.path.join(UTILS_DIR, "parse_options.sh"), os.X_OK)


BLOCK_DEMO = f"""set -euo pipefail
cd /
# ---- options ----
stage=-1                   # first stage to run
nj=2
# decoding
decode_sets="dev test"     # data sets to decode
a_rather_long_option_name=long_default_value   # a long one
empty=                     # empty default
# ---- end of options ----
not_listed=1               # after the block
help_message="Usage: demo.sh [options]"
. {UTILS_DIR}/parse_options.sh
echo "stage=$stage"
"""


def test_help_lists_the_option_block_with_defaults_and_comments(run_tool, tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "demo.sh").write_text(BLOCK_DEMO)
    # Called by a relative path although the script cd's away before parsing the options.
    result = run_tool("bash sub/demo.sh --stage 3 --help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Usage: demo.sh [options]",
        "Options (--name value or --name=value; the default follows the name):",
        "  --stage -1                     first stage to run",  # the default as written, not --stage 3
        "  --nj 2",
        " decoding",
        '  --decode_sets "dev test"       data sets to decode',
        "  --a_rather_long_option_name long_default_value",
        "                                 a long one",
        '  --empty ""                     empty default',
    ]
    assert run_tool("bash sub/demo.sh --stage 3").stdout.strip() == "stage=3"


def test_help_without_an_option_block_prints_only_the_message(run_tool, tmp_path):
    result = run_demo(run_tool, tmp_path, "--help")
    assert result.returncode == 0
    assert result.stdout == "Usage: demo.sh [--foo-bar X] [--use-gpu true|false] [--nj N] <args>\n"
