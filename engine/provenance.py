"""Where a result came from: the ainu-engine version and the git commit of the code that
produced it."""

from __future__ import annotations

import os
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

__all__ = ["__version__", "git_commit", "stamp"]

try:
    __version__ = version("ainu-engine")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

ROOT = Path(__file__).resolve().parent.parent


def git_commit(root: str | Path = ROOT) -> str | None:
    """``HEAD`` of the checkout at ``root`` (``-dirty`` when tracked files changed); where
    ``root`` is no git checkout (a copy of the tree sent to a GPU machine), the value of
    ``AINU_GIT_COMMIT`` marked as given, else None.

    Parameters
    ----------
    root : str or Path
        The checkout (default: this project's).

    Returns
    -------
    str or None
    """
    given = os.environ.get("AINU_GIT_COMMIT")
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        if out.returncode == 0:
            return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return f"{given} (AINU_GIT_COMMIT; no git checkout)" if given else None


def stamp() -> dict[str, str]:
    """What every result file records about the engine that wrote it.

    Returns
    -------
    dict
        ``{"ainu_engine_version": __version__}``: the version of the installed package (the one
        place it is set is ``pyproject.toml``), as ``ainu-engine --version`` prints it.
    """
    return {"ainu_engine_version": __version__}
