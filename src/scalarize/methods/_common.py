"""Small helpers the MTO methods share: hyperparameter checks, seeded randomness, Gramian weights.

Not a method: nothing here is registered.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

from scalarize.methods.base import GradientMethod, Method, MethodError, defined

# -- hyperparameter checks (one-line errors for people) ----------------------------------------


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    return f"{left}{lo}, {hi}{right}"


def check_real(
    method: str,
    key: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """A finite real number in the given interval, else :class:`MethodError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise MethodError(f"method {method}: {key} must be a finite number, got {value!r}")
    real = float(value)
    bad_low = low is not None and (real <= low if low_open else real < low)
    bad_high = high is not None and (real >= high if high_open else real > high)
    if bad_low or bad_high:
        span = _interval(low, high, low_open, high_open)
        raise MethodError(f"method {method}: {key} must be in {span}, got {value}")
    return float(value)


def check_int(method: str, key: str, value: Any, *, low: int | None = None) -> int:
    """An integer (not a bool) no smaller than ``low``, else :class:`MethodError`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise MethodError(f"method {method}: {key} must be an integer, got {value!r}")
    if low is not None and value < low:
        raise MethodError(f"method {method}: {key} must be >= {low}, got {value}")
    return int(value)


def check_choice(method: str, key: str, value: Any, choices: Sequence[Any]) -> Any:
    """One of ``choices``, else :class:`MethodError`."""
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise MethodError(f"method {method}: {key} must be one of {allowed}, got {value!r}")
    return value


def task_index(method: str, key: str, name: str | None, task_names: Sequence[str]) -> int:
    """Index of the task called ``name`` (the first task when ``name`` is ``None``)."""
    if name is None:
        return 0
    if name not in task_names:
        raise MethodError(f"method {method}: {key} {name!r} is not a task; tasks: {', '.join(task_names)}")
    return list(task_names).index(name)


# -- devices --------------------------------------------------------------------------------------


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of the module's first tensor (CPU if it has none)."""
    for tensor in (*module.parameters(), *module.buffers()):
        return tensor.device
    return torch.device("cpu")


@contextmanager
def same_device(module: torch.nn.Module) -> Iterator[None]:
    """Moves what the block creates to the device the module was on before it (``setup`` may
    run after the trainer's ``method.to(device)``)."""
    device = device_of(module)
    yield
    module.to(device)


# -- seeded randomness kept in state_dict -------------------------------------------------------


def make_generator(method: str, seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``; ``None`` draws the seed from torch's global RNG
    (so that ``torch.manual_seed`` makes runs reproducible)."""
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    seed = check_int(method, "seed", seed, low=0)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


@contextmanager
def global_rng_from(generator: torch.Generator) -> Iterator[None]:
    """Runs code that draws from torch's global CPU RNG (e.g. a torchjd weighting) on
    ``generator`` instead, advancing it and leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        yield
        generator.set_state(torch.get_rng_state())


class SeededMethod(Method):
    """Mixin for methods that draw random numbers: a ``seed`` argument and an own generator,
    whose state lands in ``state_dict`` (as extra state)."""

    generator: torch.Generator

    def init_generator(self, seed: int | None) -> None:
        self.generator = make_generator(self.name, seed)

    def get_extra_state(self) -> dict[str, Any]:
        return {"rng": self.generator.get_state()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["rng"])


# -- gradient methods defined by weights on the task gradients ---------------------------------


class WeightedGradientMethod(GradientMethod):
    """A gradient method whose direction is ``w @ G`` for weights ``w`` computed from ``G``.

    Subclasses implement :meth:`weights`; the last weights are kept for :meth:`current_weights`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("last_weights", torch.zeros(0), persistent=False)

    def weights(self, gradients: Tensor, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def aggregate(self, gradients: Tensor, losses: Tensor) -> Tensor:
        w = self.weights(gradients, losses).to(gradients)
        self.last_weights = w.detach().clone()
        return w @ gradients

    def current_weights(self) -> Tensor | None:
        return defined(self.last_weights)


def gramian(gradients: Tensor) -> Tensor:
    """``G Gᵀ`` in float64 (the weightings solve small problems on it)."""
    g = gradients.detach()
    return (g @ g.T).double()


def clip_norm(direction: Tensor, max_norm: float) -> Tensor:
    """``direction`` scaled down to norm ``max_norm`` when it is longer (``max_norm = 0``: as it
    is): ``clip_grad_norm_`` on a flat update, without a host synchronisation."""
    if max_norm <= 0:
        return direction
    clipped: Tensor = direction * (max_norm / direction.norm()).clamp(max=1.0)
    return clipped


def project_onto_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of a vector onto the probability simplex (Duchi et al. 2008)."""
    u = torch.sort(v, descending=True).values
    css = torch.cumsum(u, dim=0) - 1.0
    ks = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    rho = int(torch.nonzero(u - css / ks > 0).max())
    return torch.clamp(v - css[rho] / (rho + 1), min=0.0)


class JacobianStateMixin:
    """Extra state of methods that keep per-task statistics the size of the shared gradient
    (``[T, n]``, created on the first step): saved in ``state_dict`` as extra state, since its
    shape is unknown before the first step (a buffer of another shape would not load)."""

    _jacobian_state_keys: tuple[str, ...] = ()

    def get_extra_state(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in self._jacobian_state_keys}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        for key in self._jacobian_state_keys:
            value = state[key]
            setattr(self, key, None if value is None else value.clone())
