"""Files and URLs from strangers never run code and never escape their place.

* a checkpoint whose pickle runs code is refused without running it (every reader);
* YAML is read with a safe loader, ``torch.load`` always has ``weights_only=True``, nothing
  unpickles (checked on the source with ``ast``, and by behaviour);
* tarball extraction (``egs/aishell1/local/download_and_untar.sh``) writes nothing outside its
  target: ``../`` members, absolute paths, symlinks pointing out;
* URL input: http/https only (also after a redirect), a time limit per wait and for the whole
  transfer, a size limit — against a local HTTP server in a thread.
"""

import ast
import http.server
import os
import subprocess
import sys
import time

import pytest
import torch

from funasr_lite.api import AudioInputError, fetch_url
from funasr_lite.inference.model_dir import load_model_dir
from funasr_lite.models.load import CheckpointError, load_checkpoint
from funasr_lite.utils.config import ConfigError, load_yaml
from funasr_lite.utils.http_fetch import FetchError, fetch

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO_ROOT, "tests", "drills"))
import drill_kit as kit  # noqa: E402
from local_http import local_http_server  # tests/local_http.py

SOURCE_DIRS = ("funasr_lite", "tools", "bench", "utils", "egs")


# ---------------------------------------------------------------- pickled code


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return kit.write_model_dir(str(tmp_path_factory.mktemp("model")))


def test_the_malicious_checkpoint_really_runs_code_when_unpickled(tmp_path):
    """The payload is real: full unpickling creates the marker (so its absence below means something)."""
    marker = tmp_path / "ran"
    kit.write_malicious_checkpoint(str(tmp_path / "evil.pt"), str(marker))
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("writer", [kit.write_malicious_checkpoint, kit.write_malicious_pickle],
                         ids=["torch_zip", "legacy_pickle"])
def test_checkpoint_with_pickled_code_is_refused_without_running_it(tmp_path, writer):
    marker = tmp_path / "PWNED"
    path = writer(str(tmp_path / "model.pt"), str(marker))
    with pytest.raises(CheckpointError, match=r"model\.pt: cannot load checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_model_dir_with_pickled_code_is_refused_without_running_it(tmp_path, model_dir):
    import shutil

    evil_dir = tmp_path / "model"
    shutil.copytree(model_dir, evil_dir)
    marker = tmp_path / "PWNED"
    kit.write_malicious_checkpoint(str(evil_dir / "model.pt"), str(marker),
                                   with_weights_from=os.path.join(model_dir, "model.pt"))
    with pytest.raises(Exception, match=r"model\.pt") as info:
        load_model_dir(str(evil_dir))
    assert "Unsupported global" in str(info.value) or "weights_only" in str(info.value).lower() \
        or "cannot load" in str(info.value)
    assert not marker.exists()


def test_average_checkpoints_cli_refuses_pickled_code(tmp_path):
    marker = tmp_path / "PWNED"
    kit.write_malicious_checkpoint(str(tmp_path / "epoch_1.pt"), str(marker))
    kit.write_malicious_checkpoint(str(tmp_path / "epoch_2.pt"), str(marker))
    run = kit.run_tool(["average_checkpoints", "--out", str(tmp_path / "avg.pt"),
                        str(tmp_path / "epoch_1.pt"), str(tmp_path / "epoch_2.pt")])
    assert run.returncode != 0 and not run.has_traceback, run.stderr[-2000:]
    assert "epoch_1.pt" in run.stderr
    assert not marker.exists() and not (tmp_path / "avg.pt").exists()


# ---------------------------------------------------------------- YAML, torch.load, pickle: the source


def _python_files():
    for top in SOURCE_DIRS:
        for directory, _, names in os.walk(os.path.join(REPO_ROOT, top)):
            for name in names:
                if name.endswith(".py"):
                    yield os.path.join(directory, name)


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            yield node, f"{node.func.value.id}.{node.func.attr}"


SAFE_YAML_LOADERS = {"_ConfigLoader", "SafeLoader", "CSafeLoader", "yaml.SafeLoader", "yaml.CSafeLoader"}


def test_yaml_torch_and_pickle_loading_in_the_source_are_safe():
    problems = []
    for path in _python_files():
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
        where = os.path.relpath(path, REPO_ROOT)
        for call, name in _calls(tree):
            keywords = {k.arg: k.value for k in call.keywords}
            line = f"{where}:{call.lineno}: {name}"
            if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all", "yaml.full_load_all",
                        "pickle.load", "pickle.loads", "marshal.loads"):
                problems.append(f"{line} is not safe")
            elif name in ("yaml.load", "yaml.load_all"):
                loader = keywords.get("Loader", call.args[1] if len(call.args) > 1 else None)
                if loader is None or ast.unparse(loader) not in SAFE_YAML_LOADERS:
                    problems.append(f"{line} with Loader={ast.unparse(loader) if loader else None}")
            elif name == "torch.load":
                value = keywords.get("weights_only")
                if not (isinstance(value, ast.Constant) and value.value is True):
                    problems.append(f"{line} without weights_only=True")
            elif name == "np.load":
                value = keywords.get("allow_pickle")
                if value is not None and not (isinstance(value, ast.Constant) and value.value is False):
                    problems.append(f"{line} with allow_pickle")
    assert not problems, "\n".join(problems)


