"""Pick one point of a set by a user preference.

Every rule works on *direction-corrected* values ``s_ij = +x_ij`` when objective ``j`` is
maximised and ``−x_ij`` when it is minimised, so "larger is better" throughout.

Rules (small frozen dataclasses, or the string ``"max_mean"``):

- :class:`MaxMean` — maximise ``mean_j s_ij``.
- :class:`WeightedPreference` — maximise ``Σ_j w_j s_ij`` (``w ≥ 0``, not all zero); this is
  linear scalarization of the results (Miettinen 1999, §3.1).
- :class:`AtLeast` / :class:`AtMost` — ε-constraint (Haimes et al. 1971): keep the points with
  ``x_ij ≥ value`` (resp. ``≤``) in the *raw* units of objective ``j``, then maximise the mean of
  the other objectives' ``s`` (the constrained objective itself when there is only one).

The winner is always taken among the non-dominated candidates (for a constraint: non-dominated
among the feasible points), so a zero weight or a tie never returns a dominated point. Remaining
ties (scores within 1e-12 relative) go to the lowest index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from scalarize.pareto.front import BoolSeq, Points, _as_points, non_dominated_mask, to_minimization

__all__ = ["AtLeast", "AtMost", "MaxMean", "Rule", "WeightedPreference", "select"]


@dataclass(frozen=True)
class MaxMean:
    """Maximise the mean of the direction-corrected objectives."""


@dataclass(frozen=True)
class WeightedPreference:
    """Maximise ``Σ_j weights[j] · s_j``; weights are non-negative, finite and not all zero."""

    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0:
            raise ValueError("WeightedPreference weights must be a non-empty 1-D sequence")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or not np.any(w > 0):
            raise ValueError(
                f"WeightedPreference weights must be finite, non-negative and not all zero; got {w.tolist()}"
            )
        object.__setattr__(self, "weights", tuple(float(x) for x in w))


@dataclass(frozen=True)
class _Constraint:
    index: int
    value: float

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, (int, np.integer)):
            raise ValueError(f"{self} index must be an int")
        if self.index < 0:
            raise ValueError(f"{self} index must be non-negative")
        value = float(self.value)
        if not np.isfinite(value):
            raise ValueError(f"{self} value must be finite")
        object.__setattr__(self, "index", int(self.index))
        object.__setattr__(self, "value", value)

    def feasible(self, column: NDArray[np.float64]) -> NDArray[np.bool_]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class AtLeast(_Constraint):
    """Feasible when objective ``index`` is ≥ ``value`` (raw units, whatever its direction)."""

    def feasible(self, column: NDArray[np.float64]) -> NDArray[np.bool_]:
        return column >= self.value

    def describe(self) -> str:
        return f"objective {self.index} >= {self.value!r}"


@dataclass(frozen=True)
class AtMost(_Constraint):
    """Feasible when objective ``index`` is ≤ ``value`` (raw units, whatever its direction)."""

    def feasible(self, column: NDArray[np.float64]) -> NDArray[np.bool_]:
        return column <= self.value

    def describe(self) -> str:
        return f"objective {self.index} <= {self.value!r}"


Rule = MaxMean | WeightedPreference | AtLeast | AtMost


def _as_rule(rule: Rule | str) -> Rule:
    if isinstance(rule, str):
        if rule == "max_mean":
            return MaxMean()
        raise ValueError(
            f"unknown selection rule {rule!r}; allowed: 'max_mean', MaxMean(), "
            "WeightedPreference(weights), AtLeast(index, value), AtMost(index, value)"
        )
    if not isinstance(rule, (MaxMean, WeightedPreference, AtLeast, AtMost)):
        raise ValueError(f"unknown selection rule {rule!r}")
    return rule


def _scores(signed: NDArray[np.float64], rule: Rule) -> NDArray[np.float64]:
    """Score per row (larger is better) of the direction-corrected values ``signed``."""
    k = signed.shape[1]
    if isinstance(rule, WeightedPreference):
        if len(rule.weights) != k:
            raise ValueError(f"WeightedPreference has {len(rule.weights)} weights for {k} objectives")
        score: NDArray[np.float64] = signed @ np.asarray(rule.weights)
    elif isinstance(rule, (AtLeast, AtMost)) and k > 1:
        score = np.delete(signed, rule.index, axis=1).mean(axis=1)
    else:
        score = signed.mean(axis=1)
    return score


def _candidates(pts: NDArray[np.float64], maxi: NDArray[np.bool_], rule: Rule) -> NDArray[np.intp]:
    """Indices eligible under ``rule``: the non-dominated (feasible) points."""
    eligible = np.arange(pts.shape[0])
    if isinstance(rule, (AtLeast, AtMost)):
        if rule.index >= pts.shape[1]:
            raise ValueError(f"{rule.describe()}: index out of range for {pts.shape[1]} objectives")
        column = pts[:, rule.index]
        eligible = np.flatnonzero(rule.feasible(column))
        if eligible.size == 0:
            best = column.max() if isinstance(rule, AtLeast) else column.min()
            raise ValueError(f"no point satisfies the constraint {rule.describe()} (closest: {best:g})")
    return eligible[non_dominated_mask(pts[eligible], maxi)]


def select(points: Points, maximize: BoolSeq, rule: Rule | str = "max_mean") -> int:
    """Index of the row of ``points`` ``[n, k]`` preferred under ``rule`` (see module doc)."""
    pts, maxi = _as_points(points, maximize)
    if pts.shape[0] == 0:
        raise ValueError("cannot select from an empty set of points")
    rule = _as_rule(rule)
    cand = _candidates(pts, maxi, rule)
    score = _scores(-to_minimization(pts[cand], maxi), rule)
    best = score.max()
    tied = score >= best - 1e-12 * max(1.0, abs(best))
    return int(cand[np.argmax(tied)])
