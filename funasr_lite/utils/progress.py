"""Progress shown on a terminal, quiet under CI or when stderr is not a terminal.

- :func:`progress`: a tqdm bar over a loop.
- :class:`StatusLine`: one live line ``label: k/N done, elapsed 1:02, ETA 0:31 | detail`` redrawn
  in place on stderr (the job runners use it for a stage's jobs).
- ``[progress] ...`` lines: a program whose output goes to a log file (a training job) writes
  :func:`progress_message` lines into its log; the job runner shows the newest one of a running
  job on its status line (:func:`last_progress_message`), so the terminal sees how the job goes.
"""

import os
import resource
import sys
import threading
import time
from typing import Callable, Optional, TextIO

from tqdm import tqdm

# Marks a log line that the job runner shows on the terminal (text after the marker).
PROGRESS_MARKER = "[progress] "


def progress_enabled() -> bool:
    """True when a progress bar should be drawn (a TTY, not CI, not disabled)."""
    if os.environ.get("FUNASR_LITE_NO_PROGRESS") or os.environ.get("CI"):
        return False
    return sys.stderr.isatty()


def progress(iterable=None, **kwargs):
    """tqdm over ``iterable``, disabled when :func:`progress_enabled` is False."""
    kwargs.setdefault("disable", not progress_enabled())
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)


def format_duration(seconds: Optional[float]) -> str:
    """``75`` -> ``1:15``, ``3725`` -> ``1:02:05``; None or negative -> ``?``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def eta_seconds(elapsed: float, done: float, total: float) -> Optional[float]:
    """Time left at the rate so far: ``elapsed / done * (total - done)``; None before any is done."""
    if done <= 0 or total <= 0:
        return None
    return max(0.0, elapsed / done * (total - done))


def progress_message(text: str) -> str:
    """A line the job runner shows on the terminal: ``[progress] <text>``."""
    return PROGRESS_MARKER + text


def last_progress_message(log_path: str, tail_bytes: int = 16384) -> Optional[str]:
    """The text after the marker of the last ``[progress]`` line in the last ``tail_bytes`` of
    ``log_path``; None when there is none (or no file)."""
    try:
        with open(log_path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
            tail = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    marker = tail.rfind(PROGRESS_MARKER)
    if marker < 0:
        return None
    return tail[marker + len(PROGRESS_MARKER):].split("\n", 1)[0].strip() or None


class StatusLine:
    """A live one-line status of ``total`` jobs on a terminal.

    ``label: k/N done, elapsed M:SS, ETA M:SS | detail`` (one job: ``label: elapsed M:SS | detail``,
    then ``label: done, elapsed M:SS``), redrawn every ``interval`` seconds by a
    background thread (and at each :meth:`update`), ended with a newline by :meth:`close`.
    ``detail`` (optional callable) adds text such as the newest ``[progress]`` line of a running
    job; ``count`` (optional callable) is asked for the number of finished jobs at each redraw
    (for jobs that are counted by files, e.g. Slurm's exit-status files). Disabled (draws nothing,
    starts no thread) when ``enabled`` is False, by default when :func:`progress_enabled` is False.
    """

    def __init__(self, label: str, total: int, stream: Optional[TextIO] = None, enabled: Optional[bool] = None,
                 interval: float = 1.0, detail: Optional[Callable[[], Optional[str]]] = None,
                 count: Optional[Callable[[], int]] = None, clock: Callable[[], float] = time.monotonic):
        self.label = label
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = progress_enabled() if enabled is None else enabled
        self.interval = interval
        self.detail = detail
        self.count = count
        self.clock = clock
        self.start = clock()
        self.done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._width = 0

    def text(self, now: Optional[float] = None) -> str:
        """The status text at ``now`` (the clock's time when None)."""
        elapsed = (self.clock() if now is None else now) - self.start
        if self.count is not None:
            self.done = self.count()
        if self.total == 1:  # one job (a training run): its own [progress] detail has the ETA
            text = f"{self.label}: {'done, ' if self.done else ''}elapsed {format_duration(elapsed)}"
        else:
            text = (f"{self.label}: {self.done}/{self.total} done, elapsed {format_duration(elapsed)}, "
                    f"ETA {format_duration(eta_seconds(elapsed, self.done, self.total))}")
        detail = self.detail() if self.detail is not None else None
        return f"{text} | {detail}" if detail else text

    def _columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            columns = 0
        return columns if columns > 0 else 200  # 0: a terminal that does not say its size

    def draw(self) -> None:
        if not self.enabled:
            return
        with self._lock:
            text = self.text()[: max(20, self._columns() - 1)]
            self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
            self.stream.flush()
            self._width = len(text)

    def update(self, done: int) -> None:
        """Set the number of finished jobs and redraw."""
        self.done = done
        self.draw()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.draw()

    def __enter__(self) -> "StatusLine":
        if self.enabled:
            self.draw()
            self._thread = threading.Thread(target=self._run, name="status-line", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop redrawing; the last state stays on the terminal, followed by a newline."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.enabled and self._width:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0

    def __exit__(self, *exc) -> None:
        self.close()


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): getrusage ru_maxrss (KiB on Linux), since start
    or the last reset of the peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