def test_config_loader_is_a_safe_loader():
    import yaml

    from funasr_lite.utils import config

    assert issubclass(config._ConfigLoader, yaml.SafeLoader)


def test_yaml_with_python_tags_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "config.yaml"
    path.write_text(f"model: !!python/object/apply:os.system ['touch {marker}']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.yaml: not valid YAML"):
        load_yaml(path)
    assert not marker.exists()


# ---------------------------------------------------------------- tarballs


UNTAR = os.path.join(REPO_ROOT, "egs", "aishell1", "local", "download_and_untar.sh")


def _untar(tmp_path, members, symlinks=None):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    kit.write_tarball(str(mirror / "resource_aishell.tgz"), members, symlinks)
    base = tmp_path / "corpus"
    result = subprocess.run(["bash", UNTAR, str(base), f"file://{mirror}", "resource_aishell"],
                            capture_output=True, text=True, timeout=120)
    return result, base


def test_tar_member_with_dotdot_is_refused_and_nothing_escapes(tmp_path):
    result, base = _untar(tmp_path, {"resource_aishell/lexicon.txt": b"x\n",
                                     "resource_aishell/../../escaped.txt": b"evil\n"})
    assert result.returncode != 0
    assert "escaped.txt" in result.stderr and ".." in result.stderr  # tar names the member
    assert "unpacking" in result.stderr and "resource_aishell.tgz" in result.stderr
    assert not (tmp_path / "escaped.txt").exists() and not (base / "escaped.txt").exists()
    assert not (base / "resource_aishell" / ".complete").exists()


def test_tar_absolute_member_stays_inside_the_target(tmp_path):
    target = tmp_path / "absolute_escape.txt"
    result, base = _untar(tmp_path, {"resource_aishell/lexicon.txt": b"x\n", str(target): b"evil\n"})
    assert not target.exists()
    if result.returncode == 0:  # GNU tar strips the leading '/': the file lands inside base
        assert (base / str(target).lstrip("/")).exists()


def test_tar_symlink_pointing_out_is_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    result, base = _untar(tmp_path, {"resource_aishell/lexicon.txt": b"x\n",
                                     "resource_aishell/link/escaped.txt": b"evil\n"},
                          symlinks={"resource_aishell/link": str(outside)})
    assert result.returncode != 0, result.stderr
    assert not (outside / "escaped.txt").exists()
    assert "link/escaped.txt" in result.stderr


