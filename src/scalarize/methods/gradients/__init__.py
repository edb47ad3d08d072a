"""The gradient layer under :class:`~scalarize.methods.context.StepContext`, apart from the step's
data: each module is one concern the context delegates to.

* :mod:`.engine`: what a per-task gradient engine is (:class:`GradientEngine`), the task losses
  as engines differentiate them (:class:`TaskLosses`);
* :mod:`.loop`, :mod:`.batched`: the engines (:data:`ENGINES`), chosen by the config's
  ``gradient_engine`` (:func:`resolve_gradient_engine` for ``auto``);
* :mod:`.heads`: per-task gradients split at the shared representation (the trainer's
  ``head_inputs``): one pass through the heads, then products through the trunk;
* :mod:`.space`: where a gradient method's Jacobian is taken (:class:`GradientSpace`):
  :mod:`.parameters` (the default) or :mod:`.representation` (:data:`SPACES`, chosen by
  ``method.options.gradients``);
* :mod:`.scale`: fp16's loss scale in every backward pass;
* :mod:`.reduction`: the reductions across ranks (data-parallel training).

Adding an engine: one module beside :mod:`.loop` (a :class:`GradientEngine` subclass), its line
in :data:`ENGINES`, and its test (tests/test_gradient_engines.py holds every engine in
:data:`ENGINES` to the same Jacobians).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from scalarize.methods.gradients.batched import BatchedEngine
from scalarize.methods.gradients.engine import (
    Autograd,
    GradientEngine,
    TaskLosses,
    task_outputs,
)
from scalarize.methods.gradients.loop import LoopEngine
from scalarize.methods.gradients.parameters import ParameterSpace
from scalarize.methods.gradients.reduction import Reducer, mean_over_ranks
from scalarize.methods.gradients.representation import RepresentationSpace
from scalarize.methods.gradients.space import GRADIENT_SPACE_NAMES, GradientSpace

#: The engines by name.
ENGINES: dict[str, type[GradientEngine]] = {engine.name: engine for engine in (LoopEngine, BatchedEngine)}

#: The gradient spaces by name (``method.options.gradients``); the first is the default.
SPACES: dict[str, type[GradientSpace]] = {space.name: space for space in (ParameterSpace, RepresentationSpace)}
GRADIENT_SPACES = tuple(SPACES)
assert GRADIENT_SPACES == GRADIENT_SPACE_NAMES, "space.py names every space (base.py validates the option by them)"

#: The values of ``gradient_engine``: ``auto`` and every engine's name.
GRADIENT_ENGINES = ("auto", *ENGINES)


def resolve_gradient_engine(engine: str, shared_params: Sequence[nn.Parameter] = ()) -> str:
    """``loop`` or ``batched`` for ``engine``. ``auto``: ``batched`` when the shared parameters
    are on a GPU or are all vectors and matrices (a dense trunk), else ``loop`` (a convolutional
    trunk on a CPU, or no parameters); see :mod:`scalarize.methods.context`."""
    if engine not in GRADIENT_ENGINES:
        raise ValueError(f"gradient_engine: must be one of {', '.join(GRADIENT_ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if not shared_params:
        return "loop"
    on_gpu = shared_params[0].device.type == "cuda"
    dense = all(p.dim() <= 2 for p in shared_params)
    return "batched" if on_gpu or dense else "loop"


def build_engine(name: str, autograd: Autograd) -> GradientEngine:
    """The engine ``name`` (a resolved name, not ``auto``) over ``autograd``."""
    return ENGINES[name](autograd)


def build_space(name: str) -> GradientSpace:
    """The gradient space ``name`` (one of :data:`GRADIENT_SPACES`)."""
    if name not in SPACES:
        raise ValueError(f"gradients: must be one of {', '.join(GRADIENT_SPACES)}, got {name!r}")
    return SPACES[name]()


__all__ = [
    "ENGINES",
    "GRADIENT_ENGINES",
    "GRADIENT_SPACES",
    "SPACES",
    "GradientSpace",
    "ParameterSpace",
    "RepresentationSpace",
    "build_space",
    "Autograd",
    "BatchedEngine",
    "GradientEngine",
    "LoopEngine",
    "Reducer",
    "TaskLosses",
    "build_engine",
    "mean_over_ranks",
    "resolve_gradient_engine",
    "task_outputs",
]
