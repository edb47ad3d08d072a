"""The local PBT engine: population-based training of the weights on a stacked population.

PBT (Jaderberg et al. 2017), used for scalarization weights by Royer et al. (NeurIPS 2023): N
members train together; every ``interval`` evaluations they are ranked by a validation fitness;
each member of the bottom fraction copies a member of the top (parameters, optimizer state,
weights, learning rate) and explores its weights (:class:`scalarize.search.PBTPolicy`); PB2
(Parker-Holder et al. 2020) picks the explored weights with a time-varying GP bandit instead
(:func:`scalarize.search.pb2_explore`); MO-PBT (Dushatskiy et al., ICML 2023) ranks by
non-dominated sorting of the objectives' primary validation metrics instead
(:class:`scalarize.search.MOPBTPolicy`). The engine hands the policy both the scalar fitness and
the objectives and never asks which algorithm it runs: the policy picks what it ranks
(``ranking_fitness``) and which members the search returns (``front``).

An exploit is an in-memory copy of member slices; the whole population, the lineage and the sync
index are checkpointed at every evaluation, so a killed search resumes from its last sync with
its lineage intact. Every member's record (the run core's) and the lineage go to the store.

:class:`PBTSearch` is what any backend runs, and :class:`PBTOutcome` what it returns: the best
member is the one with the best fitness at the last evaluation, and its metrics are that
evaluation's (the final model, whose schedule is the result). The outcome also lists the
members the policy returns (``front``: PBT's best member alone, MO-PBT's non-dominated members,
best fitness first) and every member's final objectives.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalarize.data.benchmark import Benchmark
from scalarize.population.stacked import StackedPopulation
from scalarize.search.fitness import build_fitness, fitness_vector
from scalarize.search.mopbt import objective_matrix
from scalarize.search.pbt import PBTPolicy, initial_rows, lineage_path, lineage_rows
from scalarize.store.database import Store
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import DivergedError
from scalarize.train.run import RunSpec


@dataclass
class PBTSearch:
    """A PBT/PB2 search as every backend runs it."""

    name: str
    members: list[RunSpec]
    policy: PBTPolicy
    algorithm: str = "pbt"
    fitness: str | dict[str, Any] = "mean_primary"
    #: the configured learning rate (the policy may explore a multiple of it)
    lr: float = 1e-3


@dataclass
class PBTOutcome:
    """What a search found: the best member at the end, every member's final fitness, the best
    member's last validation and test metrics, its weight schedule and the lineage."""

    best: int
    fitness: list[float]
    val: dict[str, float]
    test: dict[str, float]
    schedule: list[tuple[int, list[float]]]
    lineage: list[dict]
    #: the best member's final model (``state_dict``), when the backend has it
    model_state: dict | None = field(default=None, repr=False)
    #: the members the policy returns, best fitness first (``front[0] == best``)
    front: list[int] = field(default_factory=list)
    #: every member's final objectives ``[N][K]`` (primary validation metrics, raw; NaN: diverged)
    objectives: list[list[float]] = field(default_factory=list)


def last_metrics(history: Sequence[dict[str, float]]) -> dict[str, float]:
    """The validation metrics of the last evaluation of a history (``val/`` prefix removed)."""
    if not history:
        return {}
    return {k[4:]: v for k, v in history[-1].items() if k.startswith("val/")}


def scores(
    fitness_fn, names: Sequence[str], metrics: Sequence[dict[str, float]], alive: Sequence[bool]
) -> tuple[np.ndarray, np.ndarray]:
    """``(fitness [N], objectives [N, K])`` of the members whose last validation metrics are
    ``metrics`` (``{}``: not evaluated): the scalar fitness and the primary metrics ``names``,
    raw; a member not ``alive`` (diverged) is NaN in both."""
    dead = ~np.asarray(alive, dtype=bool)
    fitness = fitness_vector(lambda m: fitness_fn(m) if m else float("nan"), metrics)
    objectives = objective_matrix(metrics, names)
    fitness[dead], objectives[dead] = np.nan, np.nan
    return fitness, objectives


def choose_front(policy: PBTPolicy, fitness: np.ndarray, objectives: np.ndarray) -> list[int]:
    """The members the search returns (``policy.front``); DivergedError when there are none."""
    front = policy.front(fitness, objectives)
    if not front:
        raise DivergedError(
            "pbt: every member of the population diverged (its loss turned non-finite); "
            "lower optimizer.lr or check the data"
        )
    return front


def _indexed(lineage: list[dict], members: Sequence[RunSpec]) -> list[dict]:
    index = {m.name: i for i, m in enumerate(members)}
    return [dict(r, member=index[r["member"]], source=index[r["source"]]) for r in lineage]


def member_lineage(lineage: list[dict], members: Sequence[RunSpec], member: int) -> list[dict]:
    """The stored lineage rows that member ``member``'s final model descends through, in time
    order (:func:`scalarize.search.pbt.lineage_path`): its start, and each copy on its line."""
    return [lineage[p] for p in lineage_path(member, _indexed(lineage, members))]


def best_schedule(lineage: list[dict], members: Sequence[RunSpec], best: int) -> list[tuple[int, list[float]]]:
    """The weight schedule the final model of member ``best`` experienced, from the stored
    lineage: ``[(first step, weights)]``."""
    return [(r["step"], [float(w) for w in r["weights"]]) for r in member_lineage(lineage, members, best)]


