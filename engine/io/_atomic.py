"""Write files so that a reader never sees half of one: temp file beside it, then rename."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from ..errors import OutputError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the target's folder; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.

    Yields
    ------
    Path
        The temporary file to write to.

    Raises
    ------
    ainu_engine.errors.OutputError
        The output folder does not exist.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError("output folder does not exist", path=folder, hint="create it first")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: complete, or not at all (:func:`atomic_path`).

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    data : bytes
        Its content.
    """
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
