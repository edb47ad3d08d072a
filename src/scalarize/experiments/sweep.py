"""``scalarize sweep``: a design of weights (crossed with other factors) trained as populations.

The config is a training config plus a ``sweep`` section::

    sweep:
      design: lattice        # lattice (step), sobol or dirichlet (points), or list (weights)
      step: 0.1
      seeds: [0]             # training seeds, crossed with the weights
      factors: {optimizer.lr: [0.001, 0.0003]}   # any config key, crossed as a grid
      engine: auto           # auto (measured), vectorized or loop
      chunk_size: 16         # members stacked at once at most

Every member is an ordinary training config (its weights, seed and factor values applied), so a
member trained in a sweep equals the same config trained alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from scalarize.backends.base import Backend, get_backend
from scalarize.experiments.loading import load_experiment_config
from scalarize.experiments.train import check_not_conflicting, stl_runs
from scalarize.methods.base import PREFERENCE_INPUT
from scalarize.methods.registry import method_class
from scalarize.population.members import Member, member_name
from scalarize.search import designs
from scalarize.store.database import Store
from scalarize.train.checkpoint import MODEL_FILE, load_checkpoint, run_directory
from scalarize.train.config import ConfigError, Strict, TrainConfig, build_config, set_key
from scalarize.train.evaluate import delta_metrics, evaluate, primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec, is_finished, result_from_store
from scalarize.train.setup import benchmark_from_config, build_model_from_config, prepare
from scalarize.train.trainer import resolve_device


class SweepSpec(Strict):
    design: Literal["lattice", "sobol", "dirichlet", "list"] = "lattice"
    step: float = Field(default=0.1, gt=0, le=1)
    points: int = Field(default=16, ge=1)
    design_seed: int = 0
    weights: list[list[float]] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    factors: dict[str, list[Any]] = Field(default_factory=dict)
    engine: Literal["auto", "vectorized", "loop"] = "auto"
    chunk_size: int = Field(default=16, ge=1)
    backend: Literal["local", "ray"] = "local"
    address: str | None = None
    storage: str | None = None


class SweepConfig(TrainConfig):
    sweep: SweepSpec = Field(default_factory=SweepSpec)


def load_sweep_config(path, overrides: list[str] | None = None, *, log: Callable[[str], None] | None = None) -> SweepConfig:
    """The config from ``path`` (which must have a ``sweep:`` section, or an override that sets
    one) and ``overrides`` (see :mod:`scalarize.experiments.loading`)."""
    return load_experiment_config(path, overrides, SweepConfig, section="sweep", log=log)


def design_weights(spec: SweepSpec, num_objectives: int) -> np.ndarray:
    """The sweep's weight vectors ``[n, k]`` (one-line ConfigError on a bad design)."""
    try:
        if spec.design == "lattice":
            return designs.lattice(num_objectives, spec.step)
        if spec.design == "sobol":
            return designs.sobol_simplex(num_objectives, spec.points, spec.design_seed)
        if spec.design == "dirichlet":
            return designs.dirichlet(num_objectives, spec.points, spec.design_seed)
        if not spec.weights:
            raise ValueError("design 'list' needs sweep.weights: a list of weight vectors")
        for row in spec.weights:
            designs.validate_weights(np.asarray(row, dtype=float), num_objectives)
        return np.asarray(spec.weights, dtype=float)
    except ValueError as error:
        raise ConfigError(f"sweep: {error}") from None


def build_members(config: SweepConfig, num_objectives: int) -> list[Member]:
    """One member per (weights, factor values, seed), weights outermost."""
    weights = design_weights(config.sweep, num_objectives)
    factors = dict(config.sweep.factors)
    factors["seed"] = list(config.sweep.seeds)
    base = json.loads(config.model_dump_json(exclude={"sweep"}))
    members = []
    for index, point in enumerate(designs.grid(weights, **factors)):
        data = json.loads(json.dumps(base))
        set_key(data, "method.weights", [float(w) for w in point["weights"]])
        for key, value in point.items():
            if key != "weights":
                set_key(data, key, value)
        members.append(Member(member_name(config.name, index), build_config(data)))
    return members


@dataclass
class SweepResult:
    config: SweepConfig
    members: list[Member]
    results: dict[str, RunResult]
    stl: dict[str, RunResult] = field(default_factory=dict)
    primary: list[tuple[str, bool]] = field(default_factory=list)
    #: the metrics Δm averages over (every metric of a dense task; else the primary ones)
    delta: list[tuple[str, bool]] = field(default_factory=list)

    def points(self, split: str = "test") -> np.ndarray:
        """``[n, k]``: each completed member's primary metrics (NaN for diverged members)."""
        rows = []
        for member in self.members:
            values = getattr(self.results[member.name], split)
            rows.append([values.get(name, np.nan) for name, _ in self.primary])
        return np.asarray(rows, dtype=float)


