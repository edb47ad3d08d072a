"""Experiment tracking: every run's records mirrored to TensorBoard, MLflow and Weights & Biases as
the store writes them. The SQLite store stays the source of truth; the trackers are copies for the tools people
already watch.

Switched on by a run's config (the ``tracking`` section, stored with the run)::

    tracking:
      tensorboard: true                  # event files in <experiment>/tensorboard/<run>/
      mlflow: {uri: null, experiment: null}
      # uri: an MLflow tracking URI (default: a file store in <experiment>/mlruns);
      # experiment: the MLflow experiment (default: the experiment directory's name)
      wandb: {project: null, mode: offline}
      # project (default: the directory's name), entity, group (default: the directory's name),
      # tags, mode (online | offline | disabled; default: $WANDB_MODE, else online); files in
      # $WANDB_DIR, else <experiment>/wandb/

The :class:`~scalarize.store.database.Store` hands each record it writes (an evaluation with the
weights applied since the last one, the final metrics, the run's end) to its :class:`Tracking`,
which opens the writers of a run the first time it sees it, from the run's config in the store:
so every engine (a single run, a stacked member, a Ray trial in another process) is tracked the
same way. What is written:

* scalars ``<split>/<metric>`` per evaluation (``train/left/loss``, ``val/left/accuracy``...),
  ``weights/<objective>`` at every step a weight was applied, ``final/<split>/<metric>`` (the
  metrics at the best validation evaluation) at the end;
* TensorBoard: the run's config as text; MLflow: the config flattened into parameters, tags
  naming the run, its kind and directory, and the run's status (``FINISHED`` or ``FAILED``);
  W&B: the config as the run's config, each scalar against its own step (the ``step`` key, so
  the weights' earlier steps and a resumed run's repeated steps are kept), the final metrics
  also in the run's summary with ``scalarize.status``, the run's kind as its job type, and an
  exit code of 0 (completed) or 1.

A run resumed after a kill continues the same MLflow and W&B run (their ids are kept in the
store's settings); in TensorBoard, what the killed process logged after the checkpoint it resumes from
(after the step of the run's previous evaluation) is purged, while MLflow, which cannot delete a
point, keeps it beside the same values logged again (as does W&B). A tracker that fails (a server down) is switched off for that run with one warning;
training and the store go on.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError


class TrackedStore(Protocol):
    """What the trackers read from the experiment's store, through its public methods only
    (``store/database.py`` imports this module, not the other way round)."""

    directory: Path

    def run(self, name: str) -> Any: ...

    def setting(self, key: str) -> str | None: ...

    def set_setting(self, key: str, value: str) -> None: ...

    def evaluation_step(self, run: str, evaluation: int) -> int | None: ...


def _needs(module: str, install: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise PydanticCustomError("missing_package", f"needs the {module} package: {install}")


class MlflowConfig(BaseModel):
    """Where MLflow runs go."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    uri: str | None = Field(default=None, description="tracking URI (default: a file store in <experiment>/mlruns)")
    experiment: str | None = Field(default=None, description="MLflow experiment (default: the directory's name)")


class WandbConfig(BaseModel):
    """Where W&B runs go."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    project: str | None = Field(default=None, description="W&B project (default: the experiment directory's name)")
    entity: str | None = Field(default=None, description="W&B entity, a user or team (default: yours)")
    group: str | None = Field(default=None, description="W&B group of the runs (default: the directory's name)")
    tags: list[str] = Field(default_factory=list, description="tags of every run")
    mode: Literal["online", "offline", "disabled"] | None = Field(
        default=None, description="online, offline (files only, `wandb sync` later) or disabled; default $WANDB_MODE"
    )


class TrackingConfig(BaseModel):
    """Mirror every run's records to TensorBoard, MLflow and W&B (the store stays the source of truth)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    tensorboard: bool = Field(default=False, description="event files in <experiment>/tensorboard/<run>/")
    mlflow: MlflowConfig | None = Field(default=None, description="{uri, experiment}: log to MLflow")
    wandb: WandbConfig | None = Field(default=None, description="{project, mode, ...}: log to Weights & Biases")

    @field_validator("tensorboard")
    @classmethod
    def _tensorboard_installed(cls, value: bool) -> bool:
        if value:
            _needs("tensorboard", "pip install tensorboard")
        return value

    @field_validator("mlflow")
    @classmethod
    def _mlflow_installed(cls, value: MlflowConfig | None) -> MlflowConfig | None:
        if value is not None:
            _needs("mlflow", "pip install 'scalarize[mlflow]'")
        return value

    @field_validator("wandb")
    @classmethod
    def _wandb_installed(cls, value: WandbConfig | None) -> WandbConfig | None:
        if value is not None:
            _needs("wandb", "pip install 'scalarize[wandb]'")
        return value


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """``{"optimizer": {"lr": 0.1}}`` -> ``{"optimizer.lr": "0.1"}`` (lists as JSON)."""
    out: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, f"{name}."))
        else:
            out[name] = value if isinstance(value, str) else json.dumps(value)
    return out


