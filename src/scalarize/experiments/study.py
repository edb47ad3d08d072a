"""``scalarize study``: the scaling study (Royer et al., NeurIPS 2023, section 4): how the best weights and the
multi-task gain move with model size, and whether gradient conflict predicts performance.

A grid over model depth x width and over groups (pairs by default) of tasks or domains; in each
cell a weight sweep trained as a population (:mod:`scalarize.experiments.sweep`), and per size one
single-task (STL) model per objective, shared by every group. After every evaluation the gradient
conflict of every member is measured on fixed training batches
(:class:`~scalarize.train.conflict.ConflictProbe`) and stored as split ``conflict``.

    study:
      depths: [1, 2]
      widths: [0.25, 0.5, 1.0]
      groups: null            # default: every pair of objectives; or [[left, right], ...]
      sweep: {design: lattice, step: 0.25}
      seeds: [0]
      conflict_batches: 4
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import Field, field_validator

from scalarize.backends.base import Backend, get_backend
from scalarize.data.benchmark import Benchmark
from scalarize.experiments.loading import load_experiment_config
from scalarize.experiments.sweep import SweepConfig, SweepResult, SweepSpec, run_sweep
from scalarize.store.database import Store
from scalarize.train.config import ConfigError, Strict, TrainConfig
from scalarize.train.conflict import ConflictProbe
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec
from scalarize.train.setup import prepare


class StudySpec(Strict):
    depths: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)
    widths: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0], min_length=1)
    groups: list[list[str]] | None = None
    sweep: SweepSpec = Field(default_factory=lambda: SweepSpec(step=0.25))
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    conflict_batches: int = Field(default=4, ge=1)

    @field_validator("widths")
    @classmethod
    def _widths_are_positive(cls, value: list[float]) -> list[float]:
        """Each width is a ``model.width``: refused here when not > 0, before any cell is made."""
        bad = [w for w in value if not w > 0]
        if bad:
            raise ValueError(f"every width must be > 0 (a model.width), got {bad[0]:g}")
        return value

    @field_validator("depths")
    @classmethod
    def _depths_are_not_negative(cls, value: list[int]) -> list[int]:
        bad = [d for d in value if d < 0]
        if bad:
            raise ValueError(f"every depth must be >= 0 (a model.depth), got {bad[0]}")
        return value


class StudyConfig(TrainConfig):
    study: StudySpec = Field(default_factory=StudySpec)


def load_study_config(
    path, overrides: list[str] | None = None, *, log: Callable[[str], None] | None = None
) -> StudyConfig:
    """The config from ``path`` (which must have a ``study:`` section, or an override that sets
    one) and ``overrides`` (see :mod:`scalarize.experiments.loading`)."""
    return load_experiment_config(path, overrides, StudyConfig, section="study", log=log)


@dataclass
class Cell:
    group: tuple[str, ...]
    depth: int
    width: float
    seed: int
    sweep: SweepResult

    @property
    def label(self) -> str:
        return f"{'+'.join(self.group)} d{self.depth} w{self.width:g} s{self.seed}"


@dataclass
class StudyResult:
    config: StudyConfig
    objectives: list[str]
    cells: list[Cell] = field(default_factory=list)
    stl: dict[tuple[str, int, float, int], RunResult] = field(default_factory=dict)
    primary: dict[str, tuple[str, bool]] = field(default_factory=dict)


def study_groups(config: StudyConfig, objectives: list[str]) -> list[tuple[str, ...]]:
    if config.study.groups is None:
        return list(itertools.combinations(objectives, 2))
    for group in config.study.groups:
        unknown = [o for o in group if o not in objectives]
        if len(group) < 2 or unknown:
            raise ConfigError(f"study.groups: each group needs >= 2 of {', '.join(objectives)}; got {group}")
    return [tuple(g) for g in config.study.groups]


def _cell_config(config: StudyConfig, group, depth: int, width: float, seed: int) -> SweepConfig:
    data = json.loads(config.model_dump_json(exclude={"study"}))
    data.update(
        name=f"{config.name}-{'+'.join(group)}-d{depth}-w{width:g}-s{seed}",
        stl=False,
        seed=seed,
        output=str(config.experiment_dir()),
        sweep=json.loads(config.study.sweep.model_dump_json()) | {"seeds": [seed]},
    )
    data["benchmark"]["objectives"] = list(group)
    data["model"].update(depth=depth, width=width)
    return SweepConfig.model_validate(data)


def _stl_config(config: StudyConfig, objective: str, depth: int, width: float, seed: int) -> TrainConfig:
    data = json.loads(config.model_dump_json(exclude={"study"}))
    data.update(
        name=f"stl-{objective}-d{depth}-w{width:g}-s{seed}",
        stl=False,
        seed=seed,
        output=str(config.experiment_dir()),
        method={"name": "scalarization"},
    )
    data["benchmark"]["objectives"] = [objective]
    data["model"].update(depth=depth, width=width)
    return TrainConfig.model_validate(data)


def run_study(
    config: StudyConfig,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> StudyResult:
    """Trains every cell's sweep and every size's STL models (resuming where it stopped)."""
    benchmark, _ = prepare(config)
    groups = study_groups(config, benchmark.objectives)
    sizes = list(itertools.product(config.study.depths, config.study.widths, config.study.seeds))
    cells = [(g, d, w, s) for g in groups for d, w, s in sizes]
    for group, depth, width, seed in cells:  # every cell is valid before anything is written
        prepare(_cell_config(config, group, depth, width, seed))
    result = StudyResult(config, benchmark.objectives)
    probes: dict[tuple[str, ...], ConflictProbe] = {}
    log(f"study {config.name}: {len(groups)} group(s) x {len(sizes)} size(s)/seed(s) on {benchmark.name}")
    for index, (group, depth, width, seed) in enumerate(cells):
        cell = _cell_config(config, group, depth, width, seed)
        if group not in probes:
            probes[group] = ConflictProbe(
                benchmark.restrict(list(group)), config.study.conflict_batches, config.batch_size, seed=config.seed
            )
        log(f"[{index + 1}/{len(cells)}] {cell.name}")
        with Store(config.experiment_dir()) as store:
            record = _conflict_recorder(store, probes[group])
            sweep = run_sweep(cell, backend=backend, progress=progress, on_evaluation=record)
        result.cells.append(Cell(group, depth, width, seed, sweep))
    objectives = sorted({o for g in groups for o in g}, key=benchmark.objectives.index)
    keys = [(o, d, w, s) for o in objectives for d, w, s in sizes]
    runs = [RunSpec(c.name, c, "stl") for c in (_stl_config(config, *key) for key in keys)]
    with Store(config.experiment_dir()) as store:
        trained = get_backend("local", engine="loop").train(runs, store, progress=progress, log=log)
    result.stl = {key: trained[run.name] for key, run in zip(keys, runs)}
    result.primary = _primary(benchmark)
    return result


def _primary(benchmark: Benchmark) -> dict[str, tuple[str, bool]]:
    return {name.split("/")[0]: (name, up) for name, up in primary_metrics(benchmark)}


def _conflict_recorder(store: Store, probe: ConflictProbe):
    def record(run: str, model, step: int, evaluation: int) -> None:
        store.record_evaluation(run, evaluation, step, {"conflict": probe.measure(model)})

    return record
