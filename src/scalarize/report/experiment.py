"""The report of an experiment: a results table and training curves, from the store.

Writes ``report.md`` (Markdown, readable on GitHub and in any editor) and ``report.html`` (the
same, opens in a browser) with PNG figures beside them, in the experiment directory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scalarize.files import write_text  # noqa: E402
from scalarize.pareto.delta_m import delta_m  # noqa: E402
from scalarize.report.describe import method_text, run_label  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, log_scale_if_wide, save_figure  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
from scalarize.store.database import Store  # noqa: E402
from scalarize.train.evaluate import reference_values  # noqa: E402


def results_rows(
    store: Store,
    runs: Sequence[str],
    primary: Sequence[tuple[str, bool]],
    stl_runs: dict[str, str] | None = None,
    delta: Sequence[tuple[str, bool]] | None = None,
    single_task: dict[str, float] | None = None,
) -> tuple[list[str], list[list[str]]]:
    """Header and rows: per run, its method (weights, options), its test metrics at the best
    validation step and Δm.

    The metric columns are the Δm metrics ``delta`` (every metric of a dense task; default the
    primary metrics); Δm compares them with ``single_task`` when given (e.g. published values),
    else with the single-task runs ``stl_runs`` (objective → run name).
    """
    objectives = list(dict.fromkeys(name.split("/")[0] for name, _ in primary))
    primary = list(delta or primary)
    header = ["run", "method", "status", *(f"{name} (test)" for name, _ in primary), "Δm %"]
    finals = {o: store.final(r).get("test", {}) for o, r in (stl_runs or {}).items()}
    stl_values = reference_values(primary, finals, single_task) if (stl_runs or single_task) else None
    rows = []
    for run in runs:
        info = store.run(run)
        test = store.final(run).get("test", {})
        values = [test.get(name) for name, _ in primary]
        cells = [run, _method_cell(run, info, objectives), info["status"] if info else "missing"]
        cells += ["—" if v is None else f"{v:.4f}" for v in values]
        if stl_values is not None and all(v is not None for v in values) and not run.startswith("stl-"):
            cells.append(f"{delta_m(values, stl_values, [up for _, up in primary]):+.2f}")
        else:
            cells.append("—")
        rows.append(cells)
    return header, rows


def _method_cell(run: str, info, objectives: Sequence[str] | None = None) -> str:
    if info is None:
        return "—"
    label = run_label(run, info["config"], objectives)
    return label[len(run) + 2 :] if label.startswith(f"{run}: ") else method_text(info["config"], objectives)


def run_labels(store: Store, runs: Sequence[str], objectives: Sequence[str] | None = None) -> dict[str, str]:
    """``name: method (weights or options)`` of every run, for legends."""
    labels = {}
    for run in runs:
        info = store.run(run)
        labels[run] = run_label(run, info["config"] if info else None, objectives)
    return labels


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table with aligned columns (for the terminal)."""
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def plot_curves(store: Store, runs: Sequence[str], primary: Sequence[tuple[str, bool]], path: Path) -> Path:
    """Validation primary metric of every objective against the step, one panel per objective;
    each run labelled with its method and weights."""
    labels = run_labels(store, runs, [name.split("/")[0] for name, _ in primary])
    columns = min(3, len(primary))
    rows = math.ceil(len(primary) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.2 * rows), squeeze=False)
    for axis, (metric, higher) in zip(axes.flat, primary):
        for run in runs:
            points = store.history(run, "val").get(metric)
            if points:
                axis.plot(*zip(*points), marker="o", markersize=3, label=labels[run])
        axis.set_title(f"{metric} (val, {'higher' if higher else 'lower'} is better)", fontsize=9)
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=LEGEND_SIZE)
    for axis in list(axes.flat)[len(primary) :]:
        axis.set_visible(False)
    save_figure(fig, path)
    return path


def plot_train_loss(store: Store, runs: Sequence[str], objectives: Sequence[str], path: Path) -> Path:
    labels = run_labels(store, runs, objectives)
    fig, axis = plt.subplots(figsize=(7, 4))
    for run in runs:
        history = store.history(run, "train")
        for objective in objectives:
            points = history.get(f"{objective}/loss")
            if points:
                axis.plot(*zip(*points), label=f"{labels[run]}: {objective} loss")
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (mean over the interval)")
    log_scale_if_wide(axis, "y", [y for line in axis.get_lines() for y in line.get_ydata()])
    axis.grid(alpha=0.3)
    axis.legend(fontsize=LEGEND_SIZE)
    save_figure(fig, path)
    return path


def write_report(
    store: Store,
    title: str,
    runs: Sequence[str],
    primary: Sequence[tuple[str, bool]],
    stl_runs: dict[str, str] | None = None,
    notes: Sequence[str] = (),
    delta: Sequence[tuple[str, bool]] | None = None,
    single_task: dict[str, float] | None = None,
) -> Path:
    """Writes ``report.md`` and ``report.html`` into the store's directory; returns the .md path."""
    directory = store.directory
    header, rows = results_rows(store, runs, primary, stl_runs, delta, single_task)
    curves = plot_curves(store, runs, primary, directory / "curves.png")
    objectives = list(dict.fromkeys(name.split("/")[0] for name, _ in primary))
    losses = plot_train_loss(store, runs, objectives, directory / "train_loss.png")
    text = [
        f"# {title}",
        "",
        *(line for note in notes for line in (note, "")),
        "Test metrics at the evaluation with the best validation score; Δm (Maninis et al. 2019) "
        "over these metrics, each in its own direction, against "
        + ("the given single-task values (config key single_task)" if single_task else "the single-task baselines")
        + ", in percent (positive: better than single-task).",
        "",
        markdown_table(header, rows),
        "",
        f"![validation curves]({curves.name})",
        "",
        f"![training losses]({losses.name})",
        "",
    ]
    path = directory / "report.md"
    write_text(path, "\n".join(text))
    write_html(directory / "report.html", title, list(notes), header, rows, [curves, losses])
    return path
