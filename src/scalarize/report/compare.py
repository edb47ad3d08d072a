"""The report of ``scalarize compare``: methods against uniform scalarization.

* a table, per method at its chosen learning rate: mean ± std over the seeds of every
  objective's test primary metric (at the best validation evaluation), of Δm against the
  single-task baselines, of the time per training step and of the peak step memory (the tensor
  memory a training step needs above what it starts with; see :mod:`scalarize.train.measure`),
  and the optimizer steps skipped for non-finite gradients;
* with a learning-rate grid, the mean validation score of every (method, lr), the kept one marked;
* with two objectives, the methods' mean test points (± std) over the members of a scalarization
  sweep of the same benchmark found in the same store (runs of kind ``member``) and their front.

Writes ``compare.md``, ``compare.html`` and ``compare_front.png`` in the experiment directory
(beside a sweep's ``report.md`` when they share it).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalarize.pareto import delta_m, pareto_front  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import save_figure  # noqa: E402
from scalarize.store.database import Store  # noqa: E402
from scalarize.train.evaluate import reference_values  # noqa: E402


def _mean_std(values: list[float], digits: int, signed: bool = False) -> str:
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "—"
    mean = float(np.mean(values))
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    sign = "+" if signed else ""
    return f"{mean:{sign}.{digits}f} ± {std:.{digits}f}"


def _delta_metrics(result) -> list[tuple[str, bool]]:
    return list(getattr(result, "delta", None) or result.primary)


def _stl_values(result) -> list[float] | None:
    """The Δm reference: ``config.single_task`` when given, else the single-task runs' test
    values of the Δm metrics."""
    return reference_values(_delta_metrics(result), {o: r.test for o, r in result.stl.items()},
                            getattr(result.config, "single_task", None))


def method_points(result) -> dict[str, list[list[float]]]:
    """Per label, the test primary metrics of each completed seed at the chosen lr."""
    points = {}
    for label in result.labels:
        rows = []
        for _, run in result.chosen(label):
            if run.status == "completed" and all(name in run.test for name, _ in result.primary):
                rows.append([run.test[name] for name, _ in result.primary])
        points[label] = rows
    return points


def _primary_part(single_task: dict[str, float] | None, primary) -> dict[str, float] | None:
    """The given single-task values of the primary metrics, if all are given."""
    if single_task is None or not all(name in single_task for name, _ in primary):
        return None
    return single_task


def summary_rows(result) -> tuple[list[str], list[list[str]]]:
    """Header and one row per method (uniform first) at its chosen learning rate: the Δm metrics
    (every metric of a dense task; else the primary ones) and Δm over them."""
    stl = _stl_values(result)
    metrics = _delta_metrics(result)
    maximize = [up for _, up in metrics]
    header = ["method", "lr", "seeds", *(f"{name} (test)" for name, _ in metrics)]
    header += ["Δm %", "ms/step", "step MiB", "skipped"]
    rows = []
    for label in result.labels:
        chosen = result.chosen(label)
        done = [r for _, r in chosen if r.status == "completed"]
        cells = [label, f"{result.chosen_lr[label]:g}", f"{len(done)}/{len(chosen)}"]
        for name, _ in metrics:
            cells.append(_mean_std([r.test.get(name, math.nan) for r in done], 4))
        deltas = []
        if stl is not None:
            for r in done:
                if all(name in r.test for name, _ in metrics):
                    deltas.append(float(delta_m([r.test[n] for n, _ in metrics], stl, maximize)))
        cells.append(_mean_std(deltas, 2, signed=True))
        cells.append(_mean_std([r.seconds_per_step * 1e3 for r in done if r.seconds_per_step], 2))
        cells.append(_mean_std([r.step_memory / 2**20 for r in done if r.step_memory is not None], 2))
        cells.append(str(sum(r.skipped_steps for _, r in chosen)))
        rows.append(cells)
    return header, rows


def lr_rows(result) -> tuple[list[str], list[list[str]]] | None:
    """Mean validation score of every (method, lr); ``None`` without a grid."""
    grid = list(dict.fromkeys(run.lr for run in result.runs))
    if len(grid) < 2:
        return None
    header = ["method", *(f"lr {lr:g}" for lr in grid)]
    rows = []
    for label in result.labels:
        cells = [label]
        for lr in grid:
            score = result.val_scores.get((label, lr), -math.inf)
            text = f"{score:.4f}" if math.isfinite(score) else "diverged"
            cells.append(text + (" *" if result.chosen_lr[label] == lr else ""))
        rows.append(cells)
    return header, rows


def sweep_members(store: Store, result) -> np.ndarray:
    """``[n, k]`` test primary metrics of the completed sweep members of the same benchmark."""
    wanted = result.config.benchmark.model_dump(mode="json")
    rows = []
    for run in store.runs():
        if run["kind"] != "member" or run["status"] != "completed":
            continue
        if json.loads(run["config"]).get("benchmark") != wanted:
            continue
        test = store.final(run["name"]).get("test", {})
        if all(name in test for name, _ in result.primary):
            rows.append([test[name] for name, _ in result.primary])
    return np.asarray(rows, dtype=float).reshape(-1, len(result.primary))


def plot_methods(result, members: np.ndarray, path: Path) -> Path | None:
    """Two objectives: the methods' mean points (± std over seeds) over the sweep's members."""
    if len(result.primary) != 2:
        return None
    names = [name for name, _ in result.primary]
    maximize = [up for _, up in result.primary]
    fig, axis = plt.subplots(figsize=(6, 4.8))
    if len(members):
        axis.scatter(members[:, 0], members[:, 1], s=18, c="0.7", label="scalarization sweep")
        front = pareto_front(members, maximize)
        front = front[np.argsort(members[front, 0])]
        axis.plot(members[front, 0], members[front, 1], "--", c="0.4", lw=1, label="sweep front")
    for index, (label, rows) in enumerate(method_points(result).items()):
        if not rows:
            continue
        points = np.asarray(rows)
        mean = points.mean(axis=0)
        std = points.std(axis=0, ddof=1) if len(points) > 1 else np.zeros(2)
        marker = "s" if label == "uniform" else "o"
        axis.errorbar(mean[0], mean[1], xerr=std[0], yerr=std[1], fmt=marker, ms=6, capsize=2,
                      color=f"C{index % 10}", label=label)
    stl = reference_values(result.primary, {o: r.test for o, r in result.stl.items()},
                           _primary_part(getattr(result.config, "single_task", None), result.primary))
    if stl is not None:
        axis.scatter([stl[0]], [stl[1]], marker="*", s=150, c="red", label="single-task")
    axis.set_xlabel(f"{names[0]} (test)")
    axis.set_ylabel(f"{names[1]} (test)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    save_figure(fig, path)
    return path


def write_compare_report(result, store: Store) -> tuple[Path, str]:
    """Writes compare.md/compare.html (and the figure); returns (path, terminal text)."""
    directory = store.directory
    header, rows = summary_rows(result)
    grid = lr_rows(result)
    members = sweep_members(store, result)
    figure = plot_methods(result, members, directory / "compare_front.png")
    config = result.config
    seeds = ", ".join(str(s) for s in config.compare.seeds)
    notes = [
        f"Benchmark {result.benchmark} ({', '.join(result.objectives)}); model {config.model.family} "
        f"(width {config.model.width}, depth {config.model.depth}); {config.optimizer.name}, batch "
        f"{config.batch_size}, {config.steps or config.epochs} {'step(s)' if config.steps else 'epoch(s)'}; seeds {seeds}.",
        "Mean ± std over the seeds at each method's learning rate (the one with the best mean validation "
        "score). Test metrics at the evaluation with the best validation score; Δm (Maninis et al. 2019) "
        "against the single-task baselines, in percent (positive: better than single-task). ms/step: wall "
        "time of a training step; step MiB: peak tensor memory of a training step above what it starts "
        "with (CUDA: max_memory_allocated; CPU: live tensor storages counted by a dispatch mode); skipped: "
        "optimizer steps skipped for non-finite gradients.",
    ]
    if figure is not None:
        notes.append(
            f"Figure: the methods' mean test points (± std) over {len(members)} scalarization sweep members "
            "of the same benchmark found in this store." if len(members) else
            "Figure: the methods' mean test points (± std); no scalarization sweep of this benchmark in this "
            "store (run `scalarize sweep` with the same benchmark and output to draw its front)."
        )
    title = f"Compare {config.name}: MTO methods against uniform scalarization on {result.benchmark}"
    lines = [f"# {title}", "", *[n for note in notes for n in (note, "")], markdown_table(header, rows), ""]
    if grid is not None:
        lines += ["Mean validation score per learning rate (* kept):", "", markdown_table(*grid), ""]
    if figure is not None:
        lines += [f"![methods over the front]({figure.name})", ""]
    path = directory / "compare.md"
    path.write_text("\n".join(lines))

    def html_table(h, r):
        return (
            "<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in h) + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in r)
            + "</table>"
        )

    body = [f"<h1>{html.escape(title)}</h1>", *(f"<p>{html.escape(n)}</p>" for n in notes), html_table(header, rows)]
    if grid is not None:
        body += ["<p>Mean validation score per learning rate (* kept):</p>", html_table(*grid)]
    if figure is not None:
        body.append(f"<p><img src='{figure.name}'></p>")
    (directory / "compare.html").write_text(
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif'>{''.join(body)}</body></html>"
    )
    text = format_table(header, rows)
    if grid is not None:
        text += "\n\nmean validation score per learning rate (* kept)\n" + format_table(*grid)
    return path, text
