"""Small file helpers shared by every stage: atomic writes."""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8"):
    """Open a temp file beside ``path``; rename it over ``path`` only if the block succeeds.

    A killed job therefore leaves either the old file or the new one, never half of one.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    # mkstemp makes 0600 files; give the result the mode a plain open() would (0666 & ~umask).
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
