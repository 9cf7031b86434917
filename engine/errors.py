"""The one exception hierarchy of ainu-engine.

Every error that a user can cause with their input derives from :class:`AinuError`.
Messages are one line and say which file (and where in it), what was expected,
what was found, and what to do about it; the CLI prints them without a traceback.
"""

from __future__ import annotations

import os

__all__ = [
    "AinuError",
    "InputError",
    "FormatError",
    "UnknownFormatError",
    "MissingColumnError",
    "PixelSizeError",
    "OutputError",
    "RenderError",
    "ParityError",
    "ChannelError",
    "MissingDependency",
]


class AinuError(Exception):
    """Base class of every error ainu-engine raises about its inputs or outputs.

    Parameters
    ----------
    problem : str
        What is wrong, in a few words (e.g. ``"truncated record"``).
    path : str or os.PathLike, optional
        The file concerned.
    where : str, optional
        The place in the file: ``"line 12"``, ``"record 7"``, ``"dataset /locs"``.
    expected, found : str, optional
        What a valid input has there, and what this one has.
    hint : str, optional
        What the user can do about it.
    """

    exit_code = 1

    def __init__(
        self,
        problem: str,
        *,
        path: str | os.PathLike | None = None,
        where: str | None = None,
        expected: str | None = None,
        found: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else os.fspath(path)
        self.where = where
        self.expected = expected
        self.found = found
        self.hint = hint
        super().__init__(self._format())

    def _format(self) -> str:
        head = self.path if self.path is not None else ""
        if self.where:
            head = f"{head}, {self.where}" if head else self.where
        msg = f"{head}: {self.problem}" if head else self.problem
        if self.expected is not None:
            msg += f"; expected {self.expected}"
        if self.found is not None:
            msg += f", found {self.found}" if self.expected is not None else f"; found {self.found}"
        if self.hint:
            msg += f" ({self.hint})"
        return " ".join(msg.split())  # always one line

    def with_path(self, path: str | os.PathLike) -> AinuError:
        """Return a copy of this error that names ``path`` (when it named no file yet)."""
        if self.path is not None:
            return self
        new = type(self).__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.path = os.fspath(path)
        Exception.__init__(new, new._format())
        return new


class MissingDependency(AinuError):
    """An optional package is not installed; the message names the extra that brings it."""


class InputError(AinuError):
    """An input file cannot be read: missing, a directory, unreadable, empty."""


class FormatError(InputError):
    """A file's content does not follow its format (bad magic, truncated, non-numeric...)."""


class UnknownFormatError(InputError):
    """Automatic format detection recognised no format, or a format name is unknown."""


class MissingColumnError(FormatError):
    """A required column (x, y, ...) is absent from a table."""


class ChannelError(InputError):
    """A file's channels do not match the model's (or the requested) channels."""


class PixelSizeError(InputError):
    """Coordinates are in camera pixels and no valid camera pixel size is known."""


class OutputError(AinuError):
    """An output cannot be written (exists, unwritable, format cannot hold the data)."""


class RenderError(AinuError):
    """Localizations cannot be rendered as asked (none selected, image too large, no GPU)."""


class ParityError(AinuError):
    """Two computations that must agree do not (an exported model against its PyTorch source,
    a backend against the reference); nothing is written."""
