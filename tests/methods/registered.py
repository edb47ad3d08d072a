"""The method registry as the method tests see it: every registered method, the options a method
cannot be built without, and the methods each shared test applies to.

Every list here is derived from the registry (and from what a method's class declares: its
``needs``, its ``promises``), so that a method added to the registry is held to every contract
test with no list to edit. Per-method data a test needs (a required option's value) is looked up
with :func:`required_options`, which fails loudly when a method has a required option without a
value here, instead of leaving the method out.
"""

from __future__ import annotations

import inspect
from typing import Any

from scalarize.methods import PREFERENCE_INPUT, Method, available_methods, build_method
from scalarize.methods.registry import method_class

#: Every registered method, sorted.
ALL = available_methods()


def _rows(num_tasks: int) -> list[list[Any]]:
    """Two rows of weights for ``num_tasks`` tasks (the first, for two tasks, 0.2 and 0.8)."""
    if num_tasks == 2:
        return [[0, [0.2, 0.8]], [10, [0.4, 0.6]]]
    first = [float(i + 1) for i in range(num_tasks)]
    return [[0, [w / sum(first) for w in first]], [10, [1.0 / num_tasks] * num_tasks]]


#: The values of the options a method cannot be built without, for ``num_tasks`` tasks.
REQUIRED_VALUES = {
    ("frozen", "source"): _rows,
    ("scheduled_scalarization", "schedule"): lambda num_tasks: [tuple(row) for row in _rows(num_tasks)],
}


def required_option_names(name: str) -> list[str]:
    """The options of ``name``'s constructor that have no default."""
    parameters = list(inspect.signature(method_class(name).__init__).parameters.values())[1:]
    return [
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]


def required_options(name: str, num_tasks: int = 2) -> dict[str, Any]:
    """Values for every option ``name`` cannot be built without (a ``KeyError`` naming the
    method and option if this module has none: add one to :data:`REQUIRED_VALUES`)."""
    out = {}
    for option in required_option_names(name):
        if (name, option) not in REQUIRED_VALUES:
            raise KeyError(
                f"method {name!r} requires option {option!r}: give the tests a value in "
                "tests/methods/registered.py: REQUIRED_VALUES"
            )
        out[option] = REQUIRED_VALUES[name, option](num_tasks)
    return out


def build(name: str, num_tasks: int = 2, **options: Any) -> Method:
    """``build_method(name, **options)``, with values for the options it requires."""
    return build_method(name, **{**required_options(name, num_tasks), **options})


#: The methods a plain training loop over a model without a preference input can train: every
#: registered method but those whose model takes a preference (COSMOS, tested with its
#: preference-conditioned model in test_cosmos.py).
TRAINABLE = [name for name in ALL if PREFERENCE_INPUT not in method_class(name).needs]


def setting_of(method: Method | str) -> str:
    """The setting to set ``method`` up in: ``mtl``, or ``mdl`` for the methods whose class
    declares it runs in MDL only (``settings``: the mixture methods, DoReMi and Aioli)."""
    cls = method_class(method) if isinstance(method, str) else type(method)
    return "mtl" if "mtl" in getattr(cls, "settings", ("mtl",)) else "mdl"


#: The methods that refuse MTL (they set MDL's sampling ratios).
MDL_ONLY = [name for name in ALL if setting_of(name) == "mdl"]


def promising(promise: str) -> list[str]:
    """The registered methods whose class declares ``promise`` in its ``promises``."""
    return [name for name in ALL if promise in method_class(name).promises]