def test_tar_setuid_bits_and_owners_are_not_restored(tmp_path):
    import io
    import stat
    import tarfile

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with tarfile.open(mirror / "resource_aishell.tgz", "w:gz") as tar:
        info = tarfile.TarInfo("resource_aishell/tool")
        info.size, info.mode, info.uid, info.gid = 3, 0o6755, 4242, 4242
        tar.addfile(info, io.BytesIO(b"#!\n"))
    base = tmp_path / "corpus"
    result = subprocess.run(["bash", UNTAR, str(base), f"file://{mirror}", "resource_aishell"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    status = os.stat(base / "resource_aishell" / "tool")
    assert not status.st_mode & (stat.S_ISUID | stat.S_ISGID)
    assert status.st_uid == os.getuid()


# ---------------------------------------------------------------- URLs


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, code, body=b"", headers=()):
        try:
            self.send_response(code)
            for key, value in headers:
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(body)
        except OSError:  # the client gave up first (the time-limit tests)
            pass

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = self.path
        if path == "/ok.wav":
            body = b"RIFF" + b"\0" * 100
            self._send(200, body, [("Content-Length", str(len(body)))])
        elif path == "/redirect-ok":
            self._send(302, headers=[("Location", "/ok.wav"), ("Content-Length", "0")])
        elif path == "/redirect-file":
            self._send(302, headers=[("Location", "file:///etc/passwd"), ("Content-Length", "0")])
        elif path == "/redirect-ftp":
            self._send(302, headers=[("Location", "ftp://127.0.0.1:9/x.wav"), ("Content-Length", "0")])
        elif path == "/slow-headers":
            time.sleep(3)
            self._send(200, b"late", [("Content-Length", "4")])
        elif path == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(1000):
                try:
                    self.wfile.write(b"x")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.05)
        elif path == "/huge-declared":
            self._send(200, headers=[("Content-Length", str(10 ** 12))])
        elif path == "/huge-undeclared":
            self.send_response(200)
            self.end_headers()  # no Content-Length: read until the connection closes
            try:
                for _ in range(64):
                    self.wfile.write(b"\0" * 65536)
            except OSError:
                pass
            self.close_connection = True
        else:
            self._send(404, headers=[("Content-Length", "0")])


@pytest.fixture(scope="module")
def server():
    with local_http_server(_Handler) as url:
        yield url


def test_url_ok_and_http_redirect_is_followed(server):
    assert fetch_url(f"{server}/ok.wav").startswith(b"RIFF")
    assert fetch_url(f"{server}/redirect-ok").startswith(b"RIFF")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1:9/x.wav", "data:,hello", "/etc/passwd"])
def test_only_http_and_https_are_fetched(url):
    with pytest.raises(AudioInputError, match=r"only http\(s\) URLs are fetched"):
        fetch_url(url)


@pytest.mark.parametrize("target", ["redirect-file", "redirect-ftp"])
def test_redirect_to_another_scheme_is_refused(server, target):
    with pytest.raises(AudioInputError, match=rf"{target}: redirected to \S+: only http\(s\) URLs are fetched"):
        fetch_url(f"{server}/{target}")


def test_a_server_that_does_not_answer_is_given_up_on(server):
    start = time.monotonic()
    with pytest.raises(AudioInputError, match=r"slow-headers: (no answer within 0.5 s|cannot fetch)"):
        fetch_url(f"{server}/slow-headers", timeout=0.5)
    assert time.monotonic() - start < 2.5


def test_a_trickling_server_hits_the_total_time_limit(server):
    """One byte every 50 ms never trips the per-read timeout; the total limit stops it."""
    start = time.monotonic()
    with pytest.raises(AudioInputError, match=r"trickle: not complete after 0.5 s \(\d+ bytes so far\)"):
        fetch_url(f"{server}/trickle", timeout=2, total_timeout=0.5)
    assert time.monotonic() - start < 3


def test_huge_bodies_are_refused(server):
    with pytest.raises(AudioInputError, match=r"huge-declared: 1000000000000 bytes, more than the limit of 1048576"):
        fetch_url(f"{server}/huge-declared", max_bytes=1 << 20)
    with pytest.raises(AudioInputError, match=r"huge-undeclared: more than the limit of 1048576 bytes"):
        fetch_url(f"{server}/huge-undeclared", max_bytes=1 << 20)


def test_fetch_error_is_a_value_error_naming_the_url(server):
    with pytest.raises(FetchError, match=r"/missing: HTTP 404"):
        fetch(f"{server}/missing")
