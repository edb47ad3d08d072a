"""``scalarize pbt``: population-based training of the scalarization weights (Royer et al., NeurIPS 2023).

PBT (Jaderberg et al. 2017): N members train together; every ``interval`` evaluations they are
ranked by a validation fitness; each member of the bottom fraction copies a member of the top
(parameters, optimizer state, sampler state, weights, learning rate) and explores: its weights
are multiplied by factors and put back on the simplex, or resampled from a Dirichlet prior
(:class:`scalarize.search.PBTPolicy`). PB2 (Parker-Holder et al. 2020) picks the explored
weights with a time-varying GP bandit instead (:func:`scalarize.search.pb2_explore`). MO-PBT
(Dushatskiy et al., ICML 2023; ``pbt.algorithm: mo-pbt``) keeps PBT's exploit and explore but ranks
the members by non-dominated sorting of the objectives' primary validation metrics (one per task
or domain, each in its direction), then by a diversity order inside each front (``pbt.diversity``:
``scattered``, the paper's ε-net; ``crowding``, NSGA-II's crowding distance; ``hypervolume``, each
member's exclusive hypervolume contribution): :class:`scalarize.search.MOPBTPolicy`.

The config becomes a :class:`~scalarize.population.pbt.PBTSearch` (the members, the policy, the
fitness), which a backend runs: the local one on a stacked population
(:mod:`scalarize.population.pbt`), Ray Tune's schedulers on trials (:mod:`scalarize.backends.ray`).
Every member's record and the lineage go to the experiment's SQLite store.

The result is a **schedule** of weights (the one the best member's final model experienced,
:func:`scalarize.search.schedule_of`) and the best member's model. MO-PBT's result is the
population's **front**: its non-dominated members on validation (``pbt_result.json``'s ``front``:
names, objectives, schedules, lineage; each model in ``runs/<name>/model.pt``); the best of them
by ``pbt.fitness`` is also ``best`` (``best_model.pt``, what ``scalarize pbt replay`` retrains).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from scalarize.backends.base import Backend, get_backend
from scalarize.data.sampling import build_sampler
from scalarize.experiments.loading import load_experiment_config
from scalarize.experiments.train import check_not_conflicting
from scalarize.files import write_text
from scalarize.population.engine import stackable_inputs
from scalarize.population.members import Member
from scalarize.population.pbt import PBTOutcome, PBTSearch, best_schedule, member_lineage
from scalarize.search.fitness import build_fitness
from scalarize.search.mopbt import MOPBTPolicy
from scalarize.search.pbt import PBTPolicy
from scalarize.store.database import Store
from scalarize.train.checkpoint import MODEL_FILE, run_directory, save_atomically
from scalarize.train.config import ConfigError, Strict, TrainConfig, build_config
from scalarize.train.evaluate import primary_metrics
from scalarize.train.optim import lr_factor
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec, result_from_store
from scalarize.train.setup import prepare

RESULT_FILE = "pbt_result.json"


class PBTSpec(Strict):
    algorithm: Literal["pbt", "pb2", "mo-pbt"] = "pbt"
    diversity: Literal["scattered", "crowding", "hypervolume"] | None = Field(
        default=None, description="mo-pbt only: the order inside a front (default scattered)"
    )
    population: int = Field(default=8, ge=2, le=4096, description="members (at least 2: one to copy, one that copies)")
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
    storage: str | None = None
    compare_uniform: bool = True


class PBTConfig(TrainConfig):
    pbt: PBTSpec = Field(default_factory=PBTSpec)

    def policy(self, primary: list[tuple[str, bool]] | None = None) -> PBTPolicy:
        """The search's policy; ``primary`` (the objectives' primary metrics and directions)
        orients MO-PBT's objectives."""
        spec = self.pbt
        if spec.diversity is not None and spec.algorithm != "mo-pbt":
            raise ConfigError(f"pbt.diversity: only for pbt.algorithm mo-pbt; got algorithm {spec.algorithm!r}")
        common = dict(
            interval=spec.interval,
            quantile=spec.quantile,
            factors=tuple(spec.factors),
            resample_probability=spec.resample_probability,
            explore_lr=spec.explore_lr,
            lr_bounds=tuple(spec.lr_bounds),
            dirichlet_alpha=spec.dirichlet_alpha,
            seed=spec.seed,
        )
        try:
            if spec.algorithm != "mo-pbt":
                return PBTPolicy(**common)
            maximize = tuple(up for _, up in primary) if primary else None
            return MOPBTPolicy(**common, maximize=maximize, diversity=spec.diversity or "scattered")
        except ValueError as error:
            raise ConfigError(f"pbt: {error}") from None


