"""The recipe's parallel stages on a real single-node Slurm (tools/slurm_local.sh: Debian's
slurmctld + slurmd + munge), with cmd.sh pointing at run_slurm.py: fbank and decoding as job
arrays, torchrun training in one job, failures, scancel, resubmission, and the multi-node
script slurm/train.sbatch on one node. The cluster is started here (and stopped again if it was
not running before); when it cannot start, every test fails with the reason.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

from funasr_lite.data.datadir import read_kv
from recipe_copy import copy_recipe  # tests/recipe_copy.py

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLURM_LOCAL = os.path.join(REPO_ROOT, "tools", "slurm_local.sh")
DOCS = os.path.join(REPO_ROOT, "docs", "training.md")
JOB_LINE = re.compile(r"run_slurm\.py: Slurm job (\d+) \((\d+) tasks?\)")

# A tiny model, one epoch (a few steps): the point is the plumbing, not the accuracy.
TINY_MODEL = [
    "++encoder_conf.output_size=32", "++encoder_conf.linear_units=64", "++encoder_conf.num_blocks=2",
    "++decoder_conf.linear_units=64", "++decoder_conf.num_blocks=1", "++decoder_conf.att_layer_num=1",
    "++predictor_conf.idim=32", "++train_conf.max_epoch=1",
    "++dataset_conf.batch_bins=2000", "++dataset_conf.num_workers=0", "++train_conf.log_interval=1",
]


def docs_block(marker):
    """The fenced sh block that follows ``<!-- marker -->`` in docs/training.md, as one line."""
    text = open(DOCS, encoding="utf-8").read()
    match = re.search(r"<!-- " + re.escape(marker) + r" -->\s*```sh\n(.*?)```", text, re.S)
    assert match, f"docs/training.md has no block after <!-- {marker} -->"
    return match.group(1).replace("\\\n", " ").strip()


def shell(command, cwd, timeout=300, env=None):
    """Run bash code after the repository's path.sh, in ``cwd``."""
    full_env = dict(os.environ, FUNASR_LITE_ROOT=REPO_ROOT, FUNASR_LITE_NO_PROGRESS="1", **(env or {}))
    return subprocess.run(["bash", "-c", f". {REPO_ROOT}/path.sh && {command}"], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


def slurm_job_ids(stderr):
    return [int(m.group(1)) for m in JOB_LINE.finditer(stderr)]


def scontrol_job(job_id):
    """``scontrol -o show job`` of a job (all array tasks), parsed: [{field: value}, ...]."""
    out = subprocess.run(["scontrol", "-o", "show", "job", str(job_id)], capture_output=True, text=True).stdout
    return [dict(f.split("=", 1) for f in line.split() if "=" in f) for line in out.splitlines()]


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


@pytest.fixture(scope="module")
def slurm():
    """A running single-node Slurm; fails (never skips) with the script's output when it cannot
    start. Stopped afterwards when this session started it and no other live test session
    (a pid file in <state dir>/users) still uses it; /etc/hosts is then byte for byte as before start."""
    users = os.path.join(os.environ.get("SLURM_LOCAL_DIR", "/var/lib/slurm_local"), "users")
    was_running = subprocess.run(["bash", SLURM_LOCAL, "status"], capture_output=True).returncode == 0
    with open("/etc/hosts", "rb") as f:
        hosts_before = f.read()
    t0 = time.time()
    try:
        proc = subprocess.run(["bash", SLURM_LOCAL, "start"], capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"tools/slurm_local.sh start did not finish in 600 s:\n{e.stderr}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"Slurm could not be started (tools/slurm_local.sh start, exit {proc.returncode}):\n"
                    f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}", pytrace=False)
    print(f"slurm_local.sh start: {time.time() - t0:.1f} s")
    os.makedirs(users, exist_ok=True)
    mine = os.path.join(users, str(os.getpid()))
    open(mine, "w").close()
    yield
    os.remove(mine)
    others = [name for name in os.listdir(users) if name.isdigit() and _pid_alive(int(name))]
    if not was_running and not others:
        stop = subprocess.run(["bash", SLURM_LOCAL, "stop"], capture_output=True, text=True, timeout=300)
        assert stop.returncode == 0, stop.stderr
        assert subprocess.run(["bash", SLURM_LOCAL, "status"], capture_output=True).returncode == 1
        with open("/etc/hosts", "rb") as f:  # start may add the host name; stop takes it out again
            assert f.read() == hosts_before, "tools/slurm_local.sh stop left /etc/hosts changed"


def test_slurm_local_config_comes_from_this_machine_and_start_is_idempotent(slurm):
    conf = open("/etc/slurm/slurm.conf", encoding="utf-8").read()
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    assert f"NodeName={host} NodeAddr=127.0.0.1 CPUs={len(os.sched_getaffinity(0))} " in conf
    assert "ProctrackType=proctrack/linuxproc" in conf and "PartitionName=debug" in conf
    again = subprocess.run(["bash", SLURM_LOCAL, "start"], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "already running" in again.stderr, again.stderr
    status = subprocess.run(["bash", SLURM_LOCAL, "status"], capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and re.search(rf"node {host}: (idle|mixed|allocated)", status.stdout), status.stdout


@pytest.fixture(scope="module")
def recipe(slurm, tmp_path_factory):
    """A copy of egs/aishell1 whose cmd.sh uses run_slurm.py (the lines docs/training.md shows),
    after stages -1..2 on the tiny corpus with --nj 2."""
    work = tmp_path_factory.mktemp("aishell1_slurm")
    copy_recipe(work, REPO_ROOT, dirs=("local", "conf", "slurm"))
    with open(work / "cmd.sh", "a", encoding="utf-8") as f:
        f.write("\n" + docs_block("cmd.sh lines used by tests/cluster/test_slurm_real.py") + "\n")
    proc = shell("bash run.sh --stage -1 --stop_stage 2 --corpus_size tiny --nj 2", work, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    return work, proc.stderr


@pytest.fixture(scope="module")
def trained(recipe):
    """Stage 4 with --ngpu 2: torchrun with 2 CPU processes (gloo) inside one Slurm job."""
    work, _ = recipe
    proc = shell(f"bash run.sh --stage 4 --stop_stage 4 --ngpu 2 --num_avg 1 --train_args '{' '.join(TINY_MODEL)}'",
                 work, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    return work, proc.stderr


def test_fbank_stage_runs_as_slurm_job_arrays(recipe):
    work, stderr = recipe
    job_ids = slurm_job_ids(stderr)
    assert len(job_ids) == 3 and "(2 tasks)" in stderr, stderr[-3000:]  # train, dev, test
    for job_id in job_ids:
        tasks = scontrol_job(job_id)
        assert sorted(t["ArrayTaskId"] for t in tasks) == ["1", "2"], tasks
        assert all(t["JobState"] == "COMPLETED" and t["Partition"] == "debug" for t in tasks), tasks
    for split in ("train", "dev", "test"):
        assert set(read_kv(work / "data" / split / "feats.scp")) == set(read_kv(work / "data" / split / "text"))
        logs = sorted((work / "exp" / "make_fbank" / split).glob("*.log"))
        assert len(logs) == 2, logs
        for log in logs:
            assert log.read_text(encoding="utf-8").splitlines()[-1].startswith("# Ended (code 0)")


def test_torchrun_training_job_asks_for_a_core_per_process(trained):
    work, stderr = trained
    (job_id,) = slurm_job_ids(stderr)
    (task,) = scontrol_job(job_id)
    assert task["JobState"] == "COMPLETED", task
    assert task["NumCPUs"] == "2", task  # 2 torchrun processes, 1 thread each
    assert "--cpus-per-task=2" in stderr
    train_log = (work / "exp" / "demo" / "train.log").read_text(encoding="utf-8")
    assert "on 2 process(es)" in train_log
    assert (work / "exp" / "demo" / "model.avg1.pt").is_file()


def test_decoding_with_two_jobs_and_merge(trained):
    work, _ = trained
    proc = shell("bash run.sh --stage 6 --stop_stage 6 --nj 2 --num_avg 1 --decode_sets test --decode_modes greedy",
                 work, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-5000:]
    (job_id,) = slurm_job_ids(proc.stderr)
    tasks = scontrol_job(job_id)
    assert sorted(t["ArrayTaskId"] for t in tasks) == ["1", "2"]
    assert all(t["JobState"] == "COMPLETED" for t in tasks), tasks
    best = work / "exp" / "demo" / "decode_test_greedy" / "1best_recog"
    assert set(read_kv(best / "text")) == set(read_kv(work / "data" / "test" / "text"))


def test_failed_decoding_jobs_fail_the_stage_and_are_named(trained):
    """A checkpoint that cannot be read: every decoding task fails, the stage stops, the logs are named."""
    work, _ = trained
    exp = work / "exp" / "broken"
    exp.mkdir()
    shutil.copy(work / "exp" / "demo" / "config.yaml", exp / "config.yaml")
    (exp / "model.avg1.pt").write_bytes(b"not a checkpoint")
    proc = shell("bash run.sh --stage 6 --stop_stage 6 --nj 2 --num_avg 1 --decode_exp exp/broken "
                 "--decode_sets test --decode_modes greedy", work, timeout=600)
    assert proc.returncode != 0
    match = re.search(r"run_slurm\.py: 2 / 2 jobs failed, see (\S+) (\S+)\n", proc.stderr)
    assert match, proc.stderr[-3000:]
    for log in match.groups():
        lines = (work / log).read_text(encoding="utf-8").splitlines()
        assert re.match(r"# Ended \(code [1-9]\d*\)", lines[-1]), lines[-5:]
    assert "stage 7" not in proc.stderr and not (exp / "decode_test_greedy" / "1best_recog" / "text").exists()


def test_one_failing_array_task_is_named_with_its_log(slurm, tmp_path):
    proc = shell("run_slurm.py JOB=1:3 log/x.JOB.log 'echo task JOB; test JOB -ne 2'", tmp_path, timeout=120)
    assert proc.returncode == 1
    assert "run_slurm.py: 1 / 3 jobs failed, see log/x.2.log" in proc.stderr
    tasks = {t["ArrayTaskId"]: t["JobState"] for t in scontrol_job(slurm_job_ids(proc.stderr)[0])}
    assert tasks == {"1": "COMPLETED", "2": "FAILED", "3": "COMPLETED"}
    lines = (tmp_path / "log" / "x.2.log").read_text(encoding="utf-8").splitlines()
    assert "task 2" in lines and lines[-1].startswith("# Ended (code 1)")


def test_scancel_is_reported_as_cancelled(slurm, tmp_path):
    env = dict(os.environ, FUNASR_LITE_ROOT=REPO_ROOT, FUNASR_LITE_NO_PROGRESS="1")
    with open(tmp_path / "runner.err", "w") as err:
        runner = subprocess.Popen(["bash", "-c", f". {REPO_ROOT}/path.sh && run_slurm.py JOB=1:2 log/s.JOB.log 'sleep 120'"],
                                  cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.time() + 60
        job_ids = []
        while time.time() < deadline and not (job_ids and all((tmp_path / f"log/s.{j}.log").exists() for j in (1, 2))):
            time.sleep(0.2)
            job_ids = slurm_job_ids((tmp_path / "runner.err").read_text())
        assert job_ids, "the array did not start: " + (tmp_path / "runner.err").read_text()
        subprocess.run(["scancel", str(job_ids[0])], check=True)
        assert runner.wait(timeout=60) == 1
    finally:
        if runner.poll() is None:
            runner.kill()
    stderr = (tmp_path / "runner.err").read_text()
    for task in (1, 2):
        assert f"job {task} (Slurm job {job_ids[0]}_{task}) was CANCELLED before it finished; log: log/s.{task}.log" in stderr
    assert "run_slurm.py: 2 / 2 jobs failed, see log/s.1.log log/s.2.log" in stderr


def test_resubmission_after_a_failure_reruns_every_task(slurm, tmp_path):
    """Documented in docs/training.md: a rerun resubmits all tasks (finished ones included)."""
    command = "run_slurm.py JOB=1:2 log/r.JOB.log 'echo run >> runs.JOB; test JOB -ne 2 || test -e fixed'"
    first = shell(command, tmp_path, timeout=120)
    assert first.returncode == 1 and "1 / 2 jobs failed, see log/r.2.log" in first.stderr
    (tmp_path / "fixed").touch()
    second = shell(command, tmp_path, timeout=120)
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "runs.1").read_text() == "run\nrun\n"
    assert (tmp_path / "runs.2").read_text() == "run\nrun\n"
    assert (tmp_path / "log" / "r.2.log").read_text().splitlines()[-1].startswith("# Ended (code 0)")


def test_multinode_sbatch_script_on_one_node(trained):
    """slurm/train.sbatch, as docs/training.md shows it, on one node with 2 gloo processes."""
    work, _ = trained
    command = docs_block("train.sbatch command run by tests/cluster/test_slurm_real.py")
    proc = shell(command + " " + " ".join(TINY_MODEL), work, timeout=600)
    out = (work / "exp" / "train_sbatch.out").read_text(encoding="utf-8") if (work / "exp" / "train_sbatch.out").exists() else ""
    assert proc.returncode == 0, proc.stderr[-2000:] + out[-5000:]
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    assert re.search(rf"1 node\(s\) \({re.escape(host)}\) x 2 process\(es\), rendezvous {re.escape(host)}:\d+", out), out[-3000:]
    exp = work / "exp" / "train_sbatch"
    train_log = (exp / "train.log").read_text(encoding="utf-8")
    assert "on 2 process(es)" in train_log and re.search(r"epoch 1 step 1 \[", train_log), train_log[-3000:]
    assert (exp / "train.done").is_file() and (exp / "checkpoint_latest.pt").is_file()
