#!/usr/bin/env python3
"""``python -m funasr_lite.bin.train`` with fault hooks in checkpoint writing (for the kill and
disk-full drills). Same arguments as the trainer; the hooks are set by environment variables:

  DRILL_SAVE_FLAG=PATH       when a checkpoint write is half done, create PATH (with the temp
                             file's name) and sleep DRILL_SLOW_SAVE seconds (default 30) before
                             writing the rest: a kill -9 then lands inside the write
  DRILL_ENOSPC_AFTER=N       checkpoint writes after the N-th fail with ENOSPC ("No space left
                             on device") from ``write`` once 1 KiB of them has been written,
                             as a full disk does

  DRILL_HOLD_AT_STEP=N       once the trainer logs update N or a later one ("epoch E step N [..]"),
  DRILL_HOLD_FLAG=PATH       create PATH (holding the step number) and sleep DRILL_HOLD_SECONDS
                             (default 600) before the next line of training: the drill kills it
                             there, at a moment set by the run's progress, so a busy machine cannot
                             let the run finish first

Only writes of checkpoint temp files (``.<name>.pt.<random>.tmp``, utils.fileio.atomic_open)
are affected by the checkpoint hooks.
"""

import builtins
import errno
import logging
import os
import re
import sys
import time

_HALF = 1024  # bytes of a checkpoint written before the fault
_real_open = builtins.open
_saves = 0


class _HookedFile:
    def __init__(self, file, index: int, path: str):
        self._file, self._index, self._path, self._written, self._fired = file, index, path, 0, False

    def write(self, data):
        enospc_after = os.environ.get("DRILL_ENOSPC_AFTER")
        if not self._fired and self._written + len(data) > _HALF:
            if enospc_after is not None and self._index > int(enospc_after):
                self._fired = True
                self._file.write(bytes(data)[: max(0, _HALF - self._written)])
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            flag = os.environ.get("DRILL_SAVE_FLAG")
            if flag:
                self._fired = True
                data = bytes(data)
                cut = max(0, _HALF - self._written)
                self._file.write(data[:cut])
                self._file.flush()
                with _real_open(flag, "w") as f:
                    f.write(self._path + "\n")
                time.sleep(float(os.environ.get("DRILL_SLOW_SAVE", "30")))
                self._file.write(data[cut:])
                self._written += len(data)
                return len(data)
        self._written += len(data)
        self._file.write(data)
        return len(data)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._file.__exit__(*exc)


def _open(file, mode="r", *args, **kwargs):
    global _saves
    handle = _real_open(file, mode, *args, **kwargs)
    name = os.path.basename(os.fspath(file)) if isinstance(file, (str, bytes, os.PathLike)) else ""
    if "w" in mode and name.startswith(".") and ".pt." in name and name.endswith(".tmp"):
        _saves += 1
        return _HookedFile(handle, _saves, os.fspath(file))
    return handle


class _HoldAtStep(logging.Handler):
    """Holds the trainer inside its own log call for update ``step`` (before that update's
    checkpoint save, which follows the log line): the training loop waits here to be killed."""

    STEP_MESSAGE = re.compile(r"epoch \d+ step (\d+) \[")

    def __init__(self, step: int, flag: str, seconds: float):
        super().__init__()
        self.step, self.flag, self.seconds = step, flag, seconds

    def emit(self, record):
        match = self.STEP_MESSAGE.match(record.getMessage())
        if match and int(match.group(1)) >= self.step:
            # written whole, then renamed: the drill kills as soon as the flag exists
            with _real_open(self.flag + ".tmp", "w") as f:
                f.write(match.group(1) + "\n")
            os.replace(self.flag + ".tmp", self.flag)
            time.sleep(self.seconds)


def main() -> int:
    from funasr_lite.bin import train
    from funasr_lite.utils import fileio

    fileio.open = _open  # atomic_open's open(); a module global shadows the builtin
    if os.environ.get("DRILL_HOLD_AT_STEP"):
        hold = _HoldAtStep(int(os.environ["DRILL_HOLD_AT_STEP"]), os.environ["DRILL_HOLD_FLAG"],
                           float(os.environ.get("DRILL_HOLD_SECONDS", "600")))
        logging.getLogger("funasr_lite.train.engine").addHandler(hold)  # the engine logs each update
    return train.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
