"""run_local.py: Kaldi run.pl interface (JOB substitution, per-job logs, failures, parallelism)."""
import glob
import os


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def test_job_substitution_in_args_and_log_names(run_tool, tmp_path):
    result = run_tool("run_local.py JOB=1:3 exp/log/echo.JOB.log echo job JOB of data/split3/JOB")
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "exp/log")) == ["echo.1.log", "echo.2.log", "echo.3.log"]
    lines = read(tmp_path / "exp/log/echo.2.log").splitlines()
    assert lines[0] == "# echo job 2 of data/split3/2"
    assert "job 2 of data/split3/2" in lines
    assert lines[-2].startswith("# Accounting: time=") and lines[-2].endswith("threads=1")
    assert lines[-1].startswith("# Ended (code 0) at ")


def test_single_job_runs_shell_code_with_pipes_and_redirection(run_tool, tmp_path):
    result = run_tool("run_local.py log/one.log 'echo a b c | wc -w > count.txt; echo done'")
    assert result.returncode == 0, result.stderr
    assert read(tmp_path / "count.txt").strip() == "3"
    log = read(tmp_path / "log/one.log")
    assert log.startswith("# echo a b c | wc -w > count.txt; echo done\n")
    assert "\ndone\n" in log


def test_several_args_reach_the_program_as_given_and_bare_operators_act(run_tool, tmp_path):
    # 'a b' stays one argument, '%s\n' keeps its backslash, '$HOME' is not expanded, while the
    # separate '|' and '>' act as shell operators (Kaldi's `prog a \\| prog2` idiom).
    result = run_tool("run_local.py log/q.log printf '%s\\n' 'a b' '$HOME' '|' cat '>' out.txt")
    assert result.returncode == 0, result.stderr
    assert read(tmp_path / "out.txt") == "a b\n$HOME\n"
    log = read(tmp_path / "log/q.log").splitlines()
    assert log[0] == "# printf '%s\\n' 'a b' '$HOME' | cat > out.txt"


def test_two_of_four_jobs_fail(run_tool, tmp_path):
    result = run_tool("run_local.py JOB=1:4 log/f.JOB.log 'echo running JOB; exit $(( JOB % 2 == 0 ? 3 : 0 ))'")
    assert result.returncode != 0
    assert "run_local.py: 2 / 4 jobs failed, see log/f.2.log log/f.4.log" in result.stderr
    assert read(tmp_path / "log/f.2.log").splitlines()[-1].startswith("# Ended (code 3) at ")
    assert read(tmp_path / "log/f.3.log").splitlines()[-1].startswith("# Ended (code 0) at ")
    assert "running 4" in read(tmp_path / "log/f.4.log")


def test_failure_inside_a_pipeline_is_not_hidden(run_tool, tmp_path):
    result = run_tool("run_local.py log/p.log 'false | cat'")
    assert result.returncode != 0
    assert "# Ended (code 1)" in read(tmp_path / "log/p.log")


STAMP_JOB = "echo start $(date +%s%N) > stamps/JOB; sleep 0.2; echo end $(date +%s%N) >> stamps/JOB"


def _intervals(tmp_path):
    out = []
    for path in glob.glob(str(tmp_path / "stamps" / "*")):
        stamps = dict(line.split() for line in read(path).splitlines())
        out.append((int(stamps["start"]), int(stamps["end"])))
    return sorted(out)


def test_max_jobs_run_1_runs_jobs_one_after_another(run_tool, tmp_path):
    os.makedirs(tmp_path / "stamps")
    result = run_tool(f"run_local.py --max-jobs-run 1 JOB=1:4 log/s.JOB.log '{STAMP_JOB}'")
    assert result.returncode == 0, result.stderr
    intervals = _intervals(tmp_path)
    assert len(intervals) == 4
    for (_, end), (next_start, _) in zip(intervals, intervals[1:]):
        assert end <= next_start, intervals


def test_max_jobs_run_2_never_exceeds_two_at_once(run_tool, tmp_path):
    os.makedirs(tmp_path / "stamps")
    result = run_tool(f"run_local.py --max-jobs-run 2 JOB=1:5 log/s.JOB.log '{STAMP_JOB}'")
    assert result.returncode == 0, result.stderr
    intervals = _intervals(tmp_path)
    assert len(intervals) == 5
    for start, _ in intervals:  # jobs running at the moment each job starts
        assert sum(s <= start < e for s, e in intervals) <= 2, intervals


def test_jobs_run_in_parallel_by_default(run_tool, tmp_path):
    # Each job waits until all three have started: this only succeeds if they run at once.
    rendezvous = ("touch started.JOB; for i in $(seq 300); do [ $(ls started.* | wc -l) -eq 3 ] && exit 0; "
                  "sleep 0.1; done; exit 1")
    result = run_tool(f"run_local.py JOB=1:3 log/r.JOB.log '{rendezvous}'")
    assert result.returncode == 0, result.stderr


