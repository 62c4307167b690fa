"""The one harness every benchmark in bench/ runs on: worker processes, repeats and medians, peak
memory, side-by-side order, and the output (a printed markdown table + a JSON report).

    run_in_worker(fn, threads, **kwargs)  fn(**kwargs) -> dict, called in a fresh interpreter with
                                          OMP/MKL_NUM_THREADS and torch.set_num_threads = threads;
                                          the dict comes back with the worker's peak_rss_mb (VmHWM)
    run_command(argv, log, threads)       any command: wall_s and the peak RSS of its process tree
    worker_failure(error)                 a failed worker as a row ({"error": last line, "error_tail"})
    time_repeats(run, repeats)            wall seconds of each call (and the last call's value)
    stats(values) / medians(runs, keys)   median, min, max, n of repeated measurements
    side_by_side(impls, repeats, measure) measure(impl, repeat), the order rotating between repeats
    paired_ratios(a_runs, b_runs, key)    per-repeat a/b and their median (ours / peer)
    PeakRss(), peak_rss_mb()              peak RSS of a phase / of this process (VmHWM)
    environment(threads, device, precision)  CPU model, cores, versions, threads, git commit (+ the
                                          device's name, CUDA version and the precision when given)
    check_device(device, precision)       --device / --precision of a benchmark, refused early when
                                          the machine cannot run them; autocast(), synchronize()
    markdown_table(columns, rows)         the printed table; write_report(path, report): the JSON

A worker is this file run as ``python bench/harness.py --worker SPEC RESULT``: it imports the
function's script by path (as a module, so its ``main()`` does not run) and writes the JSON result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, Iterable, List, Optional, Sequence

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
if REPO not in sys.path:  # a script run from anywhere (python bench/x.py) imports funasr_lite from this repo
    sys.path.insert(1, REPO)
VERSIONED = ("onnxruntime", "funasr", "funasr-onnx", "sherpa-onnx")  # reported beside torch when installed


class WorkerError(SystemExit):
    """A worker or measured command failed or timed out; the message ends with its output's tail.
    (A SystemExit: uncaught, the benchmark stops with that message and exit status 1.)"""


# ---------------------------------------------------------------- peak memory
def _status_mb(field: str, pid="self") -> Optional[float]:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in MB; None where unreadable."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """This process's resident memory now (VmRSS, MB)."""
    return _status_mb("VmRSS") or 0.0


_peak_seen = 0.0  # the largest peak read in this process: VmHWM forgets it at each reset_peak_rss


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, MB) since start or since the last reset_peak_rss;
    getrusage's ru_maxrss where /proc is unreadable."""
    global _peak_seen
    peak = _status_mb("VmHWM")
    peak = peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    _peak_seen = max(_peak_seen, peak)
    return peak


def process_peak_rss_mb() -> float:
    """This process's peak since start, resets included (what the harness reports for a worker)."""
    return max(peak_rss_mb(), _peak_seen)


def reset_peak_rss() -> bool:
    """Restart the peak (Linux: clear_refs 5 resets VmHWM); False where not allowed."""
    peak_rss_mb()  # remembered in _peak_seen
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


class PeakRss:
    """``with PeakRss() as phase: ...`` -- ``phase.mb``: the peak RSS (MB) during the block alone
    (model + libraries + what the block allocates); None where the peak cannot be reset."""

    def __enter__(self):
        self._reset, self.mb = reset_peak_rss(), None
        return self

    def __exit__(self, *exc):
        self.mb = peak_rss_mb() if self._reset else None
        return False


def children_peak_rss_mb() -> float:
    """Largest peak (MB) among this process's children: VmHWM of the live ones (e.g. persistent
    DataLoader workers), ru_maxrss of the reaped ones."""
    me, peak = str(os.getpid()), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    for pid in _pids():
        fields = _status_fields(pid)
        if fields.get("PPid", "").strip() == me and "VmHWM" in fields:
            peak = max(peak, int(fields["VmHWM"].split()[0]) / 1024.0)
    return peak