def load_pbt_config(path, overrides: list[str] | None = None, *, log: Callable[[str], None] | None = None) -> PBTConfig:
    """The config from ``path`` (which must have a ``pbt:`` section, or an override that sets
    one) and ``overrides`` (see :mod:`scalarize.experiments.loading`)."""
    return load_experiment_config(path, overrides, PBTConfig, section="pbt", log=log)


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
        data = json.loads(json.dumps(base))
        data["method"]["weights"] = weights.tolist()
        data["seed"] = config.seed + index
        data["selection"] = "last"  # its weights change along training: it reports its final model
        members.append(Member(f"{config.name}-m{index:02d}", build_config(data)))
    return [RunSpec(m.name, m.config, "pbt", member_fingerprint(config, m)) for m in members]


def member_fingerprint(config: PBTConfig, member: Member) -> str:
    """A member's identity: its starting config and the search's settings (where it runs aside)."""
    search = config.pbt.model_dump_json(
        exclude={"backend", "address", "storage", "compare_uniform"}, exclude_none=True
    )  # diversity: null keeps older experiments' identity
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
    #: the schedule's weights averaged over the steps with the learning rate as weight: what the
    #: training actually felt (late weights hardly matter once a decaying learning rate nears 0)
    effective_weights: list[float] = field(default_factory=list)
    #: the members the search returns, best fitness first: PBT's best alone, MO-PBT's front
    front: list[int] = field(default_factory=list)
    #: every member's final result as the store holds it (val/test metrics of its final model)
    results: dict[str, RunResult] = field(default_factory=dict)
    #: every member's learning-rate-weighted weights (its own schedule's, as ``effective_weights``)
    member_weights: list[list[float]] = field(default_factory=list)

    @property
    def best_name(self) -> str:
        return self.members[self.best].name


def lr_weighted_weights(schedule: list[tuple[int, list[float]]], factor, total_steps: int) -> list[float]:
    """``Σ_t f(t) w(t) / Σ_t f(t)`` over the steps ``t < total_steps`` of a piecewise-constant
    ``schedule`` (``[(first step, weights)]``) and a learning-rate multiplier ``f``."""
    return _lr_weighted(schedule, _cumulative(factor, total_steps))


def _cumulative(factor, total_steps: int) -> np.ndarray:
    """``c[t] = Σ_{s<t} f(s)`` for ``t = 0 … total_steps``."""
    return np.concatenate([[0.0], np.cumsum([factor(t) for t in range(total_steps)])])


def _lr_weighted(schedule, cumulative: np.ndarray) -> list[float]:
    """:func:`lr_weighted_weights` with ``cumulative[t] = Σ_{s<t} f(s)`` precomputed."""
    total = len(cumulative) - 1
    starts = [min(step, total) for step, _ in schedule] + [total]
    totals = np.zeros(len(schedule[0][1]))
    for start, end, (_, weights) in zip(starts, starts[1:], schedule):
        totals += (cumulative[end] - cumulative[start]) * np.asarray(weights, dtype=float)
    mass = cumulative[-1]
    return (totals / mass).tolist() if mass > 0 else list(schedule[-1][1])


def save_result(directory, search: str, best: str, schedule, val: dict, test: dict, effective=None, **about) -> None:
    """What replay and later reads need: the best member and its schedule (atomic write);
    ``about``: what the reports say of the search (population, fitness)."""
    path = directory / RESULT_FILE
    data = {
        "search": search,
        "best": best,
        "schedule": schedule,
        "effective_weights": effective,
        "val": val,
        "test": test,
        **about,
    }
    write_text(path, json.dumps(data, indent=1))


def pbt_search(config: PBTConfig, members: list[RunSpec], primary: list[tuple[str, bool]] | None = None) -> PBTSearch:
    return PBTSearch(
        config.name, members, config.policy(primary), config.pbt.algorithm, config.pbt.fitness, config.optimizer.lr
    )


