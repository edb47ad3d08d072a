"""A run of an experiment: its spec, and the one way it is trained, resumed or read back.

A :class:`RunSpec` is an ordinary :class:`TrainConfig` with the run's name, its kind (``main``,
``stl``, ``member``, ``compare``, ``pbt``...) and the fingerprint that identifies it in the store.
Every engine trains specs: :func:`train_run` one at a time (a completed run is read back, an
interrupted one resumes from its checkpoint), the stacked population several at once, a Ray trial
one per trial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from scalarize.store.database import Store
from scalarize.train import distributed
from scalarize.train.checkpoint import run_directory
from scalarize.train.config import TrainConfig
from scalarize.train.devices import apply_threads
from scalarize.train.record import RunResult
from scalarize.train.setup import benchmark_from_config, build_method_from_config, build_model_from_config
from scalarize.train.trainer import EvaluationHook, Trainer

FINISHED = ("completed", "diverged", "stopped")  # "stopped": early stopping ended it


@dataclass(frozen=True)
class RunSpec:
    """One run: its name, config, kind and fingerprint (default: the config's)."""

    name: str
    config: TrainConfig
    kind: str = "member"
    fingerprint: str = ""

    def __post_init__(self) -> None:
        if not self.fingerprint:
            object.__setattr__(self, "fingerprint", self.config.fingerprint())

    def to_data(self) -> dict[str, Any]:
        """The spec as plain data (JSON), for another process: a Ray trial, another rank."""
        return {
            "name": self.name,
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "config": json.loads(self.config.model_dump_json()),
        }

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RunSpec:
        return cls(data["name"], TrainConfig.model_validate(data["config"]), data["kind"], data["fingerprint"])

    @property
    def weights(self) -> list[float] | None:
        return self.config.method.weights

    @property
    def seed(self) -> int:
        return self.config.seed


def checkpoint_path(directory: Path, name: str) -> Path:
    return run_directory(directory, name) / "checkpoint.pt"


def is_finished(store: Store, name: str) -> bool:
    row = store.run(name)
    return row is not None and row["status"] in FINISHED and row["finished"] is not None


def result_from_store(store: Store, name: str) -> RunResult:
    """A finished run's result as the store holds it (final metrics, status, validation history)."""
    row = store.run(name)
    if row is None:
        raise KeyError(f"run {name!r}: not in the store {store.directory}")
    final = store.final(name)
    by_step: dict[int, dict[str, float]] = {}
    for metric, points in store.history(name, "val").items():
        for step, value in points:
            by_step.setdefault(step, {"step": step})[f"val/{metric}"] = value
    costs = store.costs(name)
    return RunResult(
        name=name,
        status=row["status"],
        objectives=[],
        best_evaluation=-1,
        best_step=0,
        val=final.get("val", {}),
        test=final.get("test", {}),
        steps=row["step"],
        message=row["message"],
        history=[by_step[s] for s in sorted(by_step)],
        skipped_steps=int(costs.get("skipped_steps", 0)),
        seconds_per_step=costs.get("seconds_per_step"),
        step_memory=int(costs["step_memory_bytes"]) if "step_memory_bytes" in costs else None,
    )


def build_trainer(
    spec: RunSpec,
    store: Store | None,
    *,
    progress: bool = False,
    checkpoint: bool = True,
    distributed: distributed.Distributed | None = None,
) -> Trainer:
    """The trainer of ``spec``: its benchmark (loaded once per process), method and model built
    from the config with the run's seed (``distributed``: this rank, see train/distributed.py)."""
    config = spec.config
    apply_threads(config.threads)
    benchmark = benchmark_from_config(config.benchmark)
    torch.manual_seed(config.seed)  # a method's own generator (pcgrad, rlw...) is seeded from it
    method = build_method_from_config(config)
    method.setup(benchmark.objectives, benchmark.setting)
    torch.manual_seed(config.seed)
    model = build_model_from_config(config, benchmark)
    path = checkpoint_path(store.directory, spec.name) if (store is not None and checkpoint) else None
    return Trainer(
        config,
        benchmark,
        model,
        method,
        run_name=spec.name,
        store=store,
        checkpoint_path=path,
        progress=progress,
        distributed=distributed,
    )


def train_run(
    spec: RunSpec, store: Store, *, progress: bool = True, on_evaluation: EvaluationHook | None = None
) -> RunResult:
    """Trains ``spec`` into ``store``, resumes it from its checkpoint, or reads it back when it
    is finished (see ``Trainer.on_evaluation`` for ``on_evaluation``). In data-parallel training
    (rank 0 of ``torchrun`` or ``--nproc``), every rank trains it (train/distributed.py)."""
    if distributed.current() is not None:
        return drive(spec, store, progress=progress, on_evaluation=on_evaluation)
    if is_finished(store, spec.name):
        return result_from_store(store, spec.name)
    store.start_run(spec.name, spec.kind, json.loads(spec.config.model_dump_json()), spec.fingerprint)
    trainer = build_trainer(spec, store, progress=progress)
    trainer.on_evaluation = on_evaluation
    return trainer.fit()


# -- data-parallel training: rank 0 drives, the others serve (train/distributed.py) ---------------


def drive(
    spec: RunSpec, store: Store, *, progress: bool = True, on_evaluation: EvaluationHook | None = None
) -> RunResult:
    """Rank 0: trains ``spec`` with every rank (see :func:`serve`), or reads it back finished."""
    context = distributed.current()
    assert context is not None and context.is_driver
    if is_finished(store, spec.name):
        return result_from_store(store, spec.name)
    context.broadcast(("train", spec.to_data()))
    context.idle = False
    trainer = build_trainer(spec, store, progress=progress, distributed=context)  # bad settings fail on every rank
    store.start_run(spec.name, spec.kind, json.loads(spec.config.model_dump_json()), spec.fingerprint)
    trainer.on_evaluation = on_evaluation
    result = trainer.fit()
    context.idle = True
    return result


def serve(context: distributed.Distributed) -> int:
    """Ranks > 0: train each run rank 0 names, until it says stop; returns the exit code."""
    while True:
        command = context.broadcast()
        if command[0] == "stop":
            return 0
        spec = RunSpec.from_data(command[1])
        build_trainer(spec, None, progress=False, checkpoint=False, distributed=context).fit()