def _scalars(metrics: Mapping[str, Mapping[str, float]], weights: Iterable[tuple[int, str, float]], step: int):
    """``(tag, value, step)`` of one evaluation: its metrics, then the weights by their step."""
    for split, values in metrics.items():
        for name, value in values.items():
            yield f"{split}/{name}", float(value), step
    for at, objective, value in weights:
        yield f"weights/{objective}", float(value), int(at)


class TensorBoardWriter:
    """One run's TensorBoard event files (``torch.utils.tensorboard.SummaryWriter``)."""

    def __init__(self, directory: Path, config: Mapping[str, Any], purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(directory), purge_step=purge_step)
        shown = {k: v for k, v in config.items() if k not in ("tracking",)}
        self.writer.add_text("config", "```\n" + json.dumps(shown, indent=1, sort_keys=True) + "\n```", 0)

    def evaluation(self, step: int, metrics, weights) -> None:
        for tag, value, at in _scalars(metrics, weights, step):
            self.writer.add_scalar(tag, value, at)
        self.writer.flush()

    def final(self, step: int, metrics) -> None:
        for split, values in metrics.items():
            for name, value in values.items():
                self.writer.add_scalar(f"final/{split}/{name}", float(value), step)
        self.writer.flush()

    def finished(self, status: str, step: int, message: str) -> None:
        self.writer.add_text("status", f"{status} at step {step}" + (f": {message}" if message else ""), step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MlflowWriter:
    """One run's MLflow run, through the tracking client (no global active run: a stacked
    population tracks all its members at once)."""

    #: MLflow's limits: values of a parameter, entries of one batch.
    PARAM_LENGTH, BATCH = 6000, 1000

    def __init__(self, store: TrackedStore, run: str, row, spec: Mapping[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        directory = store.directory.resolve()
        uri = spec.get("uri") or (directory / "mlruns").as_uri()
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for the opt-in
        self.client = MlflowClient(tracking_uri=uri)
        self.store, self.run = store, run
        key = f"mlflow_run:{uri}:{run}"
        self.run_id = store.setting(key)
        if self.run_id is not None:
            self.client.update_run(self.run_id, status="RUNNING")
            return
        name = spec.get("experiment") or directory.name
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found is not None else self.client.create_experiment(name)
        tags = {
            "scalarize.run": run,
            "scalarize.kind": row["kind"],
            "scalarize.directory": str(directory),
            "scalarize.fingerprint": row["fingerprint"],
        }
        self.run_id = self.client.create_run(experiment, run_name=run, tags=tags).info.run_id
        self._log_params(json.loads(row["config"]))
        store.set_setting(key, self.run_id)

    def _log_params(self, config: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        shown = {k: v for k, v in config.items() if k not in ("tracking", "output")}
        params = [Param(k, v[: self.PARAM_LENGTH]) for k, v in sorted(_flatten(shown).items())]
        for start in range(0, len(params), 100):  # MLflow takes at most 100 parameters a batch
            self.client.log_batch(self.run_id, params=params[start : start + 100])

    def _log(self, scalars) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(tag, value, now, at) for tag, value, at in scalars]
        for start in range(0, len(metrics), self.BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + self.BATCH])

    def evaluation(self, step: int, metrics, weights) -> None:
        self._log(_scalars(metrics, weights, step))

    def final(self, step: int, metrics) -> None:
        self._log(
            (f"final/{split}/{name}", float(v), step) for split, values in metrics.items() for name, v in values.items()
        )

    def finished(self, status: str, step: int, message: str) -> None:
        if message:
            self.client.set_tag(self.run_id, "scalarize.message", message[:5000])
        self.client.set_tag(self.run_id, "scalarize.status", status)
        self.client.set_terminated(self.run_id, "FINISHED" if status == "completed" else "FAILED")

    def close(self) -> None:
        pass


class WandbWriter:
    """One run's W&B run. Several at once in one process (a stacked population), each its own
    ``wandb.Run`` (``reinit="create_new"``), none the global ``wandb.run``."""

    #: The x-axis every scalar is logged against.
    STEP = "step"

    def __init__(self, store: TrackedStore, run: str, row: Any, spec: Mapping[str, Any]) -> None:
        import wandb

        directory = store.directory.resolve()
        project = spec.get("project") or directory.name
        key = f"wandb_run:{spec.get('entity') or ''}/{project}:{run}"
        known = store.setting(key)
        config = {k: v for k, v in json.loads(row["config"]).items() if k not in ("tracking", "output")}
        folder = os.environ.get("WANDB_DIR") or str(directory / "wandb")
        Path(folder).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            project=project,
            entity=spec.get("entity"),
            group=spec.get("group") or directory.name,
            name=run,
            job_type=row["kind"],
            tags=list(spec.get("tags") or []),
            mode=spec.get("mode"),
            dir=folder,
            config=config,
            id=known,
            resume="allow" if known else None,
            reinit="create_new",
            settings=wandb.Settings(console="off"),  # the command's own output stays its own
        )
        self.run.define_metric(self.STEP)
        self.run.define_metric("*", step_metric=self.STEP)
        if known is None:
            store.set_setting(key, self.run.id)

    def _log(self, scalars: Iterable[tuple[str, float, int]]) -> None:
        """One ``log`` per step, in the order the steps come."""
        by_step: dict[int, dict[str, float]] = {}
        for tag, value, at in scalars:
            by_step.setdefault(at, {})[tag] = value
        for at, values in by_step.items():
            self.run.log({self.STEP: at, **values})

    def evaluation(
        self, step: int, metrics: Mapping[str, Mapping[str, float]], weights: Iterable[tuple[int, str, float]]
    ) -> None:
        self._log(sorted(_scalars(metrics, weights, step), key=lambda item: item[2]))

    def final(self, step: int, metrics: Mapping[str, Mapping[str, float]]) -> None:
        values = [
            (f"final/{split}/{name}", float(v), step) for split, items in metrics.items() for name, v in items.items()
        ]
        self._log(values)
        self.run.summary.update({tag: value for tag, value, _ in values})

    def finished(self, status: str, step: int, message: str) -> None:
        self.run.summary.update({"scalarize.status": status, **({"scalarize.message": message} if message else {})})
        self.run.finish(exit_code=0 if status == "completed" else 1)

    def close(self) -> None:
        self.run.finish()


class Tracking:
    """The trackers of one store, per run, opened from the run's stored config on first use."""

    def __init__(self, store: TrackedStore) -> None:
        self.store = store
        self._writers: dict[str, list] = {}

    def _open(self, run: str, first_step: int | None) -> list:
        """The run's writers; TensorBoard purges what an earlier process logged from
        ``first_step`` on (the step this process resumed from; ``None``: nothing)."""
        row = self.store.run(run)
        config = json.loads(row["config"]) if row is not None else {}
        spec = config.get("tracking") or {}
        writers = []
        try:
            if spec.get("tensorboard"):
                folder = self.store.directory / "tensorboard" / run.replace("/", "_")
                writers.append(TensorBoardWriter(folder, config, purge_step=first_step))
            if spec.get("mlflow") is not None:
                writers.append(MlflowWriter(self.store, run, row, spec["mlflow"]))
            if spec.get("wandb") is not None:
                writers.append(WandbWriter(self.store, run, row, spec["wandb"]))
        except Exception as error:  # noqa: BLE001 - a tracker must never stop training
            _warn(run, error)
        return writers

    def _each(self, run: str, first_step: int | None, call: str, *args) -> None:
        for writer in self._of(run, first_step):
            try:
                getattr(writer, call)(*args)
            except Exception as error:  # noqa: BLE001 - switched off for this run, with a warning
                self._writers[run].remove(writer)
                _warn(run, error)

    def _of(self, run: str, first_step: int | None) -> list:
        """The run's writers (a copy), opened on first use."""
        if run not in self._writers:
            self._writers[run] = self._open(run, first_step)
        return list(self._writers[run])

    # -- what the store hands over -------------------------------------------------------------
    def evaluation(self, run: str, evaluation: int, step: int, metrics, weights: list[tuple[int, str, float]]) -> None:
        self._each(run, self._resumed_at(run, evaluation), "evaluation", step, metrics, weights)

    def _resumed_at(self, run: str, evaluation: int) -> int | None:
        """The first step this process logs for ``run``, when it opens its writers at
        ``evaluation``: one past the previous evaluation's step (the checkpoint it resumed from;
        what an earlier process logged after it is purged), 0 for the first."""
        if run in self._writers:
            return None
        if evaluation == 0:
            return 0
        step = self.store.evaluation_step(run, evaluation - 1)
        return None if step is None else step + 1

    def final(self, run: str, metrics) -> None:
        row = self.store.run(run) if self._of(run, None) else None
        if row is not None:
            self._each(run, None, "final", row["step"], metrics)

    def finished(self, run: str, status: str, step: int, message: str) -> None:
        self._each(run, None, "finished", status, step, message)

    def close(self) -> None:
        for writers in self._writers.values():
            for writer in writers:
                try:
                    writer.close()
                except Exception:  # noqa: BLE001, S110 - closing a failed tracker
                    pass
        self._writers.clear()


def _warn(run: str, error: Exception) -> None:
    line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    warnings.warn(f"tracking of run {run} switched off: {line} (the store keeps every record)", stacklevel=3)
