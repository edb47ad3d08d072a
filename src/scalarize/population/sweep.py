"""A scalarization sweep: a design of weights (crossed with other factors) trained as populations.

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

from scalarize.population.engine import train_members
from scalarize.population.members import Member, member_name
from scalarize.search import designs
from scalarize.store.database import Store
from scalarize.train.config import ConfigError, Strict, TrainConfig, apply_overrides, build_config, load_config
from scalarize.train.experiment import check_not_conflicting, prepare, stl_names, train_stl
from scalarize.train.evaluate import primary_metrics
from scalarize.train.trainer import RunResult


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


class SweepConfig(TrainConfig):
    sweep: SweepSpec = Field(default_factory=SweepSpec)


def load_sweep_config(path, overrides: list[str] | None = None) -> SweepConfig:
    return load_config(path, overrides, SweepConfig)


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
        overrides = [f"method.weights={json.dumps([float(w) for w in point['weights']])}"]
        overrides += [f"{key}={json.dumps(value)}" for key, value in point.items() if key != "weights"]
        member_config = build_config(apply_overrides(base, overrides))
        members.append(Member(member_name(config.name, index), member_config))
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
    config: SweepConfig, *, progress: bool = True, log: Callable[[str], None] = lambda _: None,
    on_evaluation: Callable | None = None,
) -> SweepResult:
    """Trains the sweep (and the STL baselines when ``config.stl``); ``on_evaluation`` is passed
    to :func:`~scalarize.population.engine.train_members`."""
    if config.method.name != "scalarization":
        raise ConfigError(f"method.name: a sweep varies scalarization weights; got {config.method.name!r}")
    benchmark, _ = prepare(config)
    members = build_members(config, len(benchmark.objectives))
    for member in members:
        prepare(member.config)  # every factor value is valid before anything is written
    names = {m.name: m.config.fingerprint() for m in members}
    if config.stl:
        names.update(stl_names(config, benchmark.objectives))
    check_not_conflicting(config, names)
    with Store(config.experiment_dir()) as store:
        log(f"sweep {config.name}: {len(members)} members on {benchmark.name} ({', '.join(benchmark.objectives)})")
        if config.sweep.backend == "ray":
            from scalarize.backends.ray_backend import train_members_ray

            results = train_members_ray(members, benchmark, store, address=config.sweep.address, progress=progress, log=log)
        else:
            results = train_members(
                members, benchmark, store, engine=config.sweep.engine, chunk_size=config.sweep.chunk_size,
                progress=progress, log=log, on_evaluation=on_evaluation,
            )
        stl = train_stl(config, benchmark, store, progress, log) if config.stl else {}
    return SweepResult(config, members, results, stl, primary_metrics(benchmark))
