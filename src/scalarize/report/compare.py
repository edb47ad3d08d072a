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

from scalarize.files import write_text  # noqa: E402
from scalarize.pareto import delta_m, pareto_front  # noqa: E402
from scalarize.report.describe import method_text, settings_text  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, place_labels, save_figure, styles  # noqa: E402
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
    return reference_values(
        _delta_metrics(result), {o: r.test for o, r in result.stl.items()}, getattr(result.config, "single_task", None)
    )


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


#: Timings whose spread over the seeds exceeds this fraction of their mean are flagged.
NOISY_TIMING = 0.2


def _primary_part(single_task: dict[str, float] | None, primary) -> dict[str, float] | None:
    """The given single-task values of the primary metrics, if all are given."""
    if single_task is None or not all(name in single_task for name, _ in primary):
        return None
    return single_task


def summary_rows(result) -> tuple[list[str], list[list[str]]]:
    """Header and one row per method (uniform first) at its chosen learning rate: the Δm metrics
    (every metric of a dense task; else the primary ones) and Δm over them, then the single-task
    baselines that Δm is measured against."""
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
        timings = [r.seconds_per_step * 1e3 for r in done if r.seconds_per_step]
        cells.append(_mean_std(timings, 2) + (" (noisy)" if noisy(timings) else ""))
        cells.append(_mean_std([r.step_memory / 2**20 for r in done if r.step_memory is not None], 2))
        cells.append(str(sum(r.skipped_steps for _, r in chosen)))
        rows.append(cells)
    if stl is not None and getattr(result.config, "single_task", None) is not None:
        rows.append(
            [
                "single-task (given: config single_task)",
                "—",
                "—",
                *(f"{v:.4f}" for v in stl),
                "0 (reference)",
                "—",
                "—",
                "—",
            ]
        )
    elif stl is not None:
        base = result.config
        rows.append(
            [
                f"single-task ({', '.join(f'stl-{o}' for o in result.stl)})",
                f"{base.optimizer.lr:g}",
                f"{len(result.stl)} runs, seed {base.seed}",
                *(f"{v:.4f}" for v in stl),
                "0 (reference)",
                "—",
                "—",
                str(sum(r.skipped_steps for r in result.stl.values())),
            ]
        )
    return header, rows


def noisy(timings: list[float]) -> bool:
    """Whether step times over seeds spread by more than :data:`NOISY_TIMING` of their mean."""
    if len(timings) < 2:
        return False
    return float(np.std(timings, ddof=1)) > NOISY_TIMING * float(np.mean(timings))


def machine_load(result, store: Store) -> str | None:
    """What the timings are worth: the highest 1-minute load average seen at the runs'
    evaluations against the CPU count, and a warning when the machine was busy (load above the
    CPU count) or step times spread widely over the seeds; ``None`` when nothing is known."""
    costs = [store.costs(run.name) for run in result.runs]
    loads = [c["load_average_max"] for c in costs if "load_average_max" in c]
    cpus = max((c.get("cpu_count", 0.0) for c in costs), default=0.0)
    spread = [
        label
        for label in result.labels
        if noisy(
            [
                r.seconds_per_step * 1e3
                for _, r in result.chosen(label)
                if r.status == "completed" and r.seconds_per_step
            ]
        )
    ]
    problems = []
    if loads and cpus and max(loads) > cpus:
        problems.append(
            f"the 1-minute load average reached {max(loads):.1f} on {cpus:.0f} CPU(s) during the runs: "
            "other work competed for the CPUs"
        )
    if spread:
        problems.append(f"step times vary by more than {NOISY_TIMING:.0%} over the seeds for {', '.join(spread)}")
    if problems:
        return (
            "Warning: ms/step is unreliable here: "
            + "; ".join(problems)
            + ". Rerun on an idle machine to compare speeds."
        )
    if loads and cpus:
        return f"Timings: the 1-minute load average stayed at or below {max(loads):.1f} on {cpus:.0f} CPU(s)."
    return None


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
    """Two objectives: the methods' mean points (± std over seeds) over the sweep's members, each
    method with its own colour and marker; a second panel zooms on the methods (and the
    single-task point) when they crowd a small part of the full view."""
    if len(result.primary) != 2:
        return None
    names = [name for name, _ in result.primary]
    points = {label: np.asarray(rows) for label, rows in method_points(result).items() if rows}
    means = {label: rows.mean(axis=0) for label, rows in points.items()}
    stds = {label: rows.std(axis=0, ddof=1) if len(rows) > 1 else np.zeros(2) for label, rows in points.items()}
    stl = reference_values(
        result.primary,
        {o: r.test for o, r in result.stl.items()},
        _primary_part(getattr(result.config, "single_task", None), result.primary),
    )
    zoom = method_zoom(means, stds, members, stl)
    panels = 1 if zoom is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.2 * panels, 5.4), squeeze=False, layout="constrained")
    look = dict(zip(points, styles(len(points))))
    for axis in axes[0]:
        _draw_methods(axis, result, members, means, stds, look, stl)
        axis.set_xlabel(f"{names[0]} (test)")
        axis.set_ylabel(f"{names[1]} (test)")
        axis.grid(alpha=0.3)
    if zoom is not None:
        axes[0][0].set_title("all points")
        axes[0][1].set_title("zoom on the methods")
        axes[0][1].set_xlim(zoom[0])
        axes[0][1].set_ylim(zoom[1])
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(5, len(labels)), fontsize=LEGEND_SIZE)
    order = list(range(len(means)))
    place_labels(fig, axes[0][-1], np.array(list(means.values())).reshape(-1, 2), list(means), order)
    save_figure(fig, path)
    return path


