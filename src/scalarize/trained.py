"""A trained model back from an experiment directory, ready for inference: ``scalarize.load``.

::

    import scalarize

    run = scalarize.load("experiments/multimnist")           # the directory's main run
    run = scalarize.load("experiments/multimnist", "stl-left")
    run = scalarize.load("experiments/multimnist-pbt")       # PBT: the best member's model
    outputs = run.predict(images)                            # {task: output}, no gradients
    run.config.method.weights, run.metrics["test"]           # what it was, what it scored

The run's config comes from the store (table ``runs``); the weights are those of the evaluation
the run reports (``runs/<name>/model.pt``, saved by every engine, stacked sweep members and PBT
members included), so ``run.metrics`` (the store's final metrics) are the loaded model's. A run
without one (trained before it was saved) falls back to its checkpoint (``checkpoint.pt``: the
model at the end of training) or, for PBT's best member, ``best_model.pt``; ``run.reported`` says
which. Everything is read without running code: an import path in the stored config (a
``model.target``, ``benchmark.target`` or task kind ``pkg.mod:Kind``, which anyone who could
write the directory may have put there) is refused in one line unless the caller trusts the
directory (``trust=True``) or passes the object it names (``builders={path: object}``);
built-in and registered families, benchmarks and kinds load as they are.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from scalarize.data.benchmark import Benchmark
from scalarize.errors import ScalarizeError
from scalarize.imports import stored
from scalarize.store.database import DATABASE_NAME, Store
from scalarize.train.checkpoint import MODEL_FILE, load_checkpoint
from scalarize.train.config import TrainConfig
from scalarize.train.run import checkpoint_path
from scalarize.train.setup import benchmark_from_config, build_model_from_config

PBT_RESULT, PBT_MODEL = "pbt_result.json", "best_model.pt"


class LoadError(ScalarizeError):
    """A run that cannot be loaded, said in one line with what can be."""


@dataclass
class TrainedRun:
    """A trained model with the config it was trained from."""

    name: str
    config: TrainConfig
    model: nn.Module
    benchmark: Benchmark
    #: the step of the weights loaded (``None`` when the store does not say)
    step: int | None
    #: the checkpoint the weights come from
    source: Path
    #: ``{"val": {...}, "test": {...}}`` at the best validation evaluation (from the store)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: whether the weights are those of the reported evaluation (``model.pt``), whose metrics
    #: are :attr:`metrics`; ``False``: the checkpoint's, at the end of training
    reported: bool = True

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{task: output}`` for a batch of inputs (moved to the model's device), in eval mode."""
        self.model.eval()
        _, outputs = self.model(inputs.to(self.device))
        return outputs

    def predict_table(self, rows: object) -> dict[str, torch.Tensor]:
        """``{task: logits}`` for raw rows of a table benchmark (a DataFrame, pyarrow Table or
        ``{column: array}``), packed by the benchmark's preprocessor: fit on the training split
        when the benchmark was rebuilt from the stored config, so the same statistics and
        vocabularies as in training (``scalarize.data.tabular``)."""
        preprocessor = self.benchmark.extras.get("preprocessor")
        if preprocessor is None:
            raise LoadError(
                f"run {self.name!r}: its benchmark {self.benchmark.name!r} is not a table; use predict(inputs)"
            )
        return self.predict(preprocessor.transform(rows))


def _locate(path: Path, run: str | None) -> tuple[Path, str | None]:
    """(experiment directory, run name or None) from a directory, a run folder or a checkpoint."""
    if path.is_file():
        if path.name == PBT_MODEL:
            return path.parent, run
        return path.parents[2], path.parent.name  # <dir>/runs/<name>/model.pt or checkpoint.pt
    if path.parent.name == "runs" and path.is_dir():
        return path.parent.parent, path.name
    return path, run