class LocalPBT:
    """Runs a :class:`PBTSearch` on a :class:`StackedPopulation` (see the module docstring)."""

    def __init__(
        self,
        search: PBTSearch,
        benchmark: Benchmark,
        store: Store,
        checkpoint: Path,
        *,
        progress: bool = True,
        log: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.search = search
        self.store = store
        self.log = log
        self.policy = search.policy
        self.members = search.members
        self.fitness_fn = build_fitness(search.fitness, primary_metrics(benchmark))
        self.objective_names = [name for name, _ in primary_metrics(benchmark)]
        for member in self.members:
            store.start_run(member.name, member.kind, member.config.model_dump(mode="json"), member.fingerprint)
        self.population = StackedPopulation(
            self.members,
            benchmark,
            store=store,
            progress=progress,
            label=search.name,
            checkpoint_path=checkpoint,
        )
        self.population.on_evaluation = self._sync
        self.population.extra_state = {"lineage": [], "fitness_log": []}

    # -- the sync --------------------------------------------------------------------------------
    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        """``(fitness [N], objectives [N, K])`` at the last evaluation (:func:`scores`)."""
        metrics = [last_metrics(h) for h in self.population.histories]
        return scores(self.fitness_fn, self.objective_names, metrics, self.population.alive.numpy())

    def _hyperparams(self) -> list[dict]:
        return [
            {
                "weights": self.population.weights[i].double().cpu().numpy(),
                "lr": self.search.lr * float(self.population.lr_scale[i]),
            }
            for i in range(self.population.size)
        ]

    def _sync(self, population: StackedPopulation) -> None:
        time, step = population.evaluation, population.step
        state = population.extra_state
        fitness, objectives = self._scores()
        state["fitness_log"].append({"time": time, "fitness": fitness.tolist(), "weights": population.weights.tolist()})
        if not state["lineage"]:
            rows = [dict(r.as_dict(), step=0) for r in initial_rows(self._hyperparams(), time=0)]
            self._record(rows, [float("nan")] * population.size)
        if time % self.policy.interval != 0 or step >= population.total_steps or population.size == 1:
            return
        ranked = self.policy.ranking_fitness(fitness, objectives)
        if self.policy.diverged(ranked).all():
            return
        decisions = self.policy.decide(ranked, self._hyperparams(), step=time)
        if self.search.algorithm == "pb2":
            decisions = self._pb2(decisions, time)
        exploited = [d for d in decisions if d.exploited]
        for decision in exploited:
            population.copy_member(decision.source, decision.member)
        for decision in exploited:
            population.set_weights(decision.member, torch.as_tensor(decision.weights))
            if decision.lr is not None:
                population.lr_scale[decision.member] = decision.lr / self.search.lr
        rows = [dict(r.as_dict(), step=step) for r in lineage_rows(exploited, time)]
        self._record(rows, [fitness[d.member] for d in exploited])
        if exploited:
            moves = ", ".join(f"{self.members[d.member].name}<-{self.members[d.source].name}" for d in exploited)
            self.log(f"sync {time} (step {step}): {moves}")

    def _pb2(self, decisions, time: int):
        from scalarize.search.pb2 import pb2_explore

        log = self.population.extra_state["fitness_log"]
        times, weights, gains = [], [], []
        for before, after in zip(log[:-1], log[1:]):
            for member in range(self.population.size):
                times.append(after["time"])
                weights.append(before["weights"][member])
                gains.append(after["fitness"][member] - before["fitness"][member])
        exploited = [d for d in decisions if d.exploited]
        if not exploited or not times:
            return decisions
        kept = [d.weights for d in decisions if not d.exploited]
        picks = pb2_explore(
            times,
            weights,
            gains,
            time,
            len(exploited),
            np.random.default_rng([self.policy.seed, time, 2]),
            pending=np.array(kept) if kept else None,
        )
        chosen = iter(picks)
        return [type(d)(d.member, d.source, next(chosen), d.lr, ("weights",)) if d.exploited else d for d in decisions]

    def _record(self, rows: list[dict], fitness: list[float]) -> None:
        for row, value in zip(rows, fitness):
            row["member"] = self.members[row["member"]].name
            row["source"] = self.members[row["source"]].name
            row["fitness"] = None if not math.isfinite(value) else float(value)
        self.population.extra_state["lineage"].extend(rows)
        self.store.record_lineage(self.search.name, rows)

    # -- the run ---------------------------------------------------------------------------------
    def fit(self) -> PBTOutcome:
        self.population.fit()
        fitness, objectives = self._scores()
        front = choose_front(self.policy, fitness, objectives)
        best = front[0]
        val = self.population.evaluate_member(best, "val")
        test = self.population.evaluate_member(best, "test")
        lineage = self.store.lineage(self.search.name)
        model = {k: v.detach().clone() for k, v in self.population.member_model(best).state_dict().items()}
        return PBTOutcome(
            best,
            fitness.tolist(),
            val,
            test,
            best_schedule(lineage, self.members, best),
            lineage,
            model,
            front,
            objectives.tolist(),
        )
