"""Progress bars that stay quiet under CI or when stderr is not a terminal."""

import os
import resource
import sys

from tqdm import tqdm


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


def peak_rss_mb() -> float:
    """This process's peak resident memory (MB): getrusage ru_maxrss (KiB on Linux), since start
    or the last reset of the peak."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
