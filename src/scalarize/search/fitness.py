"""PBT fitness: one number per member from its validation metrics, higher is better.

A fitness function maps a dict of validation metrics (``{"left/accuracy": 0.91,
"task0/mse": 0.12, ...}``) to a float. ``primary`` lists the metrics that matter and their
direction, ``[(name, higher_is_better), ...]``. A NaN among the metrics a function reads gives a
NaN fitness, which :class:`~scalarize.search.pbt.PBTPolicy` treats as a diverged member.

- :func:`mean_primary` — mean of the primary metrics, each signed so that higher is better.
- :func:`weighted_primary` — a weighted mean of the signed primary metrics (a preference).
- :func:`delta_m_fitness` — Δm against single-task values (Maninis et al. 2019;
  :func:`scalarize.pareto.delta_m`), in percent.
- :func:`constrained` — one target metric, penalised below floors on others (ε-constraint).
- :func:`build_fitness` — any of these from a config spec, or a user callable.

No torch and no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scalarize.pareto import delta_m

__all__ = [
    "FITNESS_NAMES",
    "FitnessFn",
    "build_fitness",
    "constrained",
    "delta_m_fitness",
    "fitness_vector",
    "mean_primary",
    "weighted_primary",
]

FitnessFn = Callable[[Mapping[str, float]], float]
Primary = Sequence[tuple[str, bool]]

#: Names accepted by :func:`build_fitness` (besides a callable).
FITNESS_NAMES = ("mean_primary", "weighted", "delta_m", "constrained")


def _check_primary(primary: Primary) -> list[tuple[str, bool]]:
    if isinstance(primary, (str, bytes, Mapping)) or not isinstance(primary, Sequence):
        raise ValueError(f"primary must be a list of (metric name, higher_is_better) pairs; got {primary!r}")
    out: list[tuple[str, bool]] = []
    for item in primary:
        if (
            not isinstance(item, (tuple, list))
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], (bool, np.bool_))
        ):
            raise ValueError(f"primary entries must be (metric name, higher_is_better) pairs; got {item!r}")
        out.append((item[0], bool(item[1])))
    if not out:
        raise ValueError("primary must name at least one metric")
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"primary names a metric twice: {dup}")
    return out


def _read(metrics: Mapping[str, float], names: Sequence[str]) -> NDArray[np.float64]:
    missing = [n for n in names if n not in metrics]
    if missing:
        raise ValueError(
            f"fitness: metric {missing[0]!r} is missing from the validation metrics (have {sorted(metrics)})"
        )
    return np.array([float(metrics[n]) for n in names], dtype=np.float64)


def _named(fn: FitnessFn, name: str) -> FitnessFn:
    fn.__name__ = fn.__qualname__ = name
    return fn


def mean_primary(primary: Primary) -> FitnessFn:
    """``mean_i s_i·M_i`` with ``s_i = +1`` when higher is better and ``−1`` otherwise."""
    prim = _check_primary(primary)
    names = [n for n, _ in prim]
    sign = np.array([1.0 if hi else -1.0 for _, hi in prim])

    def fitness(metrics: Mapping[str, float]) -> float:
        return float(np.mean(sign * _read(metrics, names)))

    return _named(fitness, "mean_primary")


def weighted_primary(primary: Primary, preference: Sequence[float]) -> FitnessFn:
    """``sum_i p_i s_i M_i / sum_i p_i``: a user's preference over the signed primary metrics."""
    prim = _check_primary(primary)
    p = np.asarray(preference, dtype=np.float64).reshape(-1)
    if p.size != len(prim) or not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        raise ValueError(
            f"fitness 'weighted': preference must be {len(prim)} non-negative numbers with a "
            f"positive sum; got {list(p)}"
        )
    names = [n for n, _ in prim]
    sign = np.array([1.0 if hi else -1.0 for _, hi in prim])
    p = p / p.sum()

    def fitness(metrics: Mapping[str, float]) -> float:
        return float(np.sum(p * sign * _read(metrics, names)))

    return _named(fitness, "weighted_primary")


def _stl_vector(primary: list[tuple[str, bool]], stl: Any) -> NDArray[np.float64]:
    names = [n for n, _ in primary]
    if isinstance(stl, Mapping):
        missing = [n for n in names if n not in stl]
        if missing:
            raise ValueError(f"stl has no value for primary metric {missing[0]!r}")
        stl = [stl[n] for n in names]
    try:
        vec = np.asarray(stl, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"stl must be numbers, one per primary metric; got {stl!r}") from None
    if vec.shape != (len(names),):
        raise ValueError(f"stl must have {len(names)} values (one per primary metric); got shape {vec.shape}")
    maximize = [hi for _, hi in primary]
    delta_m(vec, vec, maximize)  # validates: shape [k], finite, strictly positive
    return vec


def delta_m_fitness(primary: Primary, stl: Mapping[str, float] | Sequence[float]) -> FitnessFn:
    """Δm (percent) of the primary metrics against single-task values ``stl``.

    ``stl``: one strictly positive value per primary metric, as ``{name: value}`` or in the
    order of ``primary``. NaN or infinite metrics give NaN (a diverged member).
    """
    prim = _check_primary(primary)
    base = _stl_vector(prim, stl)
    names = [n for n, _ in prim]
    maximize = [hi for _, hi in prim]

    def fitness(metrics: Mapping[str, float]) -> float:
        values = _read(metrics, names)
        if not np.all(np.isfinite(values)):
            return math.nan
        return delta_m(values, base, maximize)

    return _named(fitness, "delta_m")