def run_sweep(
    config: SweepConfig, *, backend: Backend | None = None, progress: bool = True,
    log: Callable[[str], None] = lambda _: None, on_evaluation: Callable | None = None,
) -> SweepResult:
    """Trains the sweep (and the STL baselines when ``config.stl``) on ``backend`` (default: the
    one the config names); ``on_evaluation`` is passed to the backend."""
    conditioned = _takes_preference(config)
    if config.method.name != "scalarization" and not conditioned:
        raise ConfigError(f"method.name: a sweep varies scalarization weights (or evaluates a preference-conditioned "
                          f"model such as cosmos); got {config.method.name!r}")
    benchmark, _ = prepare(config)
    members = build_members(config, len(benchmark.objectives))
    if conditioned:
        return _one_run_front(config, benchmark, members, progress, log)
    validated: set[str] = set()
    for member in members:  # every factor value is valid before anything is written
        key = member.config.model_dump_json(exclude={"name", "method", "seed"})
        if key not in validated:
            prepare(member.config)
            validated.add(key)
    stl = stl_runs(config, benchmark.objectives) if config.stl else []
    check_not_conflicting(config, [*members, *stl])
    backend = backend or get_backend(config.sweep.backend, address=config.sweep.address, engine=config.sweep.engine,
                                     chunk_size=config.sweep.chunk_size, storage=config.sweep.storage)
    with Store(config.experiment_dir()) as store:
        log(f"sweep {config.name}: {len(members)} members on {benchmark.name} ({', '.join(benchmark.objectives)})")
        results = backend.train(members, store, progress=progress, log=log, on_evaluation=on_evaluation)
        stl_results = get_backend("local", engine="loop").train(stl, store, progress=progress, log=log)
    stl_by_objective = {run.name[len("stl-"):]: stl_results[run.name] for run in stl}
    return SweepResult(config, members, results, stl_by_objective, primary_metrics(benchmark), delta_metrics(benchmark))


def _takes_preference(config: SweepConfig) -> bool:
    method = method_class(config.method.name)
    return method is not None and PREFERENCE_INPUT in method.needs


def front_model_run(config: SweepConfig) -> RunSpec:
    """The one training run of a one-run front: the sweep's config, trained once."""
    return RunSpec(f"{config.name}-model", TrainConfig.model_validate(config.model_dump(exclude={"sweep"})), "front-model")


def _one_run_front(config: SweepConfig, benchmark, members: list[Member], progress: bool,
                   log: Callable[[str], None]) -> SweepResult:
    """A preference-conditioned model (COSMOS) trained once, then evaluated at every weight of
    the design: each weight is a member of the sweep (kind ``front-point``), at the cost of one run."""
    model_run = front_model_run(config)
    points = [RunSpec(m.name, m.config, "front-point", f"{model_run.fingerprint}-{index}")
              for index, m in enumerate(members)]
    stl = stl_runs(config, benchmark.objectives) if config.stl else []
    check_not_conflicting(config, [model_run, *points, *stl])
    with Store(config.experiment_dir()) as store:
        log(f"one-run front {config.name}: {config.method.name} trained once, evaluated at {len(points)} weights")
        trained = get_backend("local", engine="loop").train([model_run, *stl], store, progress=progress, log=log)
        results = {p.name: result_from_store(store, p.name) for p in points if is_finished(store, p.name)}
        pending = [p for p in points if p.name not in results]
        if pending:
            model = _reported_model(model_run, store)
            for point in pending:
                results[point.name] = _evaluate_point(point, model, benchmark, store, trained[model_run.name].steps)
    stl_by_objective = {run.name[len("stl-"):]: trained[run.name] for run in stl}
    return SweepResult(config, members, {m.name: results[m.name] for m in members}, stl_by_objective,
                       primary_metrics(benchmark), delta_metrics(benchmark))


def _reported_model(run: RunSpec, store: Store):
    model = build_model_from_config(run.config, benchmark_from_config(run.config.benchmark))
    model.load_state_dict(load_checkpoint(run_directory(store.directory, run.name) / MODEL_FILE))
    return model.to(resolve_device(run.config.device))


def _evaluate_point(point: RunSpec, model, benchmark, store: Store, steps: int) -> RunResult:
    model.set_preference(point.weights)
    device_bench = benchmark.to(resolve_device(point.config.device))
    val, test = evaluate(model, device_bench, "val"), evaluate(model, device_bench, "test")
    with store.transaction():
        store.start_run(point.name, point.kind, point.config.model_dump(mode="json"), point.fingerprint)
        weights = [(steps, o, float(w)) for o, w in zip(benchmark.objectives, point.weights)]
        store.record_evaluation(point.name, 0, steps, {"val": val, "test": test}, weights)
        store.record_final(point.name, {"val": val, "test": test})
        store.finish_run(point.name, "completed", steps)
    return result_from_store(store, point.name)