def _draw_methods(axis, result, members, means, stds, look, stl) -> None:
    maximize = [up for _, up in result.primary]
    if len(members):
        axis.scatter(members[:, 0], members[:, 1], s=18, c="0.72", label="scalarization sweep", zorder=1)
        front = pareto_front(members, maximize)
        front = front[np.argsort(members[front, 0])]
        axis.plot(members[front, 0], members[front, 1], "--", c="0.45", lw=1, label="sweep front", zorder=1)
    for label, mean in means.items():
        style = look[label]
        axis.errorbar(
            mean[0],
            mean[1],
            xerr=stds[label][0],
            yerr=stds[label][1],
            fmt=style["marker"],
            ms=7,
            capsize=2,
            color=style["color"],
            mec="k",
            mew=0.5,
            elinewidth=0.9,
            label=label,
            zorder=3,
        )
    if stl is not None:
        axis.scatter([stl[0]], [stl[1]], marker="*", s=170, c="red", label="single-task", zorder=4)


def method_zoom(means: dict, stds: dict, members: np.ndarray, stl) -> list[tuple[float, float]] | None:
    """Axis limits around the methods' means when they span less than a third of the full view
    (sweep, error bars, single-task point) on some axis; ``None`` when the full view shows them
    apart. Error bars may run past the zoomed limits."""
    if len(means) < 2:
        return None
    centre = np.array(list(means.values()))
    spread = np.array(list(stds.values()))
    parts = [centre - spread, centre + spread, *([np.asarray(stl)[None]] if stl is not None else [])]
    everything = np.vstack(parts + ([members] if len(members) else []))
    full = np.ptp(everything, axis=0)
    low, high = centre.min(axis=0), centre.max(axis=0)
    span = high - low
    if not (span < full / 3).any():
        return None
    margin = np.maximum(0.15 * span, 0.02 * np.maximum(full, 1e-12))
    return [(low[d] - margin[d], high[d] + margin[d]) for d in range(2)]


def _trained(result, label: str) -> str:
    """What ``label``'s runs trained: the method with its options or weights."""
    chosen = result.chosen(label)
    return method_text(chosen[0][0].config, result.objectives) if chosen else label


def write_compare_report(result, store: Store) -> tuple[Path, str]:
    """Writes compare.md/compare.html (and the figure); returns (path, terminal text)."""
    directory = store.directory
    header, rows = summary_rows(result)
    grid = lr_rows(result)
    members = sweep_members(store, result)
    figure = plot_methods(result, members, directory / "compare_front.png")
    config = result.config
    seeds = ", ".join(str(s) for s in config.compare.seeds)
    stl = _stl_values(result)
    notes = [
        f"Settings of every run: {settings_text(config, seed=False)} Seeds {seeds}; the single-task baselines "
        f"use seed {config.seed}.",
        "Methods: "
        + "; ".join(
            f"{label} = {_trained(result, label)}" if _trained(result, label) != label else label
            for label in result.labels
        )
        + ".",
        "Mean ± std over the seeds at each method's learning rate (the one with the best mean validation "
        "score). Test metrics at the evaluation with the best validation score; Δm (Maninis et al. 2019) "
        "over these metrics, each in its own direction, against "
        + (
            "the given single-task values (config key single_task)"
            if getattr(config, "single_task", None)
            else "the single-task baselines"
        )
        + ", in percent (positive: better than single-task)"
        + (
            ": " + ", ".join(f"{n} {v:.4f}" for (n, _), v in zip(_delta_metrics(result), stl)) + " (last row)"
            if stl is not None
            else ""
        )
        + ". ms/step: wall "
        "time of a training step; step MiB: peak tensor memory of a training step above what it starts "
        "with (CUDA: max_memory_allocated; CPU: live tensor storages counted by a dispatch mode); skipped: "
        "optimizer steps skipped for non-finite gradients.",
    ]
    load = machine_load(result, store)
    if load is not None:
        notes.append(load)
    if figure is not None:
        notes.append(
            f"Figure: the methods' mean test points (± std) over {len(members)} scalarization sweep members "
            "of the same benchmark found in this store."
            if len(members)
            else "Figure: the methods' mean test points (± std); no scalarization sweep of this benchmark in this "
            "store (run `scalarize sweep` with the same benchmark and output to draw its front)."
        )
    title = f"Compare {config.name}: MTO methods against uniform scalarization on {result.benchmark}"
    lines = [f"# {title}", "", *[n for note in notes for n in (note, "")], markdown_table(header, rows), ""]
    if grid is not None:
        lines += ["Mean validation score per learning rate (* kept):", "", markdown_table(*grid), ""]
    if figure is not None:
        lines += [f"![methods over the front]({figure.name})", ""]
    path = directory / "compare.md"
    write_text(path, "\n".join(lines))

    def html_table(h, r):
        return (
            "<table border=1 cellpadding=4 style='border-collapse:collapse'><tr>"
            + "".join(f"<th>{html.escape(c)}</th>" for c in h)
            + "</tr>"
            + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in r)
            + "</table>"
        )

    body = [f"<h1>{html.escape(title)}</h1>", *(f"<p>{html.escape(n)}</p>" for n in notes), html_table(header, rows)]
    if grid is not None:
        body += ["<p>Mean validation score per learning rate (* kept):</p>", html_table(*grid)]
    if figure is not None:
        body.append(f"<p><img src='{figure.name}'></p>")
    write_text(
        directory / "compare.html",
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif'>{''.join(body)}</body></html>",
    )
    text = format_table(header, rows)
    if grid is not None:
        text += "\n\nmean validation score per learning rate (* kept)\n" + format_table(*grid)
    if load is not None and load.startswith("Warning"):
        text += "\n\n" + load
    return path, text
