"""Population-based training (PBT) of task weights, as pure logic: who copies whom, new weights.

PBT (Jaderberg et al. 2017, "Population Based Training of Neural Networks"), used for
scalarization weights by Royer et al. (NeurIPS 2023): N members train in parallel; every
``interval`` (epochs or steps: the engine picks the unit, the policy only stores it) they are
ranked by a validation fitness, and

- **exploit**: each member of the bottom fraction copies the parameters and optimizer state of
  a member drawn uniformly from the top fraction, together with its hyperparameters;
- **explore**: the copied hyperparameters are perturbed (each weight multiplied by a factor from
  ``factors``, then renormalised to the simplex) or, with probability ``resample_probability``,
  resampled from their prior (Dirichlet(α) for the weights, log-uniform for the lr).

The output of a PBT run is a *schedule* of weights; :func:`schedule_of` rebuilds the one that a
member's final model actually experienced from the :class:`LineageRow` records.

Choices (each tested in ``tests/test_pbt_policy.py``):

- **Quantile size** follows Ray Tune's ``PopulationBasedTraining._quantiles`` exactly:
  ``num = ceil(N · quantile)``, lowered to ``floor(N / 2)`` when larger, so ``num ≥ 1`` for every
  ``N ≥ 2`` and top and bottom never overlap (q = 0.25: N = 1..8 → 0, 1, 1, 1, 2, 2, 2, 2).
  A population of one never exploits.
- **Diverged members** (fitness NaN or ±inf: any non-finite value) rank last and are always in
  the bottom, even when that makes the bottom larger than ``num``; they are never sources. With
  N ≥ 2 and every member diverged there is nothing to copy: :meth:`PBTPolicy.decide` raises.
- **Ties** (equal finite fitness, or several diverged members) are broken by a random
  permutation drawn from the same generator, so exact ties (common with accuracies on small
  validation sets) do not systematically favour low member indices.
- **Weight floor**: after perturbing or resampling, weights are clipped below at
  ``weight_floor`` (1e-6) and renormalised, so a weight is never exactly 0 (a perturbation can
  only multiply it, so a zero would be absorbing). After renormalisation every weight is
  ≥ ``weight_floor / (1 + k · weight_floor)`` and the sum is 1 to rounding.
- **Determinism**: :meth:`PBTPolicy.decide` is a pure function of its arguments. Pass the sync
  index ``step`` (an int) and it draws from ``numpy.random.default_rng([seed, step])``, so a run
  resumed at sync ``step`` makes exactly the decisions the uninterrupted run made; or pass a
  ``numpy.random.Generator`` to control the stream yourself. Draw order: the tie permutation,
  then for each bottom member in increasing member index: the source, then the explore draws
  (:meth:`PBTPolicy.explore`).

No torch and no I/O: numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from scalarize.search.designs import validate_weights

__all__ = [
    "Decision",
    "LineageRow",
    "PBTPolicy",
    "initial_rows",
    "lineage_path",
    "lineage_rows",
    "quantile_count",
    "schedule_of",
]


#: A population's fitness as :meth:`PBTPolicy.decide` takes it: ``[N]`` for PBT, ``[N, K]``
#: (members × objectives) for :class:`~scalarize.search.mopbt.MOPBTPolicy`.
Fitness = Sequence[float] | Sequence[Sequence[float]] | np.ndarray


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_))


def quantile_count(n: int, quantile: float) -> int:
    """How many members are in the top (and in the bottom) fraction of a population of ``n``.

    Ray Tune's rule: ``ceil(n · quantile)``, lowered to ``floor(n / 2)`` when it is larger than
    ``n / 2``; 0 when ``n ≤ 1``.
    """
    if not _is_int(n) or n < 0:
        raise ValueError(f"n must be a non-negative int; got {n!r}")
    if n <= 1:
        return 0
    num = math.ceil(n * quantile)
    if num > n / 2:
        num = n // 2
    return int(num)


@dataclass(frozen=True, eq=False)
class Decision:
    """What one member does after a sync.

    ``source`` is the member whose model and optimizer state it continues from (``== member``
    when it is not exploited); ``weights``/``lr`` are its hyperparameters from now on (the
    source's, explored, when exploited; its own, unchanged, otherwise); ``resampled`` names the
    hyperparameters drawn afresh from their prior rather than perturbed (``()`` when perturbed or
    not exploited). Compared by identity (``weights`` is an array).
    """

    member: int
    source: int
    weights: NDArray[np.float64]
    lr: float | None
    resampled: tuple[str, ...] = ()

    @property
    def exploited(self) -> bool:
        return self.source != self.member


@dataclass(frozen=True)
class PBTPolicy:
    """PBT configuration and decisions (see the module docstring for every choice).

    - ``interval``: sync every ``interval`` units (positive int; the engine picks the unit).
    - ``quantile``: top/bottom fraction, in (0, 0.5] (Ray Tune's default 0.25).
    - ``factors``: perturbation factors, each drawn with equal probability (default 0.8, 1.2).
    - ``resample_probability``: probability, per hyperparameter, of resampling from the prior.
    - ``explore_lr``: also explore the learning rate (otherwise the source's lr is copied).
    - ``lr_bounds``: ``(low, high)``, the lr prior (log-uniform) and clipping range.
    - ``dirichlet_alpha``: symmetric Dirichlet prior of resampled weights (1.0: uniform on Δ).
    - ``weight_floor``: smallest weight before the final renormalisation, in [0, 0.01].
    - ``seed``: non-negative int; ``decide(..., step)`` draws from ``default_rng([seed, step])``.
    """

    interval: int
    quantile: float = 0.25
    factors: tuple[float, ...] = (0.8, 1.2)
    resample_probability: float = 0.25
    explore_lr: bool = False
    lr_bounds: tuple[float, float] = (1e-5, 1.0)
    dirichlet_alpha: float = 1.0
    weight_floor: float = 1e-6
    seed: int = 0

    def __post_init__(self) -> None:
        def bad(name: str, allowed: str, value: Any) -> ValueError:
            return ValueError(f"PBTPolicy.{name} must be {allowed}; got {value!r}")

        if not _is_int(self.interval) or self.interval < 1:
            raise bad("interval", "a positive int", self.interval)
        if not _is_real(self.quantile) or not 0 < self.quantile <= 0.5:
            raise bad("quantile", "a number in (0, 0.5]", self.quantile)
        f = self.factors
        if (
            isinstance(f, (str, bytes))
            or not isinstance(f, (Sequence, np.ndarray))
            or len(f) == 0
            or not all(_is_real(x) and math.isfinite(x) and x > 0 for x in f)
        ):
            raise bad("factors", "a non-empty sequence of positive finite numbers", f)
        r = self.resample_probability
        if not _is_real(r) or not 0 <= r <= 1:
            raise bad("resample_probability", "a number in [0, 1]", r)
        if not isinstance(self.explore_lr, (bool, np.bool_)):
            raise bad("explore_lr", "a bool", self.explore_lr)
        b = self.lr_bounds
        if (
            isinstance(b, (str, bytes))
            or not isinstance(b, (Sequence, np.ndarray))
            or len(b) != 2
            or not all(_is_real(x) and math.isfinite(x) for x in b)
            or not 0 < b[0] < b[1]
        ):
            raise bad("lr_bounds", "a pair (low, high) with 0 < low < high, both finite", b)
        a = self.dirichlet_alpha
        if not _is_real(a) or not math.isfinite(a) or a <= 0:
            raise bad("dirichlet_alpha", "a positive finite number", a)
        if not _is_real(self.weight_floor) or not 0 <= self.weight_floor <= 0.01:
            raise bad("weight_floor", "a number in [0, 0.01]", self.weight_floor)
        if not _is_int(self.seed) or self.seed < 0:
            raise bad("seed", "a non-negative int", self.seed)
        object.__setattr__(self, "interval", int(self.interval))
        object.__setattr__(self, "quantile", float(self.quantile))
        object.__setattr__(self, "factors", tuple(float(x) for x in f))
        object.__setattr__(self, "resample_probability", float(r))
        object.__setattr__(self, "explore_lr", bool(self.explore_lr))
        object.__setattr__(self, "lr_bounds", (float(b[0]), float(b[1])))
        object.__setattr__(self, "dirichlet_alpha", float(a))
        object.__setattr__(self, "weight_floor", float(self.weight_floor))
        object.__setattr__(self, "seed", int(self.seed))

    # ------------------------------------------------------------------ helpers

    def is_due(self, time: int) -> bool:
        """Whether ``time`` (in the engine's unit, counted from 0) is a sync: ``time > 0`` and
        a multiple of ``interval``."""
        return _is_int(time) and time > 0 and time % self.interval == 0

    def generator(self, step: int) -> np.random.Generator:
        """The generator of sync ``step``: ``numpy.random.default_rng([seed, step])``."""
        if not _is_int(step) or step < 0:
            raise ValueError(f"step must be a non-negative int (the sync index); got {step!r}")
        return np.random.default_rng([self.seed, int(step)])

    def _rng(self, step: int | np.random.Generator) -> np.random.Generator:
        if isinstance(step, np.random.Generator):
            return step
        return self.generator(step)

    def _finish_weights(self, w: NDArray[np.float64]) -> NDArray[np.float64]:
        w = w / w.sum()
        if self.weight_floor > 0 and np.any(w < self.weight_floor):
            w = np.maximum(w, self.weight_floor)
            w = w / w.sum()
        return w

    # ------------------------------------------------------------------ explore

    def explore(
        self,
        weights: Sequence[float] | np.ndarray,
        lr: float | None,
        rng: np.random.Generator,
    ) -> tuple[NDArray[np.float64], float | None, tuple[str, ...]]:
        """Explore one hyperparameter set; returns ``(weights, lr, resampled)``.

        Weights: with probability ``resample_probability`` a fresh Dirichlet(``dirichlet_alpha``)
        draw; otherwise each weight times a factor drawn independently and uniformly from
        ``factors``; then clipped at ``weight_floor`` and renormalised to sum 1. (With every
        factor equal the renormalised weights do not move; for two factors this happens with
        probability 2^(1−k).)

        lr (only when ``explore_lr``; otherwise returned unchanged): with probability
        ``resample_probability`` log-uniform in ``lr_bounds``, otherwise times one factor from
        ``factors``; then clipped to ``lr_bounds``.

        Draws, in order: one uniform (resample weights?), then k factor indices or one
        Dirichlet vector; if ``explore_lr``: one uniform, then one factor index or one uniform.
        """
        w = np.asarray(weights, dtype=np.float64)
        k = w.size
        resampled: list[str] = []
        if rng.random() < self.resample_probability:
            w = rng.dirichlet(np.full(k, self.dirichlet_alpha))
            resampled.append("weights")
        else:
            w = w * np.asarray(self.factors)[rng.integers(len(self.factors), size=k)]
        w = self._finish_weights(w)
        new_lr = lr
        if self.explore_lr:
            if lr is None:
                raise ValueError("explore_lr is set but the member has no 'lr'")
            lo, hi = self.lr_bounds
            if rng.random() < self.resample_probability:
                new_lr = math.exp(rng.uniform(math.log(lo), math.log(hi)))
                resampled.append("lr")
            else:
                new_lr = float(lr) * self.factors[int(rng.integers(len(self.factors)))]
            new_lr = float(min(max(new_lr, lo), hi))
        return w, new_lr, tuple(resampled)

    # ------------------------------------------------------------------ exploit

    def fitness_array(self, fitness: Fitness) -> NDArray[np.float64]:
        """``fitness`` as a float64 array ``[N]``; ValueError unless 1-D and non-empty."""
        f = np.asarray(fitness, dtype=np.float64)
        if f.ndim != 1 or f.size == 0:
            raise ValueError(f"fitness must be a non-empty 1-D array [N]; got shape {f.shape}")
        return f

    def diverged(self, fitness: NDArray[np.float64]) -> NDArray[np.bool_]:
        """Mask ``[N]`` of the diverged members: a non-finite fitness."""
        return ~np.isfinite(fitness)

    def rank(self, fitness: Fitness, rng: np.random.Generator) -> NDArray[np.int64]:
        """Member indices best first: finite fitness descending, then the diverged (non-finite)
        members; ties broken by one ``rng.permutation(N)`` draw."""
        f = np.asarray(fitness, dtype=np.float64)
        perm = rng.permutation(f.size)
        fp = f[perm]
        diverged = ~np.isfinite(fp)
        key = np.where(diverged, 0.0, -fp)
        order: NDArray[np.int64] = perm[np.lexsort((key, diverged))]  # stable: ties keep perm order
        return order

    def ranking_fitness(
        self, fitness: Sequence[float] | np.ndarray, objectives: np.ndarray | Sequence[Sequence[float]]
    ) -> NDArray[np.float64]:
        """What :meth:`decide` ranks, chosen from an engine's two measures of its members:
        ``fitness`` ``[N]`` (the search's scalar fitness, higher is better) and ``objectives``
        ``[N, K]`` (each objective's primary validation metric, raw). PBT ranks by the fitness;
        an engine passes both and never asks which policy it runs."""
        return np.asarray(fitness, dtype=np.float64)

    def front(
        self, fitness: Sequence[float] | np.ndarray, objectives: np.ndarray | Sequence[Sequence[float]]
    ) -> list[int]:
        """The members a finished search returns, best first (arguments as
        :meth:`ranking_fitness`): for PBT the one member with the largest finite fitness
        (the first on ties); ``[]`` when no fitness is finite (every member diverged)."""
        f = np.asarray(fitness, dtype=np.float64)
        finite = np.flatnonzero(np.isfinite(f))
        return [int(finite[np.argmax(f[finite])])] if finite.size else []

    def partition(self, fitness: Fitness, rng: np.random.Generator) -> tuple[list[int], list[int]]:
        """``(top, bottom)``: the sources, best first, and the members to replace, ascending.

        ``bottom`` = the last :func:`quantile_count` members of :meth:`rank` plus every diverged
        member; ``top`` = the best ``quantile_count`` members outside ``bottom`` (fewer when too
        few members are finite). Both are empty for a population of one.
        """
        f = np.asarray(fitness, dtype=np.float64)
        n = len(f)
        if n <= 1:
            return [], []
        order = [int(i) for i in self.rank(f, rng)]
        num = quantile_count(n, self.quantile)
        bottom = set(order[n - num :]) | {int(i) for i in np.flatnonzero(self.diverged(f))}
        if len(bottom) == n:
            raise ValueError(f"fitness: all {n} members diverged (non-finite); no member to copy from")
        top = [m for m in order if m not in bottom][:num]
        return top, sorted(bottom)

    def decide(
        self,
        fitness: Fitness,
        hyperparams: Sequence[Mapping[str, Any]],
        step: int | np.random.Generator,
    ) -> list[Decision]:
        """One PBT sync: a :class:`Decision` per member, in member order.

        ``fitness`` ``[N]``: higher is better, non-finite = diverged. ``hyperparams``: one dict
        per member with ``"weights"`` (k non-negative numbers, not all zero) and optionally
        ``"lr"`` (positive; required when ``explore_lr``). ``step``: the sync index (drawing from
        ``default_rng([seed, step])``) or a ``numpy.random.Generator``.

        Bottom members get the explored hyperparameters of a source drawn uniformly from the
        top; the others keep theirs (weights as given, not renormalised).
        """
        f = self.fitness_array(fitness)
        n = len(f)
        if isinstance(hyperparams, Mapping) or len(hyperparams) != n:
            raise ValueError(
                f"hyperparams must be a list of {n} dicts (one per member); "
                f"got {type(hyperparams).__name__}"
                + ("" if isinstance(hyperparams, Mapping) else f" of length {len(hyperparams)}")
            )
        weights, lrs = _check_hyperparams(hyperparams, self.explore_lr)
        k = weights[0].size
        if self.weight_floor * k >= 1:
            raise ValueError(f"PBTPolicy.weight_floor must be < 1/k = {1 / k:g} for {k} tasks; got {self.weight_floor}")
        if not isinstance(step, np.random.Generator) and (not _is_int(step) or step < 0):
            raise ValueError(f"step must be a non-negative int (the sync index) or a numpy Generator; got {step!r}")
        decisions = [Decision(m, m, weights[m].copy(), lrs[m]) for m in range(n)]
        if n == 1:
            return decisions
        rng = self._rng(step)
        top, bottom = self.partition(f, rng)
        for m in bottom:
            src = top[int(rng.integers(len(top)))]
            w, lr, resampled = self.explore(weights[src], lrs[src], rng)
            decisions[m] = Decision(m, src, w, lr, resampled)
        return decisions


def _check_hyperparams(
    hyperparams: Sequence[Mapping[str, Any]], need_lr: bool
) -> tuple[list[NDArray[np.float64]], list[float | None]]:
    weights: list[NDArray[np.float64]] = []
    lrs: list[float | None] = []
    k: int | None = None
    for m, hp in enumerate(hyperparams):
        if not isinstance(hp, Mapping) or "weights" not in hp:
            raise ValueError(f"hyperparams[{m}] must be a dict with 'weights'; got {hp!r}")
        if k is None:
            k = max(int(np.size(hp["weights"])), 1)
        try:
            weights.append(validate_weights(hp["weights"], k))
        except ValueError as err:
            raise ValueError(f"hyperparams[{m}]: {err}") from None
        lr = hp.get("lr")
        if lr is None:
            if need_lr:
                raise ValueError(f"hyperparams[{m}] must have an 'lr' when explore_lr is set")
        elif not _is_real(lr) or not math.isfinite(lr) or lr <= 0:
            raise ValueError(f"hyperparams[{m}]['lr'] must be a positive number; got {lr!r}")
        lrs.append(None if lr is None else float(lr))
    return weights, lrs


# ---------------------------------------------------------------------- lineage


@dataclass(frozen=True)
class LineageRow:
    """One member at one sync, for the engine to store.

    From ``time`` on, ``member`` trains with ``weights`` and ``lr``, starting from the model that
    ``source`` had at ``time`` (``source == member``: its own; initial rows use time 0).
    """

    time: int
    member: int
    source: int
    weights: tuple[float, ...]
    lr: float | None
    resampled: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """Plain types only (lists, floats, ints), e.g. for JSON or SQLite."""
        return {
            "time": self.time,
            "member": self.member,
            "source": self.source,
            "weights": list(self.weights),
            "lr": self.lr,
            "resampled": list(self.resampled),
        }


def lineage_rows(decisions: Iterable[Decision], time: int) -> list[LineageRow]:
    """One :class:`LineageRow` per decision made at ``time``, in the decisions' order."""
    return [
        LineageRow(
            int(time),
            int(d.member),
            int(d.source),
            tuple(float(x) for x in d.weights),
            d.lr,
            tuple(d.resampled),
        )
        for d in decisions
    ]


def initial_rows(hyperparams: Sequence[Mapping[str, Any]], time: int = 0) -> list[LineageRow]:
    """The rows of the starting population (each member its own source), checked like the
    ``hyperparams`` of :meth:`PBTPolicy.decide`."""
    weights, lrs = _check_hyperparams(hyperparams, need_lr=False)
    return [LineageRow(int(time), m, m, tuple(float(x) for x in w), lr) for m, (w, lr) in enumerate(zip(weights, lrs))]


def _row(r: LineageRow | Mapping[str, Any]) -> LineageRow:
    if isinstance(r, LineageRow):
        return r
    try:
        return LineageRow(r["time"], int(r["member"]), int(r["source"]), tuple(r["weights"]), r.get("lr"))
    except (KeyError, TypeError):
        raise ValueError(
            f"history rows must be LineageRow or dicts with time, member, source, weights; got {r!r}"
        ) from None


def lineage_path(member: int, history: Iterable[LineageRow | Mapping[str, Any]]) -> list[int]:
    """Positions in ``history`` of the rows ``member``'s final model descends through, in
    increasing time (the walk of :func:`schedule_of`): from the latest time back, the current
    member's row at each time where it has one, following its ``source`` to earlier times."""
    rows = [_row(raw) for raw in history]
    table: dict[Any, dict[int, int]] = {}
    for position, r in enumerate(rows):
        at = table.setdefault(r.time, {})
        if r.member in at:
            raise ValueError(f"history has two rows for member {r.member} at time {r.time}")
        at[r.member] = position
    if not any(member in at for at in table.values()):
        raise ValueError(f"member {member!r} has no row in the history")
    path: list[int] = []
    cur = member
    for t in sorted(table, reverse=True):
        at_t = table[t].get(cur)
        if at_t is None:
            continue
        path.append(at_t)
        cur = rows[at_t].source
    return path[::-1]


def schedule_of(
    member: int,
    history: Iterable[LineageRow | Mapping[str, Any]],
    key: str = "weights",
) -> list[tuple[Any, Any]]:
    """The hyperparameter schedule that ``member``'s final model experienced.

    Walks the rows backwards from the latest time: at each time with a row for the current
    member, it records ``(time, row.<key>)`` and, when the row's ``source`` differs, follows
    the source for earlier times (the copied model was trained by the source until then).
    Times with no row for the current member are skipped (it kept its hyperparameters), so the
    history may hold every member at every sync or only the changes plus the initial rows.
    Returns ``[(time, value), ...]`` in increasing time: ``value`` applied from ``time`` until
    the next entry; weights as float64 arrays, ``key="lr"`` for the learning rate.
    """
    if key not in ("weights", "lr"):
        raise ValueError(f"key must be 'weights' or 'lr'; got {key!r}")
    rows = [_row(raw) for raw in history]
    path = [rows[p] for p in lineage_path(member, rows)]
    if key == "weights":
        return [(r.time, np.asarray(r.weights, dtype=np.float64)) for r in path]
    return [(r.time, r.lr) for r in path]
