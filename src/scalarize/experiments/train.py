"""``scalarize train``: a configured run and its single-task baselines (STL), stored together.

The plan is the main run and, with ``stl: true``, one single-task run per objective (the same
model and budget, uniform scalarization on that objective alone). Everything is validated before
anything is written: the benchmark and its options, the model, the method and its weights (their
number must match the objectives). Runs already completed in the experiment directory are read
back; an interrupted run resumes from its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scalarize.backends.base import Backend, get_backend
from scalarize.experiments.loading import load_experiment_config
from scalarize.pareto.delta_m import delta_m
from scalarize.store.database import DATABASE_NAME, Store
from scalarize.train.config import ConfigError, TrainConfig
from scalarize.train.evaluate import delta_metrics, primary_metrics, reference_values
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec
from scalarize.train.setup import prepare

Log = Callable[[str], None]


@dataclass
class ExperimentResult:
    config: TrainConfig
    directory: Path
    main: RunResult
    stl: dict[str, RunResult] = field(default_factory=dict)
    primary: list[tuple[str, bool]] = field(default_factory=list)
    #: the metrics Δm averages over (every metric of a dense task; else the primary ones)
    delta: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def reference(self) -> list[float] | None:
        """The single-task values of the Δm metrics: ``config.single_task`` when given (e.g. the
        published ones), else the STL runs' test metrics; ``None`` when neither is there."""
        metrics = self.delta or self.primary
        return reference_values(metrics, {o: r.test for o, r in self.stl.items()}, self.config.single_task)

    @property
    def delta_m(self) -> float | None:
        """Δm (percent) of the main run's test metrics against :attr:`reference`, each metric in
        its own direction (Maninis et al. 2019)."""
        metrics = self.delta or self.primary
        reference = self.reference
        if reference is None or self.main.status != "completed":
            return None
        try:
            return float(delta_m([self.main.test[n] for n, _ in metrics], reference, [up for _, up in metrics]))
        except (ValueError, KeyError):  # a single-task metric of 0, or a missing one: Δm is undefined
            return None


def load_train_config(path, overrides: list[str] | None = None, *, log: Log | None = None) -> TrainConfig:
    """A training config from ``path`` and ``overrides`` (see :mod:`scalarize.experiments.loading`)."""
    return load_experiment_config(path, overrides, TrainConfig, log=log)


def stl_config(config: TrainConfig) -> TrainConfig:
    """The configuration of the single-task baselines: the same, with uniform scalarization."""
    data = config.model_dump(include=set(TrainConfig.model_fields))
    data["method"] = {"name": "scalarization"}
    data["single_task"] = None  # a reference for Δm, not for a single-task run
    return TrainConfig.model_validate(data)


def stl_runs(config: TrainConfig, objectives: Sequence[str]) -> list[RunSpec]:
    """One single-task run per objective, named ``stl-<objective>``; their fingerprints are the
    same for every method of a config, so ``train``, ``sweep`` and ``compare`` into one directory
    share them."""
    base = stl_config(config)
    runs = []
    for objective in objectives:
        single = base.model_copy(
            update={
                "name": f"stl-{objective}",
                "benchmark": base.benchmark.model_copy(update={"objectives": [objective]}),
            }
        )
        runs.append(RunSpec(f"stl-{objective}", single, "stl", f"{base.fingerprint()}-{objective}"))
    return runs


def check_not_conflicting(config: TrainConfig, runs: Sequence[RunSpec]) -> None:
    """Refuses to reuse a run name of the directory that was trained with another config."""
    path = config.experiment_dir() / DATABASE_NAME
    if not path.is_file():
        return
    with Store(config.experiment_dir()) as store:
        check_fingerprints(store, runs)


def check_fingerprints(store: Store, runs: Sequence[RunSpec]) -> None:
    """:func:`check_not_conflicting` on an open ``store``."""
    for run in runs:
        row = store.run(run.name)
        if row is not None and row["fingerprint"] != run.fingerprint:
            raise ConfigError(
                f"output: {store.directory} already holds run {run.name!r} trained with another "
                "configuration; choose another output directory or name"
            )


def train_plan(config: TrainConfig, objectives: Sequence[str]) -> list[RunSpec]:
    """The main run, then the single-task runs (when ``config.stl``)."""
    runs = [RunSpec(config.name, config, "main")]
    return runs + (stl_runs(config, objectives) if config.stl else [])


def run_experiment(
    config: TrainConfig, *, backend: Backend | None = None, progress: bool = True, log: Log = lambda _: None
) -> ExperimentResult:
    """Trains ``config`` and, if ``config.stl``, one single-task model per objective."""
    benchmark, _ = prepare(config)
    runs = train_plan(config, benchmark.objectives)
    check_not_conflicting(config, runs)
    backend = backend or get_backend("local", engine="loop")
    log(f"training {config.name} ({config.method.name}) on {benchmark.name}")
    with Store(config.experiment_dir()) as store:
        results = backend.train(runs, store, progress=progress, log=log)
    stl = {run.name[len("stl-") :]: results[run.name] for run in runs[1:]}
    return ExperimentResult(
        config, config.experiment_dir(), results[config.name], stl, primary_metrics(benchmark), delta_metrics(benchmark)
    )
