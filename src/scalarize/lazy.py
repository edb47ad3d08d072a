"""Lazy package exports: a package's public names, imported from their modules on first use.

A package whose ``__init__`` must not load its heavy modules (torch) when only a light one is
needed writes ``__getattr__, __dir__ = lazy_exports(__name__, {"Name": "package.module", ...})``.
The first access of a name imports its module and caches the value in the package's namespace.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package`` for ``exports`` (a name ->
    the module that defines it)."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        if name in exports:
            value = getattr(import_module(exports[name]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
