"""``scalarize compare``: MTO methods against uniform scalarization on equal terms: same benchmark, model, budget, seeds
and learning-rate grid.

The config is a training config plus a ``compare`` section (its top-level ``method`` is not
used)::

    compare:
      methods:                      # uniform scalarization is always added (label "uniform")
        - {name: pcgrad}
        - {name: cagrad, options: {c: 0.4}}
        - {name: cagrad, options: {c: 0.2}, label: cagrad-0.2}   # labels tell entries apart
      seeds: [0, 1, 2]
      lr_grid: [0.001, 0.0003]      # optional: every method tries every value alike

Every (method, learning rate, seed) is an ordinary run of the experiment's store (kind
``compare``, named ``<label>-lr<lr>-s<seed>``), trained by the backend like ``scalarize
train`` trains its run: a completed run is read back, an interrupted one resumes. The single-task
baselines (``stl-<objective>``, for Δm) are trained once, with the base learning rate and seed,
and are shared with ``scalarize train`` in the same directory. Per method, the learning rate
whose mean validation score over the seeds is best is kept (ties: the first of the grid).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, PositiveFloat, ValidationError

from scalarize.backends.base import Backend, get_backend
from scalarize.data.benchmark import Benchmark
from scalarize.experiments.loading import load_experiment_config
from scalarize.experiments.train import check_not_conflicting, stl_runs
from scalarize.store.database import Store
from scalarize.train.config import ConfigError, Strict, TrainConfig, _describe
from scalarize.train.evaluate import delta_metrics, primary_metrics
from scalarize.train.record import RunResult, selection_score
from scalarize.train.run import RunSpec
from scalarize.train.setup import prepare

UNIFORM = "uniform"


class CompareMethod(Strict):
    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    weights: list[float] | None = None
    label: str | None = Field(default=None, description="name in tables and run names; default: name")

    @property
    def display(self) -> str:
        return self.label or self.name


class CompareSpec(Strict):
    methods: list[CompareMethod] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    lr_grid: list[PositiveFloat] | None = Field(default=None, min_length=1)


class CompareConfig(TrainConfig):
    compare: CompareSpec = Field(default_factory=CompareSpec)


def load_compare_config(
    path, overrides: list[str] | None = None, *, log: Callable[[str], None] | None = None
) -> CompareConfig:
    """The config from ``path`` (which must have a ``compare:`` section, or an override that sets
    one) and ``overrides`` (see :mod:`scalarize.experiments.loading`)."""
    return load_experiment_config(path, overrides, CompareConfig, section="compare", log=log)


@dataclass(frozen=True)
class CompareRun:
    """One (method, learning rate, seed) of a comparison: an ordinary training config."""

    label: str
    lr: float
    seed: int
    config: TrainConfig

    @property
    def name(self) -> str:
        return self.config.name


def method_entries(config: CompareConfig) -> list[CompareMethod]:
    """Uniform scalarization first, then the listed methods; labels must be unique."""
    entries = [CompareMethod(name="scalarization", label=UNIFORM)]
    seen = {UNIFORM}
    for index, entry in enumerate(config.compare.methods):
        if entry.name == "scalarization" and entry.weights is None and not entry.options and entry.label is None:
            continue  # that is uniform scalarization, always included
        if entry.display in seen:
            raise ConfigError(
                f"compare.methods.{index}: a second entry labelled {entry.display!r}; give each a distinct label"
            )
        if not entry.display.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigError(
                f"compare.methods.{index}.label: {entry.display!r}: use letters, digits, '-', '_' and '.' only"
            )
        seen.add(entry.display)
        entries.append(entry)
    return entries


def learning_rates(config: CompareConfig) -> list[float]:
    grid = config.compare.lr_grid or [config.optimizer.lr]
    return list(dict.fromkeys(float(lr) for lr in grid))


def build_runs(config: CompareConfig) -> list[CompareRun]:
    """Every (method, learning rate, seed), methods outermost."""
    base = json.loads(config.model_dump_json(exclude={"compare"}))
    runs = []
    for entry in method_entries(config):
        method = {"name": entry.name, "options": entry.options, "weights": entry.weights}
        for lr in learning_rates(config):
            for seed in config.compare.seeds:
                data = json.loads(json.dumps(base))
                data.update(method=method, seed=seed, name=f"{entry.display}-lr{lr:g}-s{seed}")
                data["optimizer"]["lr"] = lr
                try:
                    run_config = TrainConfig.model_validate(data)
                except ValidationError as error:
                    raise ConfigError(_describe(error)) from None
                runs.append(CompareRun(entry.display, lr, seed, run_config))
    return runs


def load_recorder(store: Store) -> Callable:
    """Records, per run, the highest 1-minute load average seen at its evaluations and the
    machine's CPU count (table ``costs``): timings taken on a busy machine are flagged."""

    def record(run: str, model, step: int, evaluation: int) -> None:
        if not hasattr(os, "getloadavg"):
            return
        load = os.getloadavg()[0]
        seen = store.costs(run).get("load_average_max", 0.0)
        store.record_costs(run, {"load_average_max": max(seen, load), "cpu_count": float(os.cpu_count() or 1)})

    return record