def test_options_after_the_job_range_and_num_threads(run_tool, tmp_path):
    result = run_tool("run_local.py JOB=1:2 --num-threads 3 --mem 2G --gpu 1 --time 1:00:00 --partition x "
                      "log/t.JOB.log 'echo omp=$OMP_NUM_THREADS'")
    assert result.returncode == 0, result.stderr
    log = read(tmp_path / "log/t.2.log")
    assert "omp=3" in log
    assert "# Accounting: time=" in log and "threads=3" in log


def test_bad_command_lines(run_tool):
    unknown = run_tool("run_local.py --bogus 1 log/x.log true")
    assert unknown.returncode == 1 and "unknown option --bogus" in unknown.stderr
    no_job_in_log = run_tool("run_local.py JOB=1:2 log/x.log true")
    assert no_job_in_log.returncode == 1 and "does not contain JOB" in no_job_in_log.stderr
    no_command = run_tool("run_local.py JOB=1:2 log/x.JOB.log")
    assert no_command.returncode == 1 and "need a log file and a command" in no_command.stderr
    bad_range = run_tool("run_local.py JOB=3:2 log/x.JOB.log true")
    assert bad_range.returncode == 1 and "bad job range" in bad_range.stderr


THREADS_JOB = "echo omp=${OMP_NUM_THREADS:-unset} mkl=${MKL_NUM_THREADS:-unset}"


def _cpus():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_jobs_at_once_share_the_cpus_through_omp_and_mkl_threads(run_tool, tmp_path):
    result = run_tool(f"run_local.py JOB=1:2 log/t.JOB.log '{THREADS_JOB}'")
    assert result.returncode == 0, result.stderr
    expected = max(1, _cpus() // 2)
    for job in (1, 2):
        assert f"omp={expected} mkl={expected}" in read(tmp_path / f"log/t.{job}.log").splitlines()
    # One job at a time: nothing to share, the libraries' defaults stay.
    result = run_tool(f"run_local.py --max-jobs-run 1 JOB=1:2 log/one.JOB.log '{THREADS_JOB}'")
    assert result.returncode == 0, result.stderr
    assert "omp=unset mkl=unset" in read(tmp_path / "log/one.2.log").splitlines()


def test_thread_count_set_in_the_environment_is_kept(run_tool, tmp_path):
    result = run_tool(f"run_local.py JOB=1:2 log/t.JOB.log '{THREADS_JOB}'", env={"OMP_NUM_THREADS": "7"})
    assert result.returncode == 0, result.stderr
    for job in (1, 2):
        assert "omp=7 mkl=unset" in read(tmp_path / f"log/t.{job}.log").splitlines()
    result = run_tool(f"run_local.py JOB=1:2 log/m.JOB.log '{THREADS_JOB}'", env={"MKL_NUM_THREADS": "3"})
    assert result.returncode == 0, result.stderr
    assert "omp=unset mkl=3" in read(tmp_path / "log/m.1.log").splitlines()


def test_threads_per_job_divides_the_cpus():
    from funasr_lite.jobs.options import threads_per_job

    assert threads_per_job(3, cpus=8) == 2
    assert threads_per_job(2, cpus=2) == 1
    assert threads_per_job(4, cpus=2) == 1  # never 0
    assert threads_per_job(1, cpus=16) == 16


def test_help_documents_the_thread_default(run_tool):
    result = run_tool("run_local.py --help")
    assert result.returncode == 0
    assert "MKL_NUM_THREADS" in result.stdout and "max(1, CPUs // jobs at once)" in result.stdout


def _run_on_a_terminal(command, cwd):
    """Run ``command`` through bash with stderr on a pseudo-terminal; -> (exit code, what the
    terminal showed)."""
    import pty
    import subprocess

    from utils_testkit import tool_env

    env = tool_env()
    for name in ("CI", "FUNASR_LITE_NO_PROGRESS"):  # the status line is off under CI
        env.pop(name, None)
    master, slave = pty.openpty()
    proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(timeout=60), shown.decode("utf-8", errors="replace")


def test_terminal_status_line_counts_jobs_and_shows_a_running_jobs_progress_line(tmp_path):
    job = "echo '[progress] step JOB of 2'; sleep 3"
    code, shown = _run_on_a_terminal(f"run_local.py JOB=1:2 log/w.JOB.log \"{job}\"", tmp_path)
    assert code == 0
    assert "\rw: 0/2 done, elapsed 0:0" in shown
    assert "| job 1: step 1 of 2" in shown  # the newest [progress] line of a running job
    assert "w: 2/2 done" in shown and shown.endswith("\n")
    assert "step 2 of 2" in read(tmp_path / "log/w.2.log")  # the job's output still goes to its log


def test_no_status_line_when_stderr_is_not_a_terminal(run_tool, tmp_path):
    result = run_tool("run_local.py JOB=1:2 log/w.JOB.log \"echo '[progress] x'\"")
    assert result.returncode == 0
    assert result.stderr == ""
