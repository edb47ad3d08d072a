"""Where the example configs installed with the package are (read by ``scalarize init``, the
demo and every ``--help``)."""

from __future__ import annotations

import sys
from importlib import resources

if sys.version_info >= (3, 11):
    from importlib.resources.abc import Traversable
else:  # pragma: no cover - Python 3.10
    from importlib.abc import Traversable


def shipped_configs() -> Traversable:
    """The folder of example configs installed with the package."""
    return resources.files("scalarize") / "configs"


def shipped_configs_text() -> str:
    """Where the shipped example configs are, as a person types it (a path when installed as
    files, the resource name otherwise)."""
    folder = shipped_configs()
    return str(folder) if folder.is_dir() else "scalarize/configs (inside the installed package)"
