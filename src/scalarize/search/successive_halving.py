"""Early stopping of a sweep's weak members: successive halving, asynchronous across chunks (ASHA).

Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020), rung ``k`` at
resource ``r_k = min_resource · η^k`` (η the ``reduction_factor``); the resource here is a
member's **evaluations** (one every ``eval_every`` steps). The rule, at rung ``k``:

* ``R_k``: every member of the sweep that has reached ``r_k`` evaluations so far (read from the
  store: earlier chunks and batches included, so the rule is ASHA's, not one chunk's), each
  scored by the sweep's fitness (higher is better; a NaN, e.g. a diverged member, is the worst)
  at its ``r_k``-th evaluation;
* the top ``max(1, ⌊|R_k| / η⌋)`` of ``R_k`` (ties: the lower member name first) go on; a
  member of the population training now that is not among them **stops** there. Members that
  already went on are never stopped later at that rung (ASHA never revokes a promotion).

A stacked population reaches a rung with all its members at once, so within one chunk the rule
is synchronous successive halving (Jamieson & Talwalkar 2016): of 9 members with η = 3, 3 go on
at the first rung and 1 at the second. The population then shrinks
(:meth:`~scalarize.population.stacked.StackedPopulation.keep_members`), and the member-steps
not trained are the compute saved. A stopped member keeps its evaluations and its reported one
(by its ``selection`` rule, as every run's) in the store, with status ``stopped``.

Every decision is a function of the values in the store, so a rerun after a kill stops the same
members. :func:`rung_evaluations` and :func:`survivors` are pure (no torch, no I/O);
:func:`train_with_early_stopping` trains members on the stacked engine with the rule applied.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["EarlyStopping", "rung_evaluations", "survivors", "train_with_early_stopping"]


@dataclass(frozen=True)
class EarlyStopping:
    """The rungs' rule: ``min_resource`` evaluations to the first rung, ``reduction_factor`` η,
    or explicit ``rungs`` (evaluation counts, ascending)."""

    min_resource: int = 1
    reduction_factor: int = 3
    rungs: tuple[int, ...] | None = None


def rung_evaluations(rule: EarlyStopping, evaluations: int) -> list[int]:
    """The rungs (evaluation counts) before a member's last evaluation ``evaluations``: the
    explicit ``rungs`` below it, else ``min_resource · η^k`` for ``k = 0, 1, …`` below it.

    >>> rung_evaluations(EarlyStopping(1, 3), 10)
    [1, 3, 9]
    """
    if rule.rungs is not None:
        return [r for r in rule.rungs if 0 < r < evaluations]
    if rule.min_resource < 1 or rule.reduction_factor < 2:
        raise ValueError(f"early stopping: min_resource must be ≥ 1 and reduction_factor ≥ 2; got {rule}")
    out, r = [], rule.min_resource
    while r < evaluations:
        out.append(r)
        r *= rule.reduction_factor
    return out


def survivors(scores: Mapping[str, float], candidates: Sequence[str], reduction_factor: int) -> list[str]:
    """The ``candidates`` that go on at a rung whose recorded scores are ``scores`` (every
    member that reached it, the candidates included): those among the top
    ``max(1, ⌊len(scores) / η⌋)`` by score, descending, NaN last, ties by name; in the order of
    ``candidates``."""
    missing = [c for c in candidates if c not in scores]
    if missing:
        raise ValueError(f"successive halving: no score at this rung for {missing[0]!r}")
    ranked = sorted(scores, key=lambda name: (not math.isfinite(scores[name]), -_finite(scores[name]), name))
    top = set(ranked[: max(1, len(scores) // reduction_factor)])
    return [c for c in candidates if c in top]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


# -- the driver: a stacked population shrinking at its rungs -------------------------------------
Log = Callable[[str], None]


def train_with_early_stopping(
    members: Sequence[Any],
    peers: Sequence[str],
    store: Any,
    rule: EarlyStopping,
    fitness: Callable[[Mapping[str, float]], float],
    *,
    chunk_size: int = 16,
    progress: bool = True,
    log: Log = lambda _: None,
    on_evaluation: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Trains ``members`` (``Member``s; finished ones are read from ``store``) in stacked chunks
    of at most ``chunk_size``, stopping weak members at the rungs (module docstring); ``peers``:
    every member name of the sweep whose rung scores count (ASHA across chunks and batches).
    Returns every member's ``RunResult``."""
    from scalarize.population.members import architecture_key
    from scalarize.train.run import result_from_store

    groups: dict[str, list[Any]] = {}
    for member in members:
        groups.setdefault(architecture_key(member.config), []).append(member)
    for group in groups.values():
        for start in range(0, len(group), chunk_size):
            chunk = group[start : start + chunk_size]
            if not all(finished(store, m.name) for m in chunk):
                _train_chunk(chunk, peers, store, rule, fitness, progress, log, on_evaluation)
    return {m.name: result_from_store(store, m.name) for m in members}


def finished(store: Any, name: str) -> bool:
    """Whether run ``name`` is finished: completed, diverged or stopped."""
    from scalarize.store.database import STOPPED
    from scalarize.train.run import FINISHED

    row = store.run(name)
    return row is not None and row["status"] in (*FINISHED, STOPPED) and row["finished"] is not None