def _default_run(store: Store, directory: Path) -> str:
    if (directory / PBT_RESULT).is_file():
        return json.loads((directory / PBT_RESULT).read_text())["best"]
    main = [row["name"] for row in store.runs() if row["kind"] == "main"]
    if len(main) == 1:
        return main[0]
    raise LoadError(f"{directory}: name the run to load; runs with a model: {', '.join(_loadable(store, directory))}")


def _has_model(directory: Path, name: str) -> bool:
    folder = checkpoint_path(directory, name).parent
    return (folder / MODEL_FILE).is_file() or (folder / "checkpoint.pt").is_file()


def _loadable(store: Store, directory: Path) -> list[str]:
    return [row["name"] for row in store.runs() if _has_model(directory, row["name"])] or ["none"]


def _weights(store: Store, directory: Path, name: str) -> tuple[dict, Path, bool]:
    """The model's state dict, its file, and whether it is the reported evaluation's."""
    checkpoint = checkpoint_path(directory, name)
    reported = checkpoint.parent / MODEL_FILE
    if reported.is_file():
        return load_checkpoint(reported), reported, True
    if checkpoint.is_file():
        return load_checkpoint(checkpoint)["model"], checkpoint, False
    pbt = directory / PBT_MODEL
    if pbt.is_file() and (directory / PBT_RESULT).is_file():
        if json.loads((directory / PBT_RESULT).read_text()).get("best") == name:
            return load_checkpoint(pbt), pbt, True
    raise LoadError(
        f"run {name}: no model under {checkpoint.parent}; runs with a model: {', '.join(_loadable(store, directory))}"
    )


def load(
    path: str | Path,
    run: str | None = None,
    *,
    device: str | torch.device = "cpu",
    trust: bool = False,
    builders: Mapping[str, object] | None = None,
) -> TrainedRun:
    """The trained model of ``run`` in the experiment directory ``path`` (default run: the
    directory's main run, or PBT's best member), with its config, benchmark and the metrics the
    store reports for it.

    ``path`` may also be a run's folder (``<dir>/runs/<name>``) or a file in it. The model
    is built from the stored config (the benchmark is loaded for its input shape and tasks),
    given the checkpoint's weights, moved to ``device`` and put in eval mode. Raises
    :class:`LoadError` (one line) for a directory without a store, an unknown run or a run
    without a model.

    An import path in the stored config (``model.target``, ``benchmark.target``, a task kind) is
    never imported unless ``trust=True`` (you trust whoever wrote the directory) or ``builders``
    maps it to the object it names (``{"mynets:build": build}``, your own code); otherwise a
    one-line error names it, before it is imported.
    """
    directory, name = _locate(Path(path), run)
    if not (directory / DATABASE_NAME).is_file():
        raise LoadError(f"{path}: no {DATABASE_NAME} here (not an experiment directory)")
    with Store(directory) as store:
        name = name or _default_run(store, directory)
        row = store.run(name)
        if row is None:
            raise LoadError(
                f"{directory}: no run {name!r}; runs with a model: {', '.join(_loadable(store, directory))}"
            )
        state, source, reported = _weights(store, directory, name)
        metrics = store.final(name)
        history = store.history(name, "val")
        last = int(row["step"])
    config = TrainConfig.model_validate(json.loads(row["config"]))
    with stored(directory, trust=trust, given=builders, hint="pass scalarize.load(..., trust=True)"):
        benchmark = benchmark_from_config(config.benchmark)
        model = build_model_from_config(config, benchmark)
    model.load_state_dict(state)
    model.to(device).eval()
    step = _reported_step(history, metrics) if reported else last
    return TrainedRun(name, config, model, benchmark, step, source, metrics, reported)


def _reported_step(history: dict, metrics: dict) -> int | None:
    """The step whose validation metrics are the final ones (the reported evaluation)."""
    val = metrics.get("val", {})
    if not val or not history:
        return None
    for index, (step, _) in enumerate(next(iter(history.values()))):
        if all(
            abs(points[index][1] - val[key]) <= 1e-12
            for key, points in history.items()
            if key in val and index < len(points)
        ):
            return step
    return None
