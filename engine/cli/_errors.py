"""One table from exception types to one-line messages and exit codes."""

from __future__ import annotations

import os
import sys
import traceback

from ..errors import AinuError

#: Exit codes: 0 success, 1 a failed input or output, 2 a usage error, 130 interrupted.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def debug_enabled() -> bool:
    return os.environ.get("AINU_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def describe(err: BaseException) -> tuple[str, int]:
    """The one-line message and exit code for an exception."""
    if isinstance(err, AinuError):
        return f"error: {err}", err.exit_code
    if isinstance(err, (ValueError, TypeError)):
        return f"error: invalid argument: {err}", EXIT_USAGE
    if isinstance(err, MemoryError):
        return "error: out of memory (try fewer or smaller files at once)", EXIT_FAILED
    if isinstance(err, KeyboardInterrupt):
        return "interrupted", EXIT_INTERRUPTED
    first = str(err).splitlines()[0] if str(err) else ""
    return (
        f"internal error: {type(err).__name__}: {first} "
        "(rerun with --debug for the traceback and report it)"
    ), EXIT_FAILED


def report(err: BaseException, *, debug: bool | None = None, stream=None) -> int:
    """Print the message (and, with --debug/AINU_DEBUG=1, the traceback) and return the exit
    code."""
    stream = stream or sys.stderr
    msg, code = describe(err)
    if debug or (debug is None and debug_enabled()):
        traceback.print_exception(err, file=stream)
    print(msg, file=stream)
    return code