def _train_chunk(
    chunk: list[Any],
    peers: Sequence[str],
    store: Any,
    rule: EarlyStopping,
    fitness: Callable[[Mapping[str, float]], float],
    progress: bool,
    log: Log,
    on_evaluation: Callable[..., Any] | None,
) -> None:
    from scalarize.population.stacked import StackedPopulation
    from scalarize.train.checkpoint import load_checkpoint
    from scalarize.train.setup import benchmark_from_config

    key = hashlib.sha256("|".join(m.name for m in chunk).encode()).hexdigest()[:12]
    checkpoint = store.directory / "runs" / f"asha-{key}.pt"
    by_name = {m.name: m for m in chunk}
    if checkpoint.exists():  # the members the population held when it was saved
        names = load_checkpoint(checkpoint)["extra"]["members"]
    else:
        names = [m.name for m in chunk if not finished(store, m.name)]
    running = [by_name[n] for n in names]
    for member in running:
        store.start_run(member.name, member.kind, member.config.model_dump(mode="json"), member.fingerprint)
    population = StackedPopulation(
        running,
        benchmark_from_config(running[0].config.benchmark),
        store=store,
        checkpoint_path=checkpoint,
        progress=progress,
        label=f"{running[0].name}..{running[-1].name}",
    )
    rungs = rung_evaluations(rule, math.ceil(population.total_steps / population.eval_every))
    log(
        f"engine: vectorized for {len(running)} run(s) (early stopping at evaluations {rungs}: a stacked "
        "population that shrinks)"
    )
    population.on_evaluation = _at_evaluation(peers, store, rule, rungs, fitness, log, on_evaluation)
    population.extra_state = {"members": names}
    _fit(population, store)
    checkpoint.unlink(missing_ok=True)


def _at_evaluation(
    peers: Sequence[str],
    store: Any,
    rule: EarlyStopping,
    rungs: list[int],
    fitness: Callable[[Mapping[str, float]], float],
    log: Log,
    on_evaluation: Callable[..., Any] | None,
) -> Callable[[Any], None]:
    def hook(population: Any) -> None:
        if on_evaluation is not None:
            for index, member in enumerate(population.members):
                if population.alive[index]:
                    on_evaluation(
                        member.name, population.member_model(index), population.step, population.evaluation - 1
                    )
        if population.evaluation in rungs:
            _rung(population, peers, store, rule, rungs.index(population.evaluation), fitness, log)

    return hook


def _rung(
    population: Any,
    peers: Sequence[str],
    store: Any,
    rule: EarlyStopping,
    rung: int,
    fitness: Callable[[Mapping[str, float]], float],
    log: Log,
) -> None:
    """Rung ``rung`` reached by ``population``: its weak members stop, the population shrinks."""
    evaluation = population.evaluation
    scores = {}
    for name in peers:
        metrics = store.evaluation_metrics(name, evaluation - 1, "val")
        if metrics:
            scores[name] = _score(fitness, metrics)
    alive = [m.name for i, m in enumerate(population.members) if population.alive[i]]
    for name in alive:
        scores.setdefault(name, math.nan)
    going_on = set(survivors(scores, alive, rule.reduction_factor))
    stopped = [i for i, m in enumerate(population.members) if m.name in alive and m.name not in going_on]
    if not stopped:
        return
    with store.transaction():
        for index in stopped:
            name = population.members[index].name
            message = (
                f"stopped by successive halving at rung {rung} (evaluation {evaluation}, step "
                f"{population.step} of {population.total_steps}): fitness {scores[name]:.4g} not in the "
                f"top 1/{rule.reduction_factor} of {len(scores)}"
            )
            store.record_costs(name, {"planned_steps": float(population.total_steps)})
            population.records[index].finish("stopped", population.step, 0.0, message)
    log(
        f"successive halving, rung {rung} (evaluation {evaluation}): {len(stopped)} of {len(alive)} member(s) stop; "
        f"{len(scores)} reached this rung"
    )
    kept = [i for i in range(population.size) if i not in stopped]
    if kept:
        population.keep_members(kept)
        population.extra_state = {"members": [m.name for m in population.members]}
    else:
        population.alive[:] = False
        population.extra_state = {"members": [m.name for m in population.members], "done": True}


def _score(fitness: Callable[[Mapping[str, float]], float], metrics: Mapping[str, float]) -> float:
    try:
        return float(fitness(metrics))
    except ValueError:  # a metric missing: a diverged evaluation
        return math.nan


def _fit(population: Any, store: Any) -> None:
    """:meth:`StackedPopulation.fit` less its stopped members: resume, train, finish the rest."""
    from scalarize.train.loop import progress_bar, run

    started = time.perf_counter()
    population.try_resume()
    if not population.extra_state.get("done"):
        bar = progress_bar(population.progress, population.total_steps, population.step, population.label)
        try:
            run(population, population.total_steps, bar)
        finally:
            bar.close()
    seconds = time.perf_counter() - started
    with store.transaction():
        for index, member in enumerate(population.members):
            if not finished(store, member.name):
                store.record_costs(member.name, {"planned_steps": float(population.total_steps)})
                population._finish(index, seconds)