def run_pbt(
    config: PBTConfig,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> PBTResult:
    """Searches the weights with PBT/PB2/MO-PBT on ``backend`` (default: the one ``pbt.backend``
    names) and, with ``pbt.compare_uniform``, trains uniform scalarization on the same budget."""
    if config.method.name != "scalarization":
        raise ConfigError(f"method.name: PBT searches scalarization weights; got {config.method.name!r}")
    benchmark, _ = prepare(config)
    primary = primary_metrics(benchmark)
    config.policy(primary)  # validates the policy before anything is written
    try:
        build_fitness(config.pbt.fitness, primary)
    except ValueError as error:
        raise ConfigError(f"pbt.fitness: {error}") from None
    if backend is None and config.pbt.backend == "local" and not stackable_inputs(benchmark):
        raise ConfigError(
            f"pbt.backend: the local engine trains the population stacked (vmap), which needs tensor inputs; "
            f"{benchmark.name!r} has other inputs (e.g. graphs): use --backend ray (one trial per member)"
        )
    members = initial_members(config, len(benchmark.objectives))
    uniform = RunSpec(f"{config.name}-uniform", _uniform_config(config), "uniform")
    check_not_conflicting(config, [*members, *([uniform] if config.pbt.compare_uniform else [])])
    backend = backend or get_backend(config.pbt.backend, address=config.pbt.address, storage=config.pbt.storage)
    directory = config.experiment_dir()
    with Store(directory) as store:
        log(
            f"PBT ({config.pbt.algorithm}, {backend.name} backend): {len(members)} members on {benchmark.name}, "
            f"sync every {config.pbt.interval} evaluation(s)"
        )
        outcome = backend.pbt(pbt_search(config, members, primary), store, progress=progress, log=log)
        results = {m.name: result_from_store(store, m.name) for m in members}
    if outcome.model_state is not None:
        save_atomically(outcome.model_state, directory / "best_model.pt")
    result = _result(config, members, outcome, results, primary, _lr_cumulative(config, benchmark))
    save_result(
        directory,
        config.name,
        result.best_name,
        outcome.schedule,
        outcome.val,
        outcome.test,
        result.effective_weights,
        population=len(members),
        fitness=config.pbt.fitness,
        algorithm=config.pbt.algorithm,
        diversity=_diversity(config),
        front=front_entries(result, outcome, directory),
    )
    if config.pbt.compare_uniform:
        log(f"training uniform scalarization on the same budget ({uniform.name})")
        with Store(directory) as store:
            result.uniform = get_backend("local", engine="loop").train([uniform], store, progress=progress)[
                uniform.name
            ]
    return result


def _diversity(config: PBTConfig) -> str | None:
    return (config.pbt.diversity or "scattered") if config.pbt.algorithm == "mo-pbt" else None


def _lr_cumulative(config: PBTConfig, benchmark) -> np.ndarray:
    """``c[t] = Σ_{s<t} f(s)`` of the learning-rate multiplier ``f`` over the run's steps."""
    sampler = build_sampler(benchmark, config.batch_size, 0)
    total = config.steps or config.epochs * sampler.steps_per_epoch
    return _cumulative(lr_factor(config, total, sampler.steps_per_epoch), total)


def _result(config, members, outcome: PBTOutcome, results, primary, cumulative) -> PBTResult:
    schedules = [best_schedule(outcome.lineage, members, i) for i in range(len(members))]
    weights = [_lr_weighted(schedule, cumulative) for schedule in schedules]
    return PBTResult(
        config,
        members,
        outcome.best,
        outcome.fitness,
        outcome.val,
        outcome.test,
        outcome.schedule,
        outcome.lineage,
        primary,
        effective_weights=weights[outcome.best],
        front=list(outcome.front) or [outcome.best],
        results=results,
        member_weights=weights,
    )


def front_entries(result: PBTResult, outcome: PBTOutcome, directory) -> list[dict]:
    """``pbt_result.json``'s ``front``: per member the search returns, best fitness first, its
    name, final validation objectives, val/test metrics, weight schedule (``[[first step,
    weights]]``), learning-rate-weighted weights, lineage (the rows its final model descends
    through) and model file."""
    names = [name for name, _ in result.primary]
    entries = []
    for index in result.front:
        member = result.members[index]
        run = result.results[member.name]
        model = run_directory(directory, member.name) / MODEL_FILE
        lineage = member_lineage(outcome.lineage, result.members, index)
        entries.append(
            {
                "name": member.name,
                "objectives": dict(zip(names, outcome.objectives[index])) if outcome.objectives else {},
                "val": run.val,
                "test": run.test,
                "schedule": best_schedule(outcome.lineage, result.members, index),
                "effective_weights": result.member_weights[index],
                "lineage": [{k: row[k] for k in ("time", "step", "member", "source", "weights")} for row in lineage],
                "model": str(model.relative_to(directory)) if model.is_file() else None,
            }
        )
    return entries


def _uniform_config(config: PBTConfig) -> TrainConfig:
    data = json.loads(config.model_dump_json(exclude={"pbt"}))
    data["name"] = f"{config.name}-uniform"
    data["method"] = {"name": "scalarization"}
    return TrainConfig.model_validate(data)