def constrained(
    target: str,
    floors: Mapping[str, float],
    primary: Primary,
    penalty: float = 1e6,
) -> FitnessFn:
    """The target metric, penalised when any floor is missed.

    Directions come from ``primary`` (the target and every floored metric must be in it). A
    floor is a bound on *quality*: metric ``j`` meets it when ``M_j ≥ floor_j`` if higher is
    better, ``M_j ≤ floor_j`` if lower is better. With ``s`` the target's sign (+1 / −1) and the
    total violation ``v = Σ_j max(0, floor_j − M_j)`` (resp. ``max(0, M_j − floor_j)``), in the
    metrics' raw units::

        fitness = s·M_target                     if v == 0
        fitness = s·M_target − penalty·(1 + v)   otherwise

    so every member that misses a floor ranks below every member that meets them all whenever
    the targets differ by less than ``penalty`` (any accuracy, for the default 1e6), and among
    those that miss, a smaller violation ranks higher. NaN in any metric read gives NaN.
    """
    prim = dict(_check_primary(primary))
    if not isinstance(target, str) or target not in prim:
        raise ValueError(f"constrained: target {target!r} is not a primary metric (have {sorted(prim)})")
    if not isinstance(floors, Mapping) or not floors:
        raise ValueError(f"constrained: floors must be a non-empty {{metric: value}}; got {floors!r}")
    for name, value in floors.items():
        if name not in prim:
            raise ValueError(
                f"constrained: floor metric {name!r} is not a primary metric, so its direction "
                f"is unknown (have {sorted(prim)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not (math.isfinite(value)):
            raise ValueError(f"constrained: floor for {name!r} must be a finite number; got {value!r}")
    if (
        isinstance(penalty, bool)
        or not isinstance(penalty, (int, float))
        or not (math.isfinite(penalty) and penalty > 0)
    ):
        raise ValueError(f"constrained: penalty must be a positive finite number; got {penalty!r}")
    names = list(floors)
    bound = np.array([float(floors[n]) for n in names])
    higher = np.array([prim[n] for n in names])
    sign = 1.0 if prim[target] else -1.0
    pen = float(penalty)

    def fitness(metrics: Mapping[str, float]) -> float:
        t = float(_read(metrics, [target])[0])
        values = _read(metrics, names)
        if not (math.isfinite(t) and np.all(np.isfinite(values))):
            return math.nan
        violation = float(np.sum(np.where(higher, bound - values, values - bound).clip(min=0)))
        return sign * t if violation == 0 else sign * t - pen * (1.0 + violation)

    return _named(fitness, "constrained")


def _user(fn: Callable[..., Any]) -> FitnessFn:
    def fitness(metrics: Mapping[str, float]) -> float:
        value = fn(metrics)
        if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
            raise ValueError(f"fitness callable must return a number; got {value!r}")
        return float(value)

    return _named(fitness, getattr(fn, "__name__", "user"))


def build_fitness(
    spec: str | Mapping[str, Any] | Callable[..., Any],
    primary: Primary,
    stl: Mapping[str, float] | Sequence[float] | None = None,
) -> FitnessFn:
    """A fitness function from a config spec.

    - ``"mean_primary"`` or ``{"name": "mean_primary"}``;
    - ``"delta_m"`` or ``{"name": "delta_m", "stl": ...}`` (``stl`` from the dict or argument);
    - ``{"name": "constrained", "target": name, "floors": {name: value}, "penalty": 1e6}``;
    - a callable ``metrics -> number``, wrapped to return a float.
    """
    allowed = "'mean_primary', {'name': 'weighted', 'preference': [...]}, 'delta_m', {'name': 'constrained', ...} or a callable"
    if callable(spec) and not isinstance(spec, (str, Mapping)):
        _check_primary(primary)
        return _user(spec)
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(f"fitness must be {allowed}; got {spec!r}")
    args = dict(spec)
    name = args.pop("name", None)
    keys: dict[str, set[str]] = {
        "mean_primary": set(),
        "weighted": {"preference"},
        "delta_m": {"stl"},
        "constrained": {"target", "floors", "penalty"},
    }
    if name not in keys:
        raise ValueError(f"fitness: unknown spec {name!r}; allowed: {allowed}")
    extra = sorted(set(args) - keys[name])
    if extra:
        raise ValueError(f"fitness {name!r}: unknown key {extra[0]!r}; allowed: {sorted(keys[name]) + ['name']}")
    if name == "mean_primary":
        return mean_primary(primary)
    if name == "weighted":
        if "preference" not in args:
            raise ValueError("fitness 'weighted' needs 'preference': one number per primary metric")
        return weighted_primary(primary, args["preference"])
    if name == "delta_m":
        base = args.get("stl", stl)
        if base is None:
            raise ValueError("fitness 'delta_m' needs single-task values (stl); none were given")
        return delta_m_fitness(primary, base)
    for key in ("target", "floors"):
        if key not in args:
            raise ValueError(f"fitness 'constrained' needs {key!r} (with 'target' and 'floors')")
    return constrained(args["target"], args["floors"], primary, args.get("penalty", 1e6))


def fitness_vector(fn: FitnessFn, metrics: Sequence[Mapping[str, float]]) -> NDArray[np.float64]:
    """``[fn(m) for m in metrics]`` as a float64 array ``[N]``, the input of ``decide``."""
    return np.array([fn(m) for m in metrics], dtype=np.float64)
