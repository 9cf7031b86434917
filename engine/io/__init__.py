"""Reading and writing single-molecule localization files.

``read`` detects the format from the content and returns :class:`Localizations` in nm;
``write`` writes Parquet / Arrow IPC (lossless), ThunderSTORM CSV or Insight3 .bin.
``atomic_path`` / ``atomic_write_bytes`` are how every ainu-engine output is written (a reader
never sees half a file).
See ``docs/formats.md`` for each format's units and frame numbering.
"""

from ._api import FORMATS, Format, ReadOptions, detect_format, read, summarize, write
from ._atomic import atomic_path, atomic_write_bytes
from ._identity import file_sha256
from ._localizations import CORE_COLUMNS, Localizations, Metadata

__all__ = [
    "CORE_COLUMNS",
    "FORMATS",
    "Format",
    "Localizations",
    "Metadata",
    "ReadOptions",
    "atomic_path",
    "atomic_write_bytes",
    "file_sha256",
    "detect_format",
    "read",
    "summarize",
    "write",
]
