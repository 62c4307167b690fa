"""Property-based tests of the text parsers: arbitrary file content (or override text) raises only
the project's own error types (DataDirError, CmvnError, TokenListError, ConfigError), whose
messages name the file, never a bare ValueError/UnicodeDecodeError/IndexError traceback.

Profiles: ``ci`` (default; derandomized, a fixed example set so CI is stable) and ``explore``
(``FUZZ_PROFILE=explore``: 5,000 random examples per parser, for hunting).
"""

import contextlib
import os
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from funasr_lite.data.char_timestamps import read_char_timestamps
from funasr_lite.data.datadir import DataDirError, read_kv, read_spk2utt
from funasr_lite.data.tokenizer import TokenListError, read_token_list
from funasr_lite.data.validate import validate_data_dir
from funasr_lite.inference.writers import read_1best_recog, read_rtf, read_scores, read_time_stamps
from funasr_lite.frontend.cmvn import CmvnError, read_am_mvn
from funasr_lite.utils.config import ConfigError, apply_overrides, load_yaml, parse_override

settings.register_profile("ci", max_examples=80, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=5000, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("FUZZ_PROFILE", "ci"))

OWN_ERRORS = (DataDirError, CmvnError, TokenListError, ConfigError)

# Pieces that reach the parsers' corners: Kaldi markers, numbers of every kind, odd whitespace
# (str.split() splits on \x1c-\x1f, \x85, \u2028 too), non-ASCII digits, JSON and YAML syntax.
PIECES = [
    "utt1", "utt2", "spk1", "a", "字", "é", "|", "-", "--5", "²", "١٢", "0", "1", "-1", "3.5", "1e309",
    "nan", "inf", "-inf", "1e-3", "<Nnet>", "</Nnet>", "<AddShift>", "<Rescale>", "<Splice>",
    "<LearnRateCoef>", "[", "]", "[ 0 ]", "[[0, 10]]", "[[0,10],[20,30]]", "[[\"a\", 1]]", "[[1,2,3]]",
    "{", "}", "null", "true", "%TOTAL", "<unk>", "<blank>", "\x00", "\r", "\t", "\x0b", "\x0c", "\x1c",
    "\x85", "\u2028", "\ufeff", "\udcff", "2001-02-30", "!!python/object:os.system", "&a", "*a", "? [1]",
]
SEPARATORS = [" ", "  ", "\t", "", "\r", " \x1c "]

piece = st.one_of(st.sampled_from(PIECES), st.text(max_size=4))
line = st.lists(st.tuples(piece, st.sampled_from(SEPARATORS)), max_size=8).map(
    lambda parts: "".join(p + s for p, s in parts))
text_file = st.lists(line, max_size=8).map("\n".join)
file_bytes = st.one_of(
    text_file.map(lambda text: text.encode("utf-8", "surrogatepass")),  # lone surrogates: invalid UTF-8
    st.binary(max_size=200),
    st.tuples(text_file, st.binary(max_size=8), text_file).map(
        lambda t: t[0].encode("utf-8", "replace") + t[1] + t[2].encode("utf-8", "replace")),
)


# One temp dir per example (hypothesis runs each test body many times; pytest's tmp_path is per
# test), removed when the example ends. The prefix names this process, so the check below counts
# only this run's dirs, not those of a run beside it.
TEMP_PREFIX = f"fuzz_parsers_{os.getpid()}_"


def _leftover_temp_dirs():
    return sorted(name for name in os.listdir(tempfile.gettempdir()) if name.startswith(TEMP_PREFIX))


@pytest.fixture(autouse=True)
def no_temp_dirs_left():
    assert _leftover_temp_dirs() == []
    yield
    assert _leftover_temp_dirs() == [], "fuzz examples left temp dirs behind"


@contextlib.contextmanager
def _example_dir(files):
    """A temp dir holding ``files`` (name -> bytes), removed with everything in it afterwards."""
    with tempfile.TemporaryDirectory(prefix=TEMP_PREFIX) as directory:
        for name, content in files.items():
            with open(os.path.join(directory, name), "wb") as f:
                f.write(content)
        yield directory


@contextlib.contextmanager
def _written(content: bytes, name: str):
    with _example_dir({name: content}) as directory:
        yield os.path.join(directory, name)


