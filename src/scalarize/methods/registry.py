"""Methods by the name configs use."""

from __future__ import annotations

import inspect
from typing import Any, TypeVar

from scalarize.methods.base import GradientMethod, Method, MethodError

_METHODS: dict[str, type[Method]] = {}

M = TypeVar("M", bound=type[Method])


def register(cls: M) -> M:
    """Class decorator (or plain call) adding a method under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    _METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[Method] | None:
    """The class registered under ``name`` (``None`` if none): what it needs, before building it."""
    return _METHODS.get(name)


def available_methods() -> list[str]:
    return sorted(_METHODS)


def method_options(name: str) -> list[str] | None:
    """The keyword options of a method's constructor (``None`` if it takes ``**kwargs``)."""
    parameters = list(inspect.signature(_METHODS[name].__init__).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def build_method(name: str, **options: Any) -> Method:
    """Instantiates a method from its config name and keyword options."""
    if name not in _METHODS:
        raise MethodError(f"method.name: unknown method {name!r}; allowed: {', '.join(available_methods())}")
    # every gradient method's option, not its constructor's: where its per-task gradients are taken
    gradients = options.pop("gradients", None)
    if gradients is not None and not issubclass(_METHODS[name], GradientMethod):
        raise MethodError(
            f"method.options.gradients: {name} is not a gradient method (it aggregates no per-task gradients)"
        )
    allowed = method_options(name)
    if allowed is not None:
        for key in options:
            if key in allowed:
                continue
            if key == "weights":
                raise MethodError(f"method.weights: {name} takes no weights (they are for scalarization)")
            raise MethodError(
                f"method.options.{key}: unknown option for method {name!r}; allowed: {', '.join(allowed) or 'none'}"
            )
    try:
        method = _METHODS[name](**options)
    except TypeError as error:
        raise MethodError(f"method {name!r}: {error}") from None
    if gradients is not None:
        assert isinstance(method, GradientMethod)
        method.use_gradients(gradients)
    return method
