"""Population-based training of the scalarization weights (Royer et al., NeurIPS 2023).

PBT (Jaderberg et al. 2017): N members train together; every ``interval`` evaluations they are
ranked by a validation fitness; each member of the bottom fraction copies a member of the top
(parameters, optimizer state, sampler state, weights, learning rate) and explores: its weights
are multiplied by factors and put back on the simplex, or resampled from a Dirichlet prior
(:class:`scalarize.search.PBTPolicy`). PB2 (Parker-Holder et al. 2020) picks the explored
weights with a time-varying GP bandit instead (:func:`scalarize.search.pb2_explore`).

The local engine runs on the stacked population: an exploit is an in-memory copy of member
slices; the whole population, the lineage and the sync index are checkpointed at every
evaluation, so a killed run resumes from its last sync with its lineage intact. Every member's
metrics and weights and the lineage go to the experiment's SQLite store.

The result is a **schedule** of weights (the one the best member's final model experienced,
:func:`scalarize.search.schedule_of`) and the best member's model.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from scalarize.data.benchmark import Benchmark
from scalarize.population.members import Member
from scalarize.population.stacked import StackedPopulation
from scalarize.search.fitness import build_fitness, fitness_vector
from scalarize.search.pbt import PBTPolicy, initial_rows, lineage_rows, schedule_of
from scalarize.store.database import Store
from scalarize.train.config import (
    ConfigError,
    Strict,
    TrainConfig,
    apply_overrides,
    build_config,
    load_config,
)
from scalarize.train.evaluate import primary_metrics
from scalarize.train.experiment import check_not_conflicting, prepare


class PBTSpec(Strict):
    algorithm: Literal["pbt", "pb2"] = "pbt"
    population: int = Field(default=8, ge=1, le=4096)
    interval: int = Field(default=1, ge=1, description="evaluations between syncs")
    quantile: float = Field(default=0.25, gt=0, le=0.5)
    factors: list[float] = Field(default_factory=lambda: [0.8, 1.2], min_length=1)
    resample_probability: float = Field(default=0.25, ge=0, le=1)
    explore_lr: bool = False
    lr_bounds: tuple[float, float] = (1e-5, 1.0)
    dirichlet_alpha: float = Field(default=1.0, gt=0)
    initial: Literal["dirichlet", "uniform"] = "dirichlet"
    fitness: str | dict[str, Any] = "mean_primary"
    seed: int = 0
    backend: Literal["local", "ray"] = "local"
    address: str | None = None
    compare_uniform: bool = True


class PBTConfig(TrainConfig):
    pbt: PBTSpec = Field(default_factory=PBTSpec)

    def policy(self) -> PBTPolicy:
        spec = self.pbt
        try:
            return PBTPolicy(
                interval=spec.interval, quantile=spec.quantile, factors=tuple(spec.factors),
                resample_probability=spec.resample_probability, explore_lr=spec.explore_lr,
                lr_bounds=tuple(spec.lr_bounds), dirichlet_alpha=spec.dirichlet_alpha, seed=spec.seed,
            )
        except ValueError as error:
            raise ConfigError(f"pbt: {error}") from None


def load_pbt_config(path, overrides: list[str] | None = None) -> PBTConfig:
    return load_config(path, overrides, PBTConfig)


def initial_members(config: PBTConfig, num_objectives: int) -> list[Member]:
    """The starting population: weights from the prior (or uniform), seeds ``seed + i``."""
    rng = np.random.default_rng([config.pbt.seed, 2**31])
    base = json.loads(config.model_dump_json(exclude={"pbt"}))
    members = []
    for index in range(config.pbt.population):
        if config.pbt.initial == "uniform":
            weights = np.full(num_objectives, 1.0 / num_objectives)
        else:
            weights = rng.dirichlet(np.full(num_objectives, config.pbt.dirichlet_alpha))
        overrides = [f"method.weights={json.dumps(weights.tolist())}", f"seed={config.seed + index}"]
        members.append(Member(f"{config.name}-m{index:02d}", build_config(apply_overrides(base, overrides))))
    return members


def member_fingerprint(config: PBTConfig, member: Member) -> str:
    """A member's identity: its starting config and the search's settings (where it runs aside)."""
    import hashlib

    search = config.pbt.model_dump_json(exclude={"backend", "address", "compare_uniform"})
    return hashlib.sha256((member.config.fingerprint() + search).encode()).hexdigest()[:16]


@dataclass
class PBTResult:
    config: PBTConfig
    members: list[Member]
    best: int
    fitness: list[float]
    val: dict[str, float]
    test: dict[str, float]
    schedule: list[tuple[int, list[float]]]
    lineage: list[dict]
    primary: list[tuple[str, bool]] = field(default_factory=list)
    uniform: Any = None

    @property
    def best_name(self) -> str:
        return self.members[self.best].name


class LocalPBT:
    """Runs PBT/PB2 on a :class:`StackedPopulation` (see the module docstring)."""

    def __init__(self, config: PBTConfig, benchmark: Benchmark, store: Store, *, progress: bool = True,
                 log: Callable[[str], None] = lambda _: None) -> None:
        self.config = config
        self.benchmark = benchmark
        self.store = store
        self.log = log
        self.policy = config.policy()
        self.members = initial_members(config, len(benchmark.objectives))
        self.primary = primary_metrics(benchmark)
        try:
            self.fitness_fn = build_fitness(config.pbt.fitness, self.primary)
        except ValueError as error:
            raise ConfigError(f"pbt.fitness: {error}") from None
        for member in self.members:
            store.start_run(member.name, "pbt", member.config.model_dump(mode="json"), member_fingerprint(config, member))
        self.population = StackedPopulation(
            self.members, benchmark, store=store, progress=progress, label=config.name,
            checkpoint_path=config.experiment_dir() / "runs" / f"pbt-{config.name}.pt",
        )
        self.population.on_evaluation = self._sync
        self.population.extra_state = {"lineage": [], "fitness_log": []}

    # -- the sync --------------------------------------------------------------------------------
    def _fitness(self) -> np.ndarray:
        metrics = [h[-1] if h else {} for h in self.population.histories]
        values = fitness_vector(self._fitness_of, metrics)
        values[~self.population.alive.numpy()] = np.nan
        return values

    def _fitness_of(self, history_row: dict) -> float:
        metrics = {k[4:]: v for k, v in history_row.items() if k.startswith("val/")}
        if not metrics:
            return float("nan")
        return self.fitness_fn(metrics)

    def _hyperparams(self) -> list[dict]:
        lr = self.config.optimizer.lr
        return [
            {"weights": self.population.weights[i].double().cpu().numpy(), "lr": lr * float(self.population.lr_scale[i])}
            for i in range(self.population.size)
        ]

    def _sync(self, population: StackedPopulation) -> None:
        time, step = population.evaluation, population.step
        state = population.extra_state
        fitness = self._fitness()
        state["fitness_log"].append({"time": time, "fitness": fitness.tolist(), "weights": population.weights.tolist()})
        if not state["lineage"]:
            rows = [dict(r.as_dict(), step=0) for r in initial_rows(self._hyperparams(), time=0)]
            self._record(rows, [float("nan")] * population.size)
        if time % self.policy.interval != 0 or step >= population.total_steps or population.size == 1:
            return
        if not np.isfinite(fitness).any():
            return
        decisions = self.policy.decide(fitness, self._hyperparams(), step=time)
        if self.config.pbt.algorithm == "pb2":
            decisions = self._pb2(decisions, time)
        exploited = [d for d in decisions if d.exploited]
        for decision in exploited:
            population.copy_member(decision.source, decision.member)
        for decision in exploited:
            population.set_weights(decision.member, torch.as_tensor(decision.weights))
            if decision.lr is not None:
                population.lr_scale[decision.member] = decision.lr / self.config.optimizer.lr
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
                gain = after["fitness"][member] - before["fitness"][member]
                times.append(after["time"])
                weights.append(before["weights"][member])
                gains.append(gain)
        exploited = [d for d in decisions if d.exploited]
        if not exploited or not times:
            return decisions
        kept = [d.weights for d in decisions if not d.exploited]
        picks = pb2_explore(times, weights, gains, time, len(exploited), np.random.default_rng([self.policy.seed, time, 2]),
                            pending=np.array(kept) if kept else None)
        chosen = iter(picks)
        return [type(d)(d.member, d.source, next(chosen), d.lr, ("weights",)) if d.exploited else d for d in decisions]

    def _record(self, rows: list[dict], fitness: list[float]) -> None:
        for row, value in zip(rows, fitness):
            row["member"] = self.members[row["member"]].name
            row["source"] = self.members[row["source"]].name
            row["fitness"] = None if not math.isfinite(value) else float(value)
        self.population.extra_state["lineage"].extend(rows)
        self.store.record_lineage(self.config.name, rows)

    # -- the run ---------------------------------------------------------------------------------
    def fit(self) -> PBTResult:
        self.population.fit()
        fitness = self._fitness()
        if not np.isfinite(fitness).any():
            raise RuntimeError("every member of the population diverged")
        best = int(np.nanargmax(fitness))
        val = self.population.evaluate_member(best, "val")
        test = self.population.evaluate_member(best, "test")
        lineage = self.store.lineage(self.config.name)
        index = {m.name: i for i, m in enumerate(self.members)}
        history = [dict(r, member=index[r["member"]], source=index[r["source"]]) for r in lineage]
        steps = {r["time"]: r["step"] for r in lineage}
        schedule = [(steps[t], w.tolist()) for t, w in schedule_of(best, history)]
        directory = self.config.experiment_dir()
        torch.save(self.population.member_model(best).state_dict(), directory / "best_model.pt")
        save_result(directory, self.config.name, self.members[best].name, schedule, val, test)
        return PBTResult(self.config, self.members, best, fitness.tolist(), val, test, schedule, lineage, self.primary)


def save_result(directory, search: str, best: str, schedule, val: dict, test: dict) -> None:
    """What replay and later reads need: the best member and its schedule (atomic write)."""
    from scalarize.population.replay import RESULT_FILE

    path = directory / RESULT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"search": search, "best": best, "schedule": schedule, "val": val, "test": test}, indent=1))
    tmp.replace(path)


def run_pbt(config: PBTConfig, *, progress: bool = True, log: Callable[[str], None] = lambda _: None) -> PBTResult:
    """Searches the weights with PBT/PB2 (local engine, or Ray with ``pbt.backend: ray``)."""
    if config.method.name != "scalarization":
        raise ConfigError(f"method.name: PBT searches scalarization weights; got {config.method.name!r}")
    benchmark, _ = prepare(config)
    config.policy()  # validates the policy before anything is written
    try:
        build_fitness(config.pbt.fitness, primary_metrics(benchmark))
    except ValueError as error:
        raise ConfigError(f"pbt.fitness: {error}") from None
    members = initial_members(config, len(benchmark.objectives))
    names = {m.name: member_fingerprint(config, m) for m in members}
    uniform = _uniform_config(config)
    if config.pbt.compare_uniform:
        names[uniform.name] = uniform.fingerprint()
    check_not_conflicting(config, names)
    if config.pbt.backend == "ray":
        from scalarize.backends.ray_backend import run_pbt_ray

        result = run_pbt_ray(config, benchmark, members, progress=progress, log=log)
    else:
        with Store(config.experiment_dir()) as store:
            log(f"PBT ({config.pbt.algorithm}, local engine): {len(members)} members on {benchmark.name}, "
                f"sync every {config.pbt.interval} evaluation(s)")
            result = LocalPBT(config, benchmark, store, progress=progress, log=log).fit()
    if config.pbt.compare_uniform:
        from scalarize.methods.scalarization import Scalarization
        from scalarize.train.experiment import train_one

        with Store(config.experiment_dir()) as store:
            log(f"training uniform scalarization on the same budget ({uniform.name})")
            method = Scalarization()
            method.setup(benchmark.objectives, benchmark.setting)
            result.uniform = train_one(uniform, benchmark, method, store, uniform.name, "uniform",
                                       uniform.fingerprint(), progress)
    return result


def _uniform_config(config: PBTConfig) -> TrainConfig:
    data = json.loads(config.model_dump_json(exclude={"pbt"}))
    data["name"] = f"{config.name}-uniform"
    data["method"] = {"name": "scalarization"}
    return TrainConfig.model_validate(data)
