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
from scalarize.experiments.train import check_not_conflicting, stl_runs
from scalarize.population.members import Member, member_name
from scalarize.search import designs
from scalarize.store.database import Store
from scalarize.experiments.loading import load_experiment_config
from scalarize.train.config import ConfigError, Strict, TrainConfig, build_config, set_key
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.setup import prepare


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
    if config.method.name != "scalarization":
        raise ConfigError(f"method.name: a sweep varies scalarization weights; got {config.method.name!r}")
    benchmark, _ = prepare(config)
    members = build_members(config, len(benchmark.objectives))
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
    return SweepResult(config, members, results, stl_by_objective, primary_metrics(benchmark))
