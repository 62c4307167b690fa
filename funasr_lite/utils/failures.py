"""Skip, name, count: the bookkeeping of a run over many items that goes on past bad ones.

A run (decoding a wav.scp, reading a training epoch, ...) records each unusable item in a
:class:`FailureLog`: one WARNING line naming it, a count by category, and the list the tool writes
beside its outputs (``1best_recog/failed``, format in :mod:`funasr_lite.inference.writers`). With
``max_failures`` N, the (N+1)-th failure raises :class:`TooManyFailuresError` (0: any failure is
fatal; None: no limit, Kaldi's compute-fbank behaviour). Tools that finish with failures exit
with :data:`EXIT_SOME_FAILED`.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

logger = logging.getLogger(__name__)

# Exit status of a tool that finished and wrote its outputs, but skipped some items (listed in its
# failed file). 1 stays "error: nothing (new) written"; 2 is argparse's usage error.
EXIT_SOME_FAILED = 3


class TooManyFailuresError(RuntimeError):
    """More items failed than ``max_failures`` allows; the message names the last one."""


def one_line(text: str) -> str:
    """Tabs and line breaks -> spaces, so a value fits one field of a tab-separated line."""
    return " ".join(str(text).replace("\t", " ").splitlines()).strip()


@dataclass(frozen=True)
class ItemFailure:
    """One skipped item: its key, where it came from (path, pipe, ``ark:offset``, ...), and why.

    ``category`` is a short word that is counted (``corrupt``, ``missing``, ``too_long``, ...);
    ``detail`` the message naming the problem.
    """

    key: str
    source: str
    category: str
    detail: str

    @property
    def reason(self) -> str:
        return one_line(f"{self.category}: {self.detail}")


@dataclass
class FailureLog:
    """The failures of one run, in the order they happened (see the module docstring)."""

    max_failures: Optional[int] = None
    what: str = "item"  # the word the log lines use ("utterance", ...)
    failures: List[ItemFailure] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.max_failures is not None and self.max_failures < 0:
            raise ValueError(f"max_failures must be >= 0 (or None: no limit), got {self.max_failures}")

    def add(self, key: str, source: str, category: str, detail: str) -> ItemFailure:
        """Record (and log) one failure; raise TooManyFailuresError past ``max_failures``."""
        failure = ItemFailure(key, one_line(source), category, one_line(detail))
        self.failures.append(failure)
        logger.warning("%s %s (%s) skipped: %s", self.what, key, failure.source, failure.reason)
        if self.max_failures is not None and len(self.failures) > self.max_failures:
            raise TooManyFailuresError(
                f"{self.what} {key} ({failure.source}): {failure.reason}; that is {len(self.failures)} "
                f"failure(s), more than max_failures={self.max_failures}: stopping"
            )
        return failure

    def __len__(self) -> int:
        return len(self.failures)

    def __bool__(self) -> bool:  # an empty log is still a log
        return True

    def counts(self) -> Dict[str, int]:
        """category -> number of failures, most frequent first."""
        counted = collections.Counter(f.category for f in self.failures)
        return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))

    def summary(self, done: int, verb: str = "decoded") -> str:
        """e.g. ``decoded 13, failed 12 (10 corrupt, 2 missing)``."""
        text = f"{verb} {done}, failed {len(self.failures)}"
        if self.failures:
            text += " (" + ", ".join(f"{n} {category.replace('_', ' ')}" for category, n in self.counts().items()) + ")"
        return text


__all__ = ["EXIT_SOME_FAILED", "FailureLog", "ItemFailure", "TooManyFailuresError", "one_line"]