@dataclass
class CompareResult:
    config: CompareConfig
    benchmark: str
    objectives: list[str]
    primary: list[tuple[str, bool]]
    labels: list[str]
    runs: list[CompareRun]
    results: dict[str, RunResult]
    stl: dict[str, RunResult] = field(default_factory=dict)
    #: mean validation score over the seeds, per (label, lr)
    val_scores: dict[tuple[str, float], float] = field(default_factory=dict)
    #: the learning rate kept per label
    chosen_lr: dict[str, float] = field(default_factory=dict)
    #: the metrics Δm averages over (every metric of a dense task; else the primary ones)
    delta: list[tuple[str, bool]] = field(default_factory=list)

    def chosen(self, label: str) -> list[tuple[CompareRun, RunResult]]:
        """The runs (one per seed) of ``label`` at its chosen learning rate."""
        lr = self.chosen_lr[label]
        return [(r, self.results[r.name]) for r in self.runs if r.label == label and r.lr == lr]


def _val_score(result: RunResult, benchmark: Benchmark) -> float:
    if result.status != "completed" or not result.val:
        return -math.inf
    try:
        score = selection_score(result.val, primary_metrics(benchmark))
    except KeyError:
        return -math.inf
    return score if math.isfinite(score) else -math.inf


def choose_learning_rates(
    runs: list[CompareRun], results: dict[str, RunResult], benchmark: Benchmark
) -> tuple[dict[tuple[str, float], float], dict[str, float]]:
    """Mean validation score per (label, lr) and, per label, the lr that maximises it."""
    scores: dict[tuple[str, float], list[float]] = {}
    for run in runs:
        scores.setdefault((run.label, run.lr), []).append(_val_score(results[run.name], benchmark))
    means = {key: sum(values) / len(values) for key, values in scores.items()}
    chosen: dict[str, float] = {}
    for (label, lr), score in means.items():  # grid order: ties keep the first
        if label not in chosen or score > means[(label, chosen[label])]:
            chosen[label] = lr
    return means, chosen


def run_compare(
    config: CompareConfig,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
) -> CompareResult:
    """Trains every run of the comparison not yet completed (and the STL baselines)."""
    base = TrainConfig.model_validate(config.model_dump(exclude={"compare"}))
    benchmark, _ = prepare(base)
    runs = build_runs(config)
    validated: set[str] = set()
    for run in runs:  # every method and option is valid before anything is written
        if run.label not in validated:
            prepare(run.config)
            validated.add(run.label)
    specs = [RunSpec(run.name, run.config, "compare") for run in runs]
    stl = stl_runs(base, benchmark.objectives) if config.stl else []
    check_not_conflicting(config, [*specs, *stl])

    labels = list(dict.fromkeys(run.label for run in runs))
    grid = learning_rates(config)
    log(
        f"compare {config.name} on {benchmark.name}: {len(labels)} methods x {len(grid)} learning rate(s) x "
        f"{len(config.compare.seeds)} seed(s) = {len(runs)} runs"
    )
    backend = backend or get_backend("local", engine="loop")
    with Store(config.experiment_dir()) as store:
        results = backend.train(
            [*specs, *stl],
            store,
            progress=progress,
            log=log,
            on_evaluation=load_recorder(store) if backend.name == "local" else None,
        )
    val_scores, chosen = choose_learning_rates(runs, results, benchmark)
    return CompareResult(
        config=config,
        benchmark=benchmark.name,
        objectives=list(benchmark.objectives),
        primary=primary_metrics(benchmark),
        labels=labels,
        runs=runs,
        results=results,
        stl={run.name[len("stl-") :]: results[run.name] for run in stl},
        val_scores=val_scores,
        chosen_lr=chosen,
        delta=delta_metrics(benchmark),
    )
