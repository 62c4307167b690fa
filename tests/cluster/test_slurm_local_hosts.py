"""tools/slurm_local.sh's /etc/hosts line, on a copy of a hosts file: start adds a marked line
for a host name that does not resolve, stop takes it out and leaves the file byte for byte as it
was. (The script is sourced with its hosts file, state dir and node name pointed elsewhere, so
these tests need neither root nor Slurm; test_slurm_real.py checks the real /etc/hosts.)"""

import os
import subprocess

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLURM_LOCAL = os.path.join(REPO_ROOT, "tools", "slurm_local.sh")
NODE = "funasr-lite-no-such-host.invalid"  # .invalid never resolves (RFC 2606)


def run_functions(tmp_path, hosts, calls):
    script = (f'. "{SLURM_LOCAL}"; state_dir="{tmp_path / "state"}"; hosts_file="{hosts}"; '
              f'node_name() {{ echo "{NODE}"; }}; mkdir -p "$state_dir"; {calls}')
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize("original", [
    b"127.0.0.1 localhost\n::1 localhost ip6-localhost\n",
    b"127.0.0.1 localhost",  # no final newline
    b"",
])
def test_stop_leaves_the_hosts_file_as_start_found_it(tmp_path, original):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(original)
    log = run_functions(tmp_path, hosts, "ensure_host_name_resolves")
    assert f"host name {NODE} does not resolve" in log
    added = hosts.read_bytes()
    assert added.startswith(original)
    assert added.splitlines()[-1].startswith(f"127.0.1.1 {NODE} # added by funasr_lite".encode())
    run_functions(tmp_path, hosts, "ensure_host_name_resolves")  # a second start adds nothing
    assert hosts.read_bytes() == added
    run_functions(tmp_path, hosts, "restore_hosts_file")
    assert hosts.read_bytes() == original
    run_functions(tmp_path, hosts, "restore_hosts_file")  # a second stop changes nothing
    assert hosts.read_bytes() == original


def test_stop_removes_only_its_line_when_others_were_added_after_it(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"127.0.0.1 localhost\n")
    run_functions(tmp_path, hosts, "ensure_host_name_resolves")
    with open(hosts, "ab") as f:
        f.write(b"10.0.0.5 other-host\n")
    run_functions(tmp_path, hosts, "restore_hosts_file")
    assert hosts.read_bytes() == b"127.0.0.1 localhost\n10.0.0.5 other-host\n"


def test_a_resolving_host_name_adds_nothing(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_bytes(b"127.0.0.1 localhost\n")
    script = (f'. "{SLURM_LOCAL}"; state_dir="{tmp_path}"; hosts_file="{hosts}"; node_name() {{ echo localhost; }}; '
              "ensure_host_name_resolves; restore_hosts_file")
    assert subprocess.run(["bash", "-c", script], capture_output=True, timeout=60).returncode == 0
    assert hosts.read_bytes() == b"127.0.0.1 localhost\n"