def test_example_dirs_are_removed_even_when_the_example_fails():
    with pytest.raises(RuntimeError):
        with _written(b"x", "file") as path:
            assert os.path.isfile(path) and os.path.basename(os.path.dirname(path)).startswith(TEMP_PREFIX)
            raise RuntimeError("a failing example")
    assert not os.path.exists(path) and _leftover_temp_dirs() == []


def _only_own_errors(function, *args):
    try:
        function(*args)
    except OWN_ERRORS as e:
        assert str(e), f"{type(e).__name__} without a message"


@pytest.mark.parametrize("reader", [read_kv, read_spk2utt, read_scores, read_time_stamps, read_rtf,
                                    read_char_timestamps], ids=lambda f: f.__name__)
def test_kaldi_key_value_readers_raise_only_data_dir_errors(reader):
    @given(file_bytes)
    def check(content):
        with _written(content, "file") as path:
            try:
                reader(path)
            except DataDirError as e:
                assert path in str(e), f"the message does not name the file: {e}"

    check()


@given(st.fixed_dictionaries({name: file_bytes for name in ("wav.scp", "text", "utt2spk")}))
def test_validate_data_dir_reports_or_raises_data_dir_errors(files):
    with _example_dir(files) as directory:
        _only_own_errors(validate_data_dir, directory, False, True)


@given(st.fixed_dictionaries({name: file_bytes for name in ("text", "token", "score", "time_stamp")}))
def test_read_1best_recog_raises_only_data_dir_errors(files):
    with _example_dir(files) as directory:
        try:
            read_1best_recog(directory)
        except DataDirError:
            pass


AM_MVN_PIECES = st.sampled_from(["<AddShift>", "<Rescale>", "<LearnRateCoef>", "[", "]", "2", "3", "0",
                                 "-1", "1.5", "nan", "1e309", "x", "<Nnet>", "\n", "²", "99999999999999999999"])


@given(st.one_of(file_bytes, st.lists(AM_MVN_PIECES, max_size=30).map(lambda t: " ".join(t).encode())))
def test_read_am_mvn_raises_only_cmvn_errors(content):
    with _written(content, "am.mvn") as path:
        try:
            read_am_mvn(path)
        except CmvnError as e:
            assert path in str(e)


@pytest.mark.parametrize("name", ["tokens.txt", "tokens.json"])
def test_read_token_list_raises_only_token_list_errors(name):
    json_like = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                             lambda children: st.lists(children, max_size=4), max_leaves=8)

    @given(st.one_of(file_bytes, json_like.map(lambda v: __import__("json").dumps(v).encode())))
    def check(content):
        with _written(content, name) as path:
            try:
                read_token_list(path)
            except TokenListError as e:
                assert path in str(e)

    check()


@given(st.one_of(file_bytes, st.lists(st.sampled_from(["a:", " b", "- c", "[", "]", "{", "}", ": 1", "\n",
                                                           "!!python/object/apply:os.system ['true']", "&x", "*x",
                                                           "2001-02-30", "? [1]", "\t"]), max_size=12)
                 .map(lambda t: "".join(t).encode())))
def test_load_yaml_raises_only_config_errors(content):
    with _written(content, "config.yaml") as path:
        try:
            load_yaml(path)
        except ConfigError as e:
            assert path in str(e)


override_text = st.one_of(
    st.text(max_size=30),
    st.tuples(st.sampled_from(["++", "+", ""]),
              st.lists(st.sampled_from(["train_conf", "max_epoch", "a", "", "optim_conf", "lr", "x.y"]),
                       max_size=4).map(".".join),
              st.sampled_from(["=", "==", ""]),
              st.one_of(st.sampled_from(PIECES), st.text(max_size=10),
                        st.sampled_from(["{a: [1, {b: 2001-02-30}]}", "{[1]: 2}", "!!binary x"])))
    .map("".join),
)


@given(st.lists(override_text, max_size=4))
def test_config_overrides_raise_only_config_errors(overrides):
    config = {"train_conf": {"max_epoch": 2}, "optim_conf": {"lr": 0.1}, "a": 1}
    for text in overrides:
        _only_own_errors(parse_override, text)
    _only_own_errors(apply_overrides, config, overrides)


def test_deeply_nested_values_are_config_errors(tmp_path):
    """Nesting deeper than Python's recursion limit (PyYAML's composer recurses per level)."""
    with pytest.raises(ConfigError, match="cannot read"):
        parse_override("++a=" + "[" * 3000)
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 3000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="deep.yaml"):
        load_yaml(path)
