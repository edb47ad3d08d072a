"""Writing into an experiment directory without ever following a planted symlink.

An experiment directory may come from someone else (a shared copy, a download), who could have
planted ``report.html -> ~/.bashrc``. So every file a command writes there (reports, figures,
CSVs, exports, ``pbt_result.json``, models and checkpoints) goes through :func:`replaced`: the
content is written to a new temporary file beside the destination, created exclusively
(``O_CREAT | O_EXCL`` never opens through a link), then renamed over it with ``os.replace``,
which replaces a link itself and never writes where it points. A kill leaves the old file or the
new one, and the temporary file (``.<name>.<random>.tmp``) is removed by the next command.

The folders between the experiment directory (the nearest one holding ``scalarize.db``) and the
file are ours too: one that is a symlink is refused in one line (:class:`LinkError`), since
everything below it would land outside the directory.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from scalarize.errors import ScalarizeError

#: The file that marks an experiment directory (``scalarize.store.database.DATABASE_NAME``).
MARKER = "scalarize.db"
#: How many folders up the experiment directory is looked for (``runs/<name>/model.pt``: two).
DEPTH = 3


class LinkError(ScalarizeError):
    """A symlink where scalarize writes inside an experiment directory (one line)."""


def refuse_linked_folders(path: Path) -> None:
    """Raises :class:`LinkError` when a folder between ``path`` and its experiment directory
    (the nearest ancestor within :data:`DEPTH` levels holding ``scalarize.db``) is a symlink;
    a path outside any experiment directory is not checked (its folders are the user's)."""
    folders = []
    for folder in list(Path(path).parents)[:DEPTH]:
        if (folder / MARKER).exists():
            break
        folders.append(folder)
    else:
        return  # no experiment directory above: a destination the user chose
    for folder in folders:
        if folder.is_symlink():
            raise LinkError(
                f"{folder}: a symlink inside the experiment directory; scalarize does not write "
                "through links (remove it and run the same command again)"
            )


@contextlib.contextmanager
def replaced(path: str | Path, mode: str = "w", **options) -> Iterator[IO]:
    """An open temporary file in ``path``'s folder that replaces ``path`` when the block ends
    (and is removed if it raises); ``mode`` ``"w"`` or ``"wb"``, ``options`` go to ``open``."""
    path = Path(path)
    refuse_linked_folders(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, mode, **options) as handle:
            yield handle
        os.chmod(temporary, 0o666 & ~_umask())  # as open() would create it (mkstemp: 0600)
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` (UTF-8) to ``path`` through :func:`replaced`."""
    with replaced(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | Path, data: bytes | memoryview) -> Path:
    """Writes ``data`` to ``path`` through :func:`replaced`."""
    with replaced(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def _umask() -> int:
    """The process's umask (read by setting it, then set back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask
