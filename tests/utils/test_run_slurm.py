"""run_slurm.py against fake sbatch/srun: arguments, batch script, logs, failure propagation."""
import json
import os
import stat
import sys

import pytest

FAKE_SBATCH = """#!{python}
# Fake sbatch: records argv, prints a job id (--parsable), runs every array task's script here
# with SLURM_ARRAY_TASK_ID set (--wait), skipping the tasks in $FAKE_SLURM_SKIP_TASKS.
import json, os, subprocess, sys
with open(os.environ["FAKE_SLURM_RECORD"], "a") as f:
    f.write(json.dumps(["sbatch"] + sys.argv[1:]) + "\\n")
args = sys.argv[1:]
options = {{}}
while args and args[0].startswith("--"):
    key, _, value = args.pop(0).partition("=")
    options[key] = value
script = args[0]
assert "--parsable" in options and "--wait" in options, options
first, last = map(int, options["--array"].split("%")[0].split("-"))
print("4242", flush=True)
skip = os.environ.get("FAKE_SLURM_SKIP_TASKS", "").split()
code = 0
for task in range(first, last + 1):
    if str(task) in skip:
        code = 1
        continue
    env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID="4242")
    with open(options["--output"].replace("%a", str(task)), "w") as out:
        code = subprocess.call(["bash", script] + args[1:], env=env, stdout=out, stderr=out) or code
sys.exit(code)
"""

FAKE_SRUN = """#!{python}
# Fake srun: records argv, skips the options, runs the command here.
import json, os, subprocess, sys
with open(os.environ["FAKE_SLURM_RECORD"], "a") as f:
    f.write(json.dumps(["srun"] + sys.argv[1:]) + "\\n")
args = sys.argv[1:]
while args[0].startswith("--"):
    args.pop(0)
sys.exit(subprocess.call(args))
"""


@pytest.fixture
def slurm(tmp_path, run_tool):
    """run_tool with fake sbatch/srun/sacct/scontrol first on PATH; ``.calls()`` returns the
    recorded sbatch/srun argvs."""
    bin_dir = tmp_path / "fakebin"
    bin_dir.mkdir()
    # sacct/scontrol answer nothing (a test may replace one), so no real Slurm on this machine is asked.
    silent = "#!/bin/sh\nexit 1\n"
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("sacct", silent), ("scontrol", silent)):
        path = bin_dir / name
        path.write_text(text.format(python=sys.executable))
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    record = tmp_path / "slurm_calls.jsonl"

    class Slurm:
        def run(self, command, **env):
            return run_tool(command, extra_path=[str(bin_dir)], env={"FAKE_SLURM_RECORD": str(record), **env})

        def calls(self):
            if not record.exists():
                return []
            return [json.loads(line) for line in record.read_text().splitlines()]

    return Slurm()


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_one_job_array_with_resources(slurm, tmp_path):
    result = slurm.run("run_slurm.py --gpu 2 --mem 4G --time 1:00:00 --partition gpu --account asr "
                       "--num-threads 3 --max-jobs-run 2 --extra '--qos=high --exclude=node1' "
                       "JOB=1:3 exp/log/train.JOB.log 'echo task JOB threads $OMP_NUM_THREADS'")
    assert result.returncode == 0, result.stderr
    calls = slurm.calls()
    assert len(calls) == 1
    argv = calls[0]
    assert argv[0] == "sbatch"
    for expected in ("--parsable", "--wait", "--array=1-3%2", "--gres=gpu:2", "--mem=4G", "--time=1:00:00",
                     "--partition=gpu", "--account=asr", "--cpus-per-task=3", "--qos=high", "--exclude=node1"):
        assert expected in argv, (expected, argv)
    assert argv[-1] == "exp/log/q/train.sh"
    assert os.access(tmp_path / "exp/log/q/train.sh", os.X_OK)
    for job in (1, 2, 3):
        lines = read(tmp_path / f"exp/log/train.{job}.log").splitlines()
        assert lines[0] == f"# echo task {job} threads $OMP_NUM_THREADS"
        assert f"task {job} threads 3" in lines
        assert lines[-2].startswith("# Accounting: time=") and lines[-2].endswith("threads=3")
        assert lines[-1].startswith("# Ended (code 0) at ")
        assert read(tmp_path / f"exp/log/q/train.{job}.status").strip() == "0"


def test_defaults_ask_for_no_gpu_and_no_throttle(slurm):
    result = slurm.run("run_slurm.py JOB=2:3 log/d.JOB.log true")
    assert result.returncode == 0, result.stderr
    argv = slurm.calls()[0]
    assert "--array=2-3" in argv
    assert not any(a.startswith(("--gres", "--mem", "--time", "--partition", "--cpus-per-task")) for a in argv)


def test_failed_tasks_are_named_like_local(slurm, tmp_path):
    result = slurm.run("run_slurm.py JOB=1:4 log/f.JOB.log 'echo JOB; test JOB -ne 2 && test JOB -ne 3'")
    assert result.returncode != 0
    assert "run_slurm.py: 2 / 4 jobs failed, see log/f.2.log log/f.3.log" in result.stderr
    assert read(tmp_path / "log/f.2.log").splitlines()[-1].startswith("# Ended (code 1) at ")


