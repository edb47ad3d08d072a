"""Methods by the name configs use."""

from __future__ import annotations

from typing import Any

from scalarize.methods.base import Method, MethodError

_METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Class decorator (or plain call) adding a method under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    return sorted(_METHODS)


def build_method(name: str, **options: Any) -> Method:
    """Instantiates a method from its config name and keyword options."""
    if name not in _METHODS:
        raise MethodError(
            f"method.name: unknown method {name!r}; allowed: {', '.join(available_methods())}"
        )
    try:
        return _METHODS[name](**options)
    except TypeError as error:
        raise MethodError(f"method {name!r}: {error}") from None
