"""Objects named by import path in configs: ``"package.module:attribute"`` (the doors for a
user's own model, task kind or benchmark)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def load_object(path: str, what: str = "object") -> Any:
    """The attribute ``attribute`` of module ``package.module`` for ``"package.module:attribute"``.

    Raises a one-line ``ValueError`` naming the path and what went wrong.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"{path!r}: a {what} is named 'package.module:attribute'")
    try:
        module = _import(module_name)
    except ImportError as error:
        raise ValueError(f"{path!r}: cannot import module {module_name!r} ({error})") from None
    value: Any = module
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            raise ValueError(f"{path!r}: module {module_name!r} has no attribute {attribute!r}") from None
    return value


def _import(name: str):
    """Imports ``name``; a module of the working directory is found too (as ``python -m`` would),
    so that ``model.target: mynets:build`` works from where the command runs."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        cwd = os.getcwd()
        if cwd in sys.path or not (error.name and name.startswith(error.name)):
            raise
        sys.path.append(cwd)
        return importlib.import_module(name)