def test_task_without_status_file_counts_as_failed_even_after_an_earlier_success(slurm, tmp_path):
    first = slurm.run("run_slurm.py JOB=1:3 log/z.JOB.log 'echo JOB'")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "log/q/z.3.status").exists()
    # Task 3 is now "killed before it starts": the stale status of the first run must not count.
    second = slurm.run("run_slurm.py --status-wait 0 JOB=1:3 log/z.JOB.log 'echo JOB'",
                       FAKE_SLURM_SKIP_TASKS="3")
    assert second.returncode != 0
    assert "run_slurm.py: 1 / 3 jobs failed, see log/z.3.log" in second.stderr
    assert "wrote no exit status" in second.stderr


def test_single_job_form(slurm, tmp_path):
    result = slurm.run("run_slurm.py --mem 500m log/one.log 'echo one | tr a-z A-Z'")
    assert result.returncode == 0, result.stderr
    argv = slurm.calls()[0]
    assert "--array=1-1" in argv and "--mem=500M" in argv
    assert "ONE" in read(tmp_path / "log/one.log").splitlines()


def test_use_srun_runs_one_srun_per_job(slurm, tmp_path):
    result = slurm.run("run_slurm.py --use-srun --gpu 1 --num-threads 2 JOB=1:3 log/s.JOB.log "
                       "'echo srun job JOB; test JOB -ne 3'")
    assert result.returncode != 0
    assert "run_slurm.py: 1 / 3 jobs failed, see log/s.3.log" in result.stderr
    calls = slurm.calls()
    assert len(calls) == 3 and all(c[0] == "srun" for c in calls)
    assert sorted(c[-1] for c in calls) == ["1", "2", "3"]
    for argv in calls:
        assert "--gres=gpu:1" in argv and "--cpus-per-task=2" in argv
        assert argv[-3:-1] == ["bash", "log/q/s.sh"]
    assert "srun job 2" in read(tmp_path / "log/s.2.log")


def test_sbatch_missing_or_rejecting_is_an_error(run_tool, tmp_path):
    bin_dir = tmp_path / "failbin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition' >&2\nexit 1\n")
    (bin_dir / "sbatch").chmod(0o755)
    result = run_tool("run_slurm.py --partition nope JOB=1:2 log/x.JOB.log true", extra_path=[str(bin_dir)])
    assert result.returncode != 0
    assert "invalid partition" in result.stderr
    assert "sbatch failed" in result.stderr


@pytest.mark.parametrize("command, options, cpus, gres", [
    ("torchrun --standalone --nproc_per_node 2 -m funasr_lite.bin.train --x 1", "", "2", None),
    ("torchrun --nproc-per-node=4 -m funasr_lite.bin.train", "--gpu 1 --num-threads 3", "12", "gpu:4"),
    ("python -m torch.distributed.run --nproc_per_node 2 train.py", "--gpu 8", "2", "gpu:8"),
    ("torchrun --nproc_per_node gpu -m funasr_lite.bin.train", "--gpu 2", None, "gpu:2"),
    ("python -m funasr_lite.bin.train --nproc_per_node 4", "--num-threads 2", "2", None),
])
def test_torchrun_job_asks_for_its_processes_cores_and_gpus(command, options, cpus, gres):
    from funasr_lite.jobs.options import parse_runner_argv
    from funasr_lite.jobs.slurm import slurm_resource_args

    runner_options, jobs = parse_runner_argv(options.split() + ["log/train.log"] + command.split())
    args = slurm_resource_args(jobs, runner_options)
    assert [a for a in args if a.startswith("--cpus-per-task")] == ([f"--cpus-per-task={cpus}"] if cpus else [])
    assert [a for a in args if a.startswith("--gres")] == ([f"--gres={gres}"] if gres else [])


def test_job_killed_by_slurm_is_reported_with_its_state(slurm, tmp_path):
    """No exit status from task 2; sacct says COMPLETING at first (as just after scancel), then
    CANCELLED: named as cancelled."""
    sacct = tmp_path / "fakebin" / "sacct"
    sacct.write_text("#!/bin/sh\nif [ -e asked ]; then state='CANCELLED by 0'; else state=COMPLETING; touch asked; fi\n"
                     "printf '4242_1|COMPLETED\\n4242_2|%s\\n' \"$state\"\n")
    sacct.chmod(0o755)
    result = slurm.run("run_slurm.py --status-wait 30 JOB=1:2 log/c.JOB.log 'echo JOB'", FAKE_SLURM_SKIP_TASKS="2")
    assert result.returncode == 1
    assert "job 2 (Slurm job 4242_2) was CANCELLED before it finished; log: log/c.2.log" in result.stderr
    assert "run_slurm.py: 1 / 2 jobs failed, see log/c.2.log" in result.stderr
    assert "job 1 (" not in result.stderr
