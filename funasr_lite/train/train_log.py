"""The experiment's text log (``<exp>/train.log``), shared by the ASR and the LM trainers."""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Iterator, List, Optional


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


__all__ = ["log_to_file"]
