"""The data layer's errors, in a module of their own so that every part of ``data`` can raise them.

:class:`BenchmarkError` is what users see as one line (the command-line tool prints it without a
traceback and exits with code 2). A file that is missing or unreadable is a
:class:`~scalarize.data.loaders.DataFileError`, itself a ``BenchmarkError``: when a streamed split
meets a truncated image in the middle of a run, the run ends with one line naming the file.
"""

from __future__ import annotations

from scalarize.errors import ScalarizeError


class BenchmarkError(ScalarizeError):
    """An unknown benchmark, a bad option or unusable data (reported to users as one line)."""


class DataFileError(BenchmarkError):
    """A data file that is there but cannot be used (truncated, malformed). One line, path first.

    A :class:`BenchmarkError` (so a ``ValueError``): raised while loading or, for a split
    streamed from the original files, while reading a batch in the middle of a run, it reaches
    the user as one line.
    """


class MissingDataError(DataFileError, FileNotFoundError):
    """A data file or folder that is not there (also a ``FileNotFoundError``)."""
