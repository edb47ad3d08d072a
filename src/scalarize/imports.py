"""Objects named by import path in configs: ``"package.module:attribute"`` (the doors for a
user's own model, task kind or benchmark).

A config the user gives (a YAML file, overrides, Python) is the user's code: its paths are
imported. A config read back from an experiment directory (``scalarize.load``, ``scalarize pbt
replay``) may come from anyone who could write that directory, so it is read inside
:func:`stored`: there an import path is never imported or called unless the user trusts the
directory (``trust=True``, ``--trust``) or hands over the object the path names (``given``);
otherwise :func:`load_object` refuses it in one line naming the path. Registered names (the
built-in families, benchmarks and task kinds) are not import paths and load as always.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from scalarize.errors import ScalarizeError


class UntrustedImportError(ScalarizeError):
    """An import path from a stored config that the user has not trusted (one line)."""


@dataclass(frozen=True)
class _Stored:
    source: str
    hint: str
    given: Mapping[str, Any] = field(default_factory=dict)


#: Set while a stored config is read (see :func:`stored`); ``None``: the user's own config.
_STORED: ContextVar[_Stored | None] = ContextVar("scalarize_stored_config", default=None)


@contextlib.contextmanager
def stored(
    source: str, *, trust: bool = False, given: Mapping[str, Any] | None = None, hint: str = "pass trust=True"
) -> Iterator[None]:
    """Builds inside read a config stored in ``source`` (an experiment directory): an import path
    is taken from ``given`` (``{path: object}``, the user's own objects), imported only with
    ``trust``, and otherwise refused with :class:`UntrustedImportError` naming it and ``hint``."""
    token = _STORED.set(None if trust else _Stored(str(source), hint, dict(given or {})))
    try:
        yield
    finally:
        _STORED.reset(token)


def check_allowed(path: str, what: str = "object") -> None:
    """Raises :class:`UntrustedImportError` when ``path`` would be refused by :func:`load_object`
    here (for code that may reuse an object imported before, such as a cached benchmark)."""
    _refuse_or_given(path, what)


def _refuse_or_given(path: str, what: str) -> Any:
    """The object ``given`` for ``path`` while a stored config is read untrusted, else refuses it;
    ``None`` outside :func:`stored` (the path is the user's own: imported)."""
    context = _STORED.get()
    if context is None:
        return None
    if path in context.given:
        return context.given[path]
    raise UntrustedImportError(
        f"{path!r}: a {what} named by the config stored in {context.source} is not imported (it would run "
        f"code from that directory); {context.hint} if you trust who wrote it"
    )


def load_object(path: str, what: str = "object") -> Any:
    """The attribute ``attribute`` of module ``package.module`` for ``"package.module:attribute"``.

    Raises a one-line ``ValueError`` naming the path and what went wrong; inside :func:`stored`
    (a config read back from a directory), an untrusted path is refused before it is imported.
    """
    given = _refuse_or_given(path, what)
    if given is not None:
        return given
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
