"""What an experiment records (the training engine's logs, funasr_lite.train.engine).

- ``<exp>/train.log``: the text log (:func:`experiment_logging`; rank 0 logs INFO, other ranks
  warnings only, each record tagged with its rank).
- ``<exp>/tensorboard/``: TensorBoard scalars, written by rank 0 (:func:`tensorboard_writer`);
  ``tensorboard --logdir exp`` shows every experiment.
- ``<exp>/epochs.jsonl``: one JSON record per finished epoch (:func:`append_epoch_record`), the
  machine-readable history that ``egs/aishell1/local/plot_curves.py`` draws::

      {"epoch": 3, "step": 1200, "time": "2026-12-01T11:02:03", "seconds": 240.1, "lr": 0.0009,
       "train": {"loss": 1.9, "acc": 0.61, ...}, "valid": {"loss": 2.1, "acc": 0.58, "cer": 34.1}}

  A resumed run appends; a record for an epoch that is already there replaces it when read
  (:func:`read_epoch_records`).
- ``[progress]`` lines in the log (:class:`RunProgress`): epoch, batch, step, elapsed time, ETA
  and the last validation result, which the job runner shows on the terminal while the log goes
  to a file (funasr_lite.utils.progress).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional

from funasr_lite.utils.log import LOG_FORMAT as TOOL_LOG_FORMAT
from funasr_lite.utils.progress import eta_seconds, format_duration, progress_message

EPOCHS_FILE = "epochs.jsonl"
# The entry points' format (utils.log) tagged with the rank of the process; the rank is set by
# experiment_logging's filter.
LOG_FORMAT = TOOL_LOG_FORMAT.replace(" %(levelname)s:", " [rank %(rank)s] %(levelname)s:")


@contextlib.contextmanager
def log_to_file(path: Optional[str], log_format: str, level: int = logging.INFO,
                record_filter: Optional[logging.Filter] = None) -> Iterator[None]:
    """Send the root logger's records of ``level`` and above to ``path`` (appended, so a resumed
    run continues the same log; None: no file) and to stderr when the root logger has no handler
    yet. Handlers already on the root logger are kept; the root logger is restored on exit."""
    root = logging.getLogger()
    handlers: List[logging.Handler] = []
    if not root.handlers:
        handlers.append(logging.StreamHandler())
    if path is not None:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        handlers.append(logging.FileHandler(path, encoding="utf-8"))
    formatter = logging.Formatter(log_format)
    old_level = root.level
    for handler in handlers:
        handler.setFormatter(formatter)
        if record_filter is not None:
            handler.addFilter(record_filter)
        root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(old_level)


class RankFilter(logging.Filter):
    """Adds ``record.rank`` (for LOG_FORMAT)."""

    def __init__(self, rank: int):
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        record.rank = self.rank
        return True


def experiment_logging(exp_dir: str, rank: int, log_format: str = LOG_FORMAT):
    """Rank 0 logs INFO to ``<exp_dir>/train.log`` (and to stderr when nothing else logs there);
    other ranks log warnings only (to stderr). A context manager (see :func:`log_to_file`)."""
    is_main = rank == 0
    return log_to_file(os.path.join(exp_dir, "train.log") if is_main else None, log_format,
                       logging.INFO if is_main else logging.WARNING, RankFilter(rank))


def tensorboard_writer(exp_dir: str, is_main: bool):
    """A SummaryWriter on ``<exp_dir>/tensorboard`` for rank 0; None on other ranks."""
    if not is_main:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(os.path.join(exp_dir, "tensorboard"))


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no inf/nan
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    return value


def append_epoch_record(exp_dir: str, record: Dict[str, Any]) -> str:
    """Append one epoch's record (a JSON line; non-finite numbers become null) to
    ``<exp_dir>/epochs.jsonl``; returns the path."""
    path = os.path.join(exp_dir, EPOCHS_FILE)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(_finite_or_none(record), ensure_ascii=False, sort_keys=False) + "\n")
    return path


def read_epoch_records(path: str) -> List[Dict[str, Any]]:
    """The records of an ``epochs.jsonl``, one per epoch (the last one written wins, so a
    resumed run's repeated epoch counts once), sorted by epoch. A broken line is an error that
    names the file and line."""
    by_epoch: Dict[int, Dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                epoch = int(record["epoch"])
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{number}: not an epoch record ({e})") from None
            by_epoch[epoch] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


class RunProgress:
    """Elapsed time and ETA of a training run, from its own pace so far.

    ETA = elapsed / batches trained in this run x batches left (validation time is part of the
    elapsed time, so it is counted in the pace after the first epoch). :meth:`message` makes
    the ``[progress]`` line::

        [progress] epoch 3/7 batch 240/400 step 1200, elapsed 5:02, ETA 22:10, last valid cer 34.12 (epoch 2)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.start = clock()
        self.batches = 0  # trained in this run (a resumed run starts again at 0)
        self.last_message_time = self.start

    def batch_done(self) -> None:
        self.batches += 1

    def due(self, every_seconds: float) -> bool:
        """True when no progress line was made for ``every_seconds``."""
        return self.clock() - self.last_message_time >= every_seconds

    def message(self, epoch: int, max_epoch: int, batches_left: int, position: Optional[int] = None,
                epoch_batches: Optional[int] = None, step: Optional[int] = None,
                last_valid: Optional[Dict[str, Any]] = None, metric: Optional[str] = None) -> str:
        """The ``[progress]`` line. ``batches_left``: batches still to train in the whole run;
        ``last_valid``: the newest validation record (with ``epoch``) whose ``metric`` is shown."""
        now = self.clock()
        self.last_message_time = now
        elapsed = now - self.start
        where = f"epoch {epoch}/{max_epoch}"
        if position is not None and epoch_batches:
            where += f" batch {position}/{epoch_batches}"
        if step is not None:
            where += f" step {step}"
        eta = eta_seconds(elapsed, self.batches, self.batches + max(0, batches_left))
        text = f"{where}, elapsed {format_duration(elapsed)}, ETA {format_duration(eta)}"
        if last_valid and metric and last_valid.get(metric) is not None:
            text += f", last valid {metric} {last_valid[metric]:.4g} (epoch {last_valid['epoch']})"
        return progress_message(text)


__all__ = [
    "EPOCHS_FILE",
    "LOG_FORMAT",
    "RankFilter",
    "RunProgress",
    "append_epoch_record",
    "experiment_logging",
    "log_to_file",
    "read_epoch_records",
    "tensorboard_writer",
]
