"""One logging set-up for every entry point (``funasr_lite.bin.*``): :func:`setup_logging`.

Records go to stderr as ``2026-12-06 23:40:01,123 (module:line) LEVEL: message``; an entry point
that keeps a log of its own beside its outputs (``finetune.log``) names it with ``log_file``. The
trainers' experiment logs (``<exp>/train.log``, tagged with the rank) use the same format
(:mod:`funasr_lite.train.train_log`).
"""

from __future__ import annotations

import logging
import os
from typing import Optional

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(level: int = logging.INFO, log_file: Optional[str] = None) -> None:
    """Root logger at ``level`` to stderr in :data:`LOG_FORMAT` (a handler already there is kept,
    as ``logging.basicConfig`` does) and, with ``log_file``, also appended to that file."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    root = logging.getLogger()
    root.setLevel(level)
    if log_file is not None:
        os.makedirs(os.path.dirname(os.path.abspath(log_file)), exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        root.addHandler(handler)