def _pids() -> List[str]:
    try:
        return [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []


def _status_fields(pid: str) -> dict:
    try:
        with open(f"/proc/{pid}/status") as handle:
            return dict(line.split(":", 1) for line in handle if ":" in line)
    except OSError:
        return {}


class TreeRss:
    """Peak of the summed VmRSS (MB) of a process and all its descendants, sampled in a thread
    every ``interval`` seconds (for commands that start their own workers)."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak_mb = pid, interval, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        parents = {}
        for pid in _pids():
            fields = _status_fields(pid)
            if fields:
                parents[pid] = (fields.get("PPid", "").strip(), fields.get("VmRSS", "0 kB").split()[0])
        tree, frontier = set(), {str(self.pid)}
        while frontier:
            tree |= frontier
            frontier = {pid for pid, (ppid, _) in parents.items() if ppid in frontier and pid not in tree}
        return sum(int(parents[pid][1]) for pid in tree if pid in parents) / 1024.0

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self.sample())
            self._stop.wait(self.interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


# ---------------------------------------------------------------- processes
def worker_env(threads: Optional[int]) -> dict:
    """The environment of a worker or measured command: the repo first on PYTHONPATH, its utils/
    and this interpreter's bin/ on PATH, no progress bars, and (with ``threads``) OMP_NUM_THREADS /
    MKL_NUM_THREADS."""
    env = dict(os.environ, FUNASR_LITE_NO_PROGRESS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])),
               PATH=os.pathsep.join(filter(None, [os.path.join(REPO, "utils"), os.path.dirname(sys.executable),
                                                  os.environ.get("PATH")])))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    return env


def _run_process(argv: list, threads, log: Optional[str], cwd: Optional[str], timeout: Optional[float],
                 tree_rss: bool) -> tuple:
    """Run argv with its output to ``log`` (or kept in memory); (wall seconds, peak tree RSS or None)."""
    if log:
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
    out = open(log, "w") if log else tempfile.TemporaryFile("w+")
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=worker_env(threads), cwd=cwd)
        sampler = TreeRss(proc.pid) if tree_rss else None
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            code = f"timed out after {timeout:g} s"
        wall = time.perf_counter() - start
        peak = sampler.stop() if sampler else None
        if code != 0:
            if log:
                out.close()
                with open(log, errors="replace") as handle:
                    tail = handle.read()[-5000:]
            else:
                out.seek(0)
                tail = out.read()[-5000:]
            where = f", log {log}" if log else ""
            raise WorkerError(f"failed ({code}): {' '.join(map(str, argv))[:400]}{where}:\n{tail}")
    finally:
        out.close()
    return wall, peak


class Service:
    """A long-running process a benchmark talks to (a server): started with the workers'
    environment and its output in ``log``; ``rss_mb()`` its VmRSS now; ``stop()`` sends SIGTERM
    (SIGKILL after ``grace`` s). Used as a context manager, it is stopped on the way out."""

    def __init__(self, argv: list, log: str, threads: Optional[int] = None, cwd: Optional[str] = None):
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
        self.log_path = log
        self._out = open(log, "w")
        self.process = subprocess.Popen([str(a) for a in argv], stdout=self._out, stderr=subprocess.STDOUT,
                                        env=worker_env(threads), cwd=cwd)

    def alive(self) -> bool:
        return self.process.poll() is None

    def rss_mb(self) -> Optional[float]:
        return _status_mb("VmRSS", self.process.pid)

    def stop(self, grace: float = 60.0) -> None:
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._out.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def run_command(argv: list, log: str, threads: Optional[int] = None, cwd: Optional[str] = None,
                timeout: Optional[float] = None) -> dict:
    """Run a command (output to ``log``); its wall seconds and the peak summed RSS of its process
    tree (the command and every process it starts, sampled every 0.2 s). Raises WorkerError."""
    argv = [str(a) for a in argv]
    wall, peak = _run_process(argv, threads, log, cwd, timeout, tree_rss=True)
    print(f"  {wall:.1f} s, peak RSS {peak:.0f} MB: {' '.join(argv)[:160]}", file=sys.stderr)
    return {"command": " ".join(argv), "wall_s": wall, "peak_rss_mb": peak, "log": log}


def worker_failure(error: WorkerError) -> dict:
    """A failed worker as a result row: ``error`` its last line of output (the exception), ``error_tail``
    the end of its output. For benchmarks that go on when one implementation cannot run a setting
    (FunASR's model under an autocast dtype, say) and report it rather than stop."""
    text = str(error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return {"error": lines[-1][:300] if lines else "failed", "error_tail": text[-2000:]}


def run_in_worker(function: Callable[..., dict], threads: Optional[int], *, log: Optional[str] = None,
                  cwd: Optional[str] = None, timeout: Optional[float] = None, **kwargs) -> dict:
    """``function(**kwargs)`` in a fresh interpreter (a module-level function of a bench script or
    module; kwargs JSON-serialisable), with ``threads`` OMP/MKL/torch threads. Returns its dict with
    ``peak_rss_mb``: the worker process's peak RSS from start to end (VmHWM). Output goes to ``log``
    (else kept for the error message); a failure or a timeout raises WorkerError."""
    with tempfile.TemporaryDirectory(prefix="bench_worker_") as tmp:
        spec, result = os.path.join(tmp, "spec.json"), os.path.join(tmp, "result.json")
        with open(spec, "w") as handle:
            json.dump({"file": os.path.abspath(function.__code__.co_filename), "function": function.__name__,
                       "threads": threads, "kwargs": kwargs}, handle)
        _run_process([sys.executable, os.path.abspath(__file__), "--worker", spec, result], threads, log, cwd,
                     timeout, tree_rss=False)
        with open(result) as handle:
            return json.load(handle)


def _worker_main(spec_path: str, result_path: str) -> None:
    """(worker process) set threads, import the function's file, call it, write its result."""
    with open(spec_path) as handle:
        spec = json.load(handle)
    if spec["threads"] is not None:
        import torch

        torch.set_num_threads(int(spec["threads"]))
    name = os.path.splitext(os.path.basename(spec["file"]))[0]
    module_spec = importlib.util.spec_from_file_location(name, spec["file"])
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    sys.path.insert(0, os.path.dirname(spec["file"]))
    module_spec.loader.exec_module(module)
    result = getattr(module, spec["function"])(**spec["kwargs"])
    result = dict(result or {}, peak_rss_mb=process_peak_rss_mb())
    with open(result_path + ".tmp", "w") as handle:
        json.dump(result, handle, ensure_ascii=False)
    os.replace(result_path + ".tmp", result_path)


# ---------------------------------------------------------------- repeats, medians, side by side
def time_repeats(run: Callable[[], object], repeats: int) -> tuple:
    """Call ``run()`` ``repeats`` times; (wall seconds of each call, the last call's value)."""
    seconds, value = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        value = run()
        seconds.append(time.perf_counter() - start)
    return seconds, value


def stats(values: Iterable[float]) -> dict:
    """Median, min, max and count of repeated measurements."""
    values = list(values)
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def medians(runs: Sequence[dict], keys: Sequence[str]) -> dict:
    """{key: median over runs} and "spread": {key: stats} for each key of the per-repeat results."""
    spread = {key: stats(run[key] for run in runs) for key in keys}
    return {**{key: spread[key]["median"] for key in keys}, "spread": spread}


def rotated(items: Sequence, shift: int) -> list:
    """``items`` rotated left by ``shift`` (for two items: reversed on odd shifts)."""
    shift %= max(len(items), 1)
    return list(items[shift:]) + list(items[:shift])


def side_by_side(impls: Sequence[str], repeats: int, measure: Callable[[str, int], dict]) -> Dict[str, list]:
    """{impl: [measure(impl, repeat) for each repeat]}, interleaved: every repeat runs each impl
    once, the order rotating between repeats so that none always runs first."""
    runs = {impl: [] for impl in impls}
    for repeat in range(repeats):
        for impl in rotated(impls, repeat):
            runs[impl].append(measure(impl, repeat))
    return runs


def paired_ratios(numerator_runs: Sequence[dict], denominator_runs: Sequence[dict], key: str) -> dict:
    """Per-repeat ratio numerator[key] / denominator[key] (runs of one repeat share conditions)
    and its median."""
    ratios = [a[key] / b[key] for a, b in zip(numerator_runs, denominator_runs)]
    return {"median_per_repeat": statistics.median(ratios), "per_repeat": ratios}


# ---------------------------------------------------------------- output
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git(*args) -> Optional[str]:
    try:
        done = subprocess.run(["git", "-C", REPO, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


PRECISIONS = ("fp32", "bf16", "fp16")
AUTOCAST_DTYPES = {"fp32": None, "bf16": "bfloat16", "fp16": "float16"}


def check_device(device: str, precision: str = "fp32") -> str:
    """A benchmark's ``--device`` (cpu | cuda | cuda:N) and ``--precision`` (fp32 | bf16 | fp16),
    checked before anything is built: CUDA must be there, fp16 (autocast + grad scaler) is a CUDA
    path only. Returns the device string; a SystemExit says what is wrong."""
    import torch

    if precision not in PRECISIONS:
        raise SystemExit(f"--precision {precision!r}: one of {', '.join(PRECISIONS)}")
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise SystemExit(f"--device {device!r}: {error}") from None
    if parsed.type not in ("cpu", "cuda"):
        raise SystemExit(f"--device {device!r}: cpu, cuda or cuda:N")
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {device}: torch {torch.__version__} sees no CUDA device "
                             f"(built with CUDA {torch.version.cuda})")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise SystemExit(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)")
    elif precision == "fp16":
        raise SystemExit("--precision fp16 is a CUDA path (autocast + GradScaler); on cpu use fp32 or bf16")
    return device


def autocast(device: str, precision: str):
    """The mixed-precision context of the forward passes: torch.autocast for bf16 / fp16, nothing for fp32."""
    import contextlib

    import torch

    if AUTOCAST_DTYPES[precision] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=getattr(torch, AUTOCAST_DTYPES[precision]))


def synchronize(device: str) -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing on CPU."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def device_environment(device: str) -> dict:
    """The device of a run: its name (torch.cuda.get_device_name, else the CPU model), CUDA and cuDNN
    versions, GPU memory, driver-visible device count."""
    import torch

    info = {"device": device, "device_name": _cpu_model(), "cuda": torch.version.cuda}
    if torch.device(device).type == "cuda":
        index = torch.device(device).index or 0
        props = torch.cuda.get_device_properties(index)
        info.update(device_name=torch.cuda.get_device_name(index), cudnn=torch.backends.cudnn.version(),
                    gpu_memory_gb=round(props.total_memory / 1e9, 1), gpu_count=torch.cuda.device_count(),
                    capability=".".join(map(str, torch.cuda.get_device_capability(index))))
    return info


def environment(threads, device: Optional[str] = None, precision: Optional[str] = None) -> dict:
    """Where the numbers were measured: CPU model, cores, library versions, threads, git commit;
    with ``device`` its name and CUDA version (device_environment), with ``precision`` that too."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    env = {"cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
           "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
           "threads": threads, "python": platform.python_version(), "platform": platform.platform(),
           "processor": platform.processor(), "torch": torch.__version__}
    for package in VERSIONED:
        try:
            env[package] = version(package)
        except PackageNotFoundError:
            env[package] = None
    status = _git("status", "--porcelain", "--untracked-files=no")
    env.update(git_commit=_git("rev-parse", "HEAD"), git_dirty=bool(status) if status is not None else None)
    if device is not None:
        env.update(device_environment(device))
    if precision is not None:
        env["precision"] = precision
    return env


def cell(value, spec: str = "") -> str:
    """A table cell: ``value`` formatted by ``spec`` ("-" for None)."""
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def markdown_table(columns: Sequence[tuple], rows: Iterable[dict]) -> str:
    """A markdown table. columns: (title, key) or (title, key, format spec); rows: dicts."""
    columns = [(c[0], c[1], c[2] if len(c) > 2 else "") for c in columns]
    lines = ["| " + " | ".join(title for title, _, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(cell(row.get(key), spec) for _, key, spec in columns) + " |")
    return "\n".join(lines)


def write_report(path: str, report: dict) -> None:
    """Write a benchmark report (which must carry ``environment``) as indented JSON, atomically."""
    if "environment" not in report:
        raise ValueError("a benchmark report carries harness.environment(threads)")
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2, ensure_ascii=False)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    if sys.argv[1:2] != ["--worker"] or len(sys.argv) != 4:
        raise SystemExit("usage: python bench/harness.py --worker SPEC_JSON RESULT_JSON (run by run_in_worker)")
    import harness  # one module instance: the worker's function imports `harness` too (the peak tracker)

    harness._worker_main(sys.argv[2], sys.argv[3])
