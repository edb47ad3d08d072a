"""An experiment: a configured run and its single-task baselines (STL), stored together.

Everything is validated before anything is written: the benchmark and its options, the model,
the method and its weights (their number must match the objectives). Runs already completed in
the experiment directory with the same configuration are not trained again; an interrupted run
resumes from its checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from scalarize.data.benchmark import Benchmark
from scalarize.methods.base import Method
from scalarize.methods.scalarization import Scalarization
from scalarize.pareto.delta_m import delta_m
from scalarize.store.database import DATABASE_NAME, Store
from scalarize.train.config import ConfigError, TrainConfig
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.setup import build_method_from_config, build_model_from_config, prepare
from scalarize.train.trainer import Trainer


@dataclass
class ExperimentResult:
    config: TrainConfig
    directory: Path
    main: RunResult
    stl: dict[str, RunResult] = field(default_factory=dict)
    primary: list[tuple[str, bool]] = field(default_factory=list)

    @property
    def delta_m(self) -> float | None:
        """Δm (percent) of the main run's test metrics against the STL runs', if trained."""
        if not self.stl or self.main.status != "completed":
            return None
        names = [name for name, _ in self.primary]
        stl = [self.stl[name.split("/")[0]].test[name] for name in names]
        try:
            return float(delta_m([self.main.test[n] for n in names], stl, [up for _, up in self.primary]))
        except ValueError:  # a single-task metric of 0: Δm is undefined
            return None


def stl_config(config: TrainConfig) -> TrainConfig:
    """The configuration of the single-task baselines: the same, with uniform scalarization."""
    data = config.model_dump(include=set(TrainConfig.model_fields))
    data["method"] = {"name": "scalarization"}
    return TrainConfig.model_validate(data)


def stl_names(config: TrainConfig, objectives: list[str]) -> dict[str, str]:
    """The single-task runs' names and fingerprints (the same for every method of a config)."""
    base = stl_config(config).fingerprint()
    return {f"stl-{o}": f"{base}-{o}" for o in objectives}


def train_stl(
    config: TrainConfig, benchmark: Benchmark, store: Store, progress: bool, log: Callable[[str], None]
) -> dict[str, RunResult]:
    """One model per objective, trained alone with ``config``'s model and budget."""
    base, names = stl_config(config), stl_names(config, benchmark.objectives)
    out = {}
    for objective in benchmark.objectives:
        single = benchmark.restrict([objective])
        run = f"stl-{objective}"
        log(f"training single-task baseline {run}")
        baseline = Scalarization()
        baseline.setup(single.objectives, single.setting)
        out[objective] = train_one(base, single, baseline, store, run, "stl", names[run], progress)
    return out


def check_not_conflicting(config: TrainConfig, run_names: dict[str, str]) -> None:
    """Refuses to reuse a run name of the directory that was trained with another config."""
    path = config.experiment_dir() / DATABASE_NAME
    if not path.is_file():
        return
    with Store(config.experiment_dir()) as store:
        for name, fingerprint in run_names.items():
            row = store.run(name)
            if row is not None and row["fingerprint"] != fingerprint:
                raise ConfigError(
                    f"output: {config.experiment_dir()} already holds run {name!r} trained with another "
                    "configuration; choose another output directory or name"
                )


def train_one(
    config: TrainConfig,
    benchmark: Benchmark,
    method: Method,
    store: Store,
    run_name: str,
    kind: str,
    fingerprint: str,
    progress: bool,
    on_evaluation: Callable | None = None,
) -> RunResult:
    """Trains (or resumes, or reloads) one run of an experiment (see ``Trainer.on_evaluation``)."""
    row = store.run(run_name)
    checkpoint = config.experiment_dir() / "runs" / run_name.replace("/", "_") / "checkpoint.pt"
    if row is not None and row["status"] == "completed" and checkpoint.exists():
        trainer = _trainer(config, benchmark, method, store, run_name, checkpoint, progress)
        trainer.try_resume()
        return trainer.result()
    store.start_run(run_name, kind, json.loads(config.model_dump_json()), fingerprint)
    trainer = _trainer(config, benchmark, method, store, run_name, checkpoint, progress)
    trainer.on_evaluation = on_evaluation
    return trainer.fit()


def _trainer(config, benchmark, method, store, run_name, checkpoint, progress) -> Trainer:
    torch.manual_seed(config.seed)
    model = build_model_from_config(config, benchmark)
    return Trainer(config, benchmark, model, method, run_name=run_name, store=store, checkpoint_path=checkpoint, progress=progress)


def run_experiment(
    config: TrainConfig, *, progress: bool = True, log: Callable[[str], None] = lambda _: None
) -> ExperimentResult:
    """Trains ``config`` and, if ``config.stl``, one single-task model per objective."""
    benchmark, method = prepare(config)
    names = {config.name: config.fingerprint()}
    if config.stl:
        names.update(stl_names(config, benchmark.objectives))
    check_not_conflicting(config, names)

    with Store(config.experiment_dir()) as store:
        log(f"training {config.name} ({config.method.name}) on {benchmark.name}")
        main = train_one(config, benchmark, method, store, config.name, "main", names[config.name], progress)
        stl = train_stl(config, benchmark, store, progress, log) if config.stl else {}
    return ExperimentResult(config, config.experiment_dir(), main, stl, primary_metrics(benchmark))
