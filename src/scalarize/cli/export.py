"""``scalarize export``: an experiment directory in the formats other tools read.

* ``--csv``: one CSV file per table of the store (``runs.csv``, ``metrics.csv``...).
* ``--members``: one wide table, ``members.csv``, a row per run: its name, kind, status, method
  and seed, the weights it ended with (``weight/<objective>``: the last ones applied, from the
  store; PBT members' weights change), and its final metrics (``<split>/<metric>``: the
  reported evaluation's, as in every report).
* ``--onnx``: the reported model of one run (``--run``, default the directory's main run or
  PBT's best member), as :func:`scalarize.load` gives it, as an ONNX graph with one input,
  ``input`` (the batch axis dynamic), and one named output per task, in the benchmark's order.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from typing import Any

from scalarize.cli.errors import UsageError

#: Opset of the ONNX graphs written (onnxruntime 1.18 and later run it).
OPSET = 18


def members_rows(store: Any) -> tuple[list[str], list[list[Any]]]:
    """The header and rows of the members table (see the module's docstring)."""
    runs = store.runs()
    weights = {row["name"]: {k: v[-1][1] for k, v in store.weights(row["name"]).items() if v} for row in runs}
    finals = {row["name"]: store.final(row["name"]) for row in runs}
    objectives = sorted({name for values in weights.values() for name in values})
    metrics = sorted(
        {f"{split}/{name}" for final in finals.values() for split, values in final.items() for name in values}
    )
    header = ["run", "kind", "status", "method", "seed", *(f"weight/{o}" for o in objectives), *metrics]
    rows = []
    for row in runs:
        config = json.loads(row["config"])
        flat = {f"{s}/{n}": v for s, values in finals[row["name"]].items() for n, v in values.items()}
        rows.append(
            [
                row["name"],
                row["kind"],
                row["status"],
                config.get("method", {}).get("name", ""),
                config.get("seed", ""),
                *(weights[row["name"]].get(o, "") for o in objectives),
                *(flat.get(m, "") for m in metrics),
            ]
        )
    return header, rows


def write_members(store: Any, destination: Path) -> Path:
    """Writes ``members.csv`` into ``destination``; returns its path."""
    destination.mkdir(parents=True, exist_ok=True)
    header, rows = members_rows(store)
    path = destination / "members.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


class _TaskOutputs:
    """Builds the module ONNX sees: ``model(x) -> (features, {task: output})`` as a tuple of
    the task outputs in ``tasks``' order."""

    @staticmethod
    def wrap(model: Any, tasks: list[str]) -> Any:
        import torch

        class TaskOutputs(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
                _, outputs = self.model(inputs)
                return tuple(outputs[task] for task in tasks)

        return TaskOutputs().eval()


def write_onnx(directory: Path, run: str | None, output: Path | None) -> Path:
    """Writes the reported model of ``run`` in ``directory`` as ONNX (see the module's
    docstring) to ``output`` (default ``<directory>/export/<run>.onnx``); returns its path."""
    import importlib.util

    for module in ("onnx", "onnxscript"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--onnx: needs the {module} package: pip install 'scalarize[onnx]'")
    import torch

    from scalarize.trained import load

    trained = load(directory, run)
    example = _example_input(trained)
    tasks = [task.name for task in trained.benchmark.tasks]
    path = output or directory / "export" / f"{trained.name.replace('/', '_')}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():  # torch.export's own deprecations, not the user's
        warnings.simplefilter("ignore", FutureWarning)
        torch.onnx.export(
            _TaskOutputs.wrap(trained.model, tasks),
            (example,),
            str(path),
            input_names=["input"],
            output_names=tasks,
            dynamic_shapes=({0: batch},),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    return path


def _example_input(trained: Any) -> Any:
    """A batch of two zero inputs of the benchmark's shape; a benchmark whose inputs are not one
    tensor (graphs) is refused in one line."""
    import torch

    shape = getattr(trained.benchmark, "input_shape", None)
    if not isinstance(shape, tuple) or not all(isinstance(size, int) for size in shape):
        raise UsageError(
            f"--onnx: run {trained.name}: its inputs are not one tensor (input shape {shape!r}); "
            "only models of tensor inputs are exported"
        )
    return torch.zeros((2, *shape), dtype=torch.float32)
