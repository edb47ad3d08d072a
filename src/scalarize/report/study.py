"""The report of the scaling study, with the data behind every figure as CSV.

* per group, a heatmap over (depth, width) of the best weight of its first objective (the member
  with the best validation fitness, averaged over seeds);
* per group and objective, a heatmap of Δ = multi-task minus single-task test metric (the best
  member against the STL model of the same size and seed, averaged over seeds);
* gradient conflict along training (mean cosine between task gradients, fraction of negative
  cosines, averaged over the evaluations) against each member's Δm, with Pearson's r;
* step time and peak memory against the number of tasks per method, from the MTO benchmark's
  JSON when it exists.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import CenteredNorm, Normalize  # noqa: E402

from scalarize.files import replaced, write_text  # noqa: E402
from scalarize.pareto import delta_m  # noqa: E402
from scalarize.report.describe import settings_text  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, one_two_five, plain_log_axis, save_figure, styles  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
from scalarize.search.fitness import mean_primary  # noqa: E402
from scalarize.store.database import Store  # noqa: E402

METHODS_BENCHMARK = Path("benchmarks/results/methods_scaling.json")


def _write_csv(path: Path, header, rows) -> Path:
    with replaced(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def cell_rows(result):
    """Per cell: group, depth, width, seed, best member, its weights, per objective Δ."""
    rows = []
    for cell in result.cells:
        primary = [result.primary[o] for o in cell.group]
        fitness = mean_primary(primary)
        scored = [(fitness(r.val), name) for name, r in cell.sweep.results.items() if r.status == "completed" and r.val]
        if not scored:
            continue
        _, best = max(scored)
        member = next(m for m in cell.sweep.members if m.name == best)
        test = cell.sweep.results[best].test
        deltas = {}
        for objective, (metric, _) in zip(cell.group, primary):
            stl = result.stl[(objective, cell.depth, cell.width, cell.seed)].test.get(metric)
            deltas[objective] = test[metric] - stl if stl is not None else float("nan")
        rows.append(
            {
                "group": "+".join(cell.group),
                "depth": cell.depth,
                "width": cell.width,
                "seed": cell.seed,
                "best": best,
                "weights": member.weights,
                "delta": deltas,
            }
        )
    return rows


def conflict_rows(result, store: Store):
    """Per member: mean conflict statistics along training and its test Δm against STL."""
    rows = []
    for cell in result.cells:
        primary = [result.primary[o] for o in cell.group]
        stl = [result.stl[(o, cell.depth, cell.width, cell.seed)].test.get(m) for o, (m, _) in zip(cell.group, primary)]
        for member in cell.sweep.members:
            run = cell.sweep.results[member.name]
            history = store.history(member.name, "conflict")
            if run.status != "completed" or not history or any(v is None or v <= 0 for v in stl):
                continue
            cosine = float(np.mean([v for _, v in history.get("mean_cosine", [])]))
            negative = float(np.mean([v for _, v in history.get("negative_fraction", [])]))
            gain = delta_m([run.test[m] for m, _ in primary], stl, [up for _, up in primary])
            rows.append(
                {
                    "group": "+".join(cell.group),
                    "depth": cell.depth,
                    "width": cell.width,
                    "seed": cell.seed,
                    "member": member.name,
                    "weights": member.weights,
                    "mean_cosine": cosine,
                    "negative_fraction": negative,
                    "delta_m": float(gain),
                }
            )
    return rows


def pearson(x, y) -> float:
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def _heatmap(axis, values, depths, widths, title, fmt="{:.2f}", cmap="viridis", norm=None):
    """One value per (depth, width), written in each cell in black or white, whichever reads
    on the cell's colour."""
    image = axis.imshow(values, cmap=cmap, norm=norm, aspect="auto", origin="lower")
    axis.set_xticks(range(len(widths)), [f"{w:g}" for w in widths])
    axis.set_yticks(range(len(depths)), [str(d) for d in depths])
    axis.set_xlabel("width")
    axis.set_ylabel("depth")
    axis.set_title(title)
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            red, green, blue, _ = image.cmap(image.norm(v))
            light = 0.299 * red + 0.587 * green + 0.114 * blue > 0.5
            axis.text(j, i, fmt.format(v), ha="center", va="center", fontsize=9, color="k" if light else "w")
    plt.colorbar(image, ax=axis)
    return image


def centred_norm(values: np.ndarray) -> CenteredNorm:
    """A diverging norm with 0 in the middle of the colour map (white in ``RdBu``): the sign of
    Δ reads off the colour, and equal gains and losses get equal depth."""
    finite = np.abs(values[np.isfinite(values)])
    return CenteredNorm(vcenter=0.0, halfrange=float(finite.max()) if finite.size and finite.max() > 0 else 1.0)


def _grid(rows, group, depths, widths, value) -> np.ndarray:
    out = np.full((len(depths), len(widths)), np.nan)
    for i, d in enumerate(depths):
        for j, w in enumerate(widths):
            values = [value(r) for r in rows if r["group"] == group and r["depth"] == d and r["width"] == w]
            if values:
                out[i, j] = float(np.nanmean(values))
    return out


def plot_sizes(rows, groups, depths, widths, directory: Path, higher: dict[str, bool] | None = None) -> list[Path]:
    """Per group, the best weight and each objective's Δ over (depth, width); ``higher``: per
    objective, whether its metric is better higher (default), which sets Δ's colours."""
    higher = higher or {}
    paths = []
    for group in groups:
        objectives = group.split("+")
        fig, axes = plt.subplots(1, 1 + len(objectives), figsize=(4.2 * (1 + len(objectives)), 3.4), squeeze=False)
        _heatmap(
            axes[0, 0],
            _grid(rows, group, depths, widths, lambda r: r["weights"][0]),
            depths,
            widths,
            f"best weight of {objectives[0]}",
            norm=Normalize(0.0, 1.0),
        )
        for axis, objective in zip(axes[0, 1:], objectives):
            delta = _grid(rows, group, depths, widths, lambda r, o=objective: r["delta"][o])
            _heatmap(
                axis,
                delta,
                depths,
                widths,
                f"Δ {objective}: multi-task − single-task\n(blue: better, red: worse)",
                fmt="{:+.3f}",
                cmap="RdBu" if higher.get(objective, True) else "RdBu_r",
                norm=centred_norm(delta),
            )
        fig.suptitle(group, fontsize=10)
        path = directory / f"sizes_{group.replace('+', '_')}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths


def plot_conflict(rows, directory: Path) -> tuple[Path, dict]:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    stats = {}
    for axis, key, label in (
        (axes[0], "mean_cosine", "mean cosine between task gradients"),
        (axes[1], "negative_fraction", "fraction of negative cosines"),
    ):
        for group in sorted({r["group"] for r in rows}):
            points = [(r[key], r["delta_m"]) for r in rows if r["group"] == group]
            axis.scatter(*zip(*points), s=14, label=group)
        r = pearson([row[key] for row in rows], [row["delta_m"] for row in rows])
        uniform = [row for row in rows if np.allclose(row["weights"], np.mean(row["weights"]))]
        r_uniform = pearson([row[key] for row in uniform], [row["delta_m"] for row in uniform])
        stats[key], stats[f"{key}_uniform"] = r, r_uniform
        axis.set_xlabel(f"{label} (mean along training)")
        axis.set_ylabel("Δm % vs single-task (test)")
        axis.set_title(f"Pearson r = {r:.2f} (all members), {r_uniform:.2f} (uniform weights)", fontsize=9)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=LEGEND_SIZE)
    path = directory / "conflict.png"
    save_figure(fig, path)
    return path, stats


def methods_provenance(data: dict, source: Path) -> str:
    """Where the methods' timings come from: the benchmark's machine, not this study's."""
    machine = ", ".join(
        str(x)
        for x in (
            data.get("device"),
            data.get("device_name"),
            f"{data['threads']} thread(s)" if data.get("threads") else None,
            f"torch {data['torch']}" if data.get("torch") else None,
        )
        if x
    )
    load = data.get("load_average_before_after")
    loaded = f"; load average {load[0]} before, {load[1]} after" if isinstance(load, list) and len(load) == 2 else ""
    return (
        f"Step time and memory of the methods come from {source} (benchmarks/methods_scaling.py on "
        f"{data.get('benchmark', 'its benchmark')}, model {data.get('model', '?')}), measured on "
        f"{machine or 'an unrecorded machine'}{loaded}: not by this study, and maybe not on this machine."
    )


def plot_methods(source: Path, directory: Path) -> tuple[Path | None, list, str]:
    """Step time (relative to uniform scalarization) and peak memory against the number of
    tasks per method, from the MTO benchmark's JSON; each method its own colour, marker and
    dash; the ticks at the measured task counts. Returns (figure, rows, provenance)."""
    if not source.is_file():
        return None, [], ""
    data = json.loads(source.read_text())
    records = data.get("records") or data.get("results") or []
    rows = [
        (
            r.get("method"),
            r.get("num_tasks", r.get("K")),
            r.get("step_time_ms", r.get("time_ms")),
            r.get("peak_memory_mb", r.get("memory_mb")),
        )
        for r in records
        if isinstance(r, dict)
    ]
    rows = [r for r in rows if None not in r]
    if not rows:
        return None, [], ""
    uniform = {k: t for name, k, t, _ in rows if name == "scalarization"}
    methods = sorted({r[0] for r in rows}, key=lambda m: (m != "scalarization", m))
    tasks = sorted({r[1] for r in rows})
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), layout="constrained")
    for method, style in zip(methods, styles(len(methods))):
        points = sorted((k, t, m) for name, k, t, m in rows if name == method)
        times = [t / uniform[k] if uniform.get(k) else t for k, t, _ in points]
        label = "uniform scalarization" if method == "scalarization" else method
        width = 2.4 if method == "scalarization" else 1.1
        for axis, ys in ((axes[0], times), (axes[1], [m for _, _, m in points])):
            axis.plot([p[0] for p in points], ys, ms=4, lw=width, label=label, **style)
    ratio = "step time / uniform scalarization's" if uniform else "step time (ms)"
    for axis, label in zip(axes, (ratio, "peak step memory (MB)")):
        axis.set_xlabel("tasks")
        axis.set_ylabel(label)
        plain_log_axis(axis, "x", tasks)
        plain_log_axis(axis, "y", one_two_five([y for line in axis.get_lines() for y in line.get_ydata()]))
        axis.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8, ncol=1 if len(labels) <= 24 else 2)
    machine = data.get("device_name") or data.get("device") or "another machine"
    fig.suptitle(
        f"measured by benchmarks/methods_scaling.py on {machine} ({data.get('device', '?')}), not by this study",
        fontsize=10,
    )
    path = directory / "methods_scaling.png"
    save_figure(fig, path)
    return path, rows, methods_provenance(data, source)


def write_study_report(result, methods_benchmark: Path = METHODS_BENCHMARK) -> tuple[Path, str]:
    directory = result.config.experiment_dir()
    depths, widths = result.config.study.depths, result.config.study.widths
    rows = cell_rows(result)
    groups = sorted(
        {r["group"] for r in rows}, key=lambda g: [c.label for c in result.cells if "+".join(c.group) == g][0]
    )
    with Store(directory) as store:
        conflicts = conflict_rows(result, store)
    size_figures = plot_sizes(rows, groups, depths, widths, directory, {o: up for o, (_, up) in result.primary.items()})
    conflict_figure, r = plot_conflict(conflicts, directory) if conflicts else (None, {})
    methods_figure, method_rows, provenance = plot_methods(methods_benchmark, directory)
    _write_csv(
        directory / "best_weights_and_delta.csv",
        ["group", "depth", "width", "seed", "best_member", "weights", "delta_per_objective"],
        [
            [r["group"], r["depth"], r["width"], r["seed"], r["best"], json.dumps(r["weights"]), json.dumps(r["delta"])]
            for r in rows
        ],
    )
    _write_csv(
        directory / "conflict.csv",
        ["group", "depth", "width", "seed", "member", "weights", "mean_cosine", "negative_fraction", "delta_m"],
        [
            [
                c["group"],
                c["depth"],
                c["width"],
                c["seed"],
                c["member"],
                json.dumps(c["weights"]),
                c["mean_cosine"],
                c["negative_fraction"],
                c["delta_m"],
            ]
            for c in conflicts
        ],
    )
    if method_rows:
        _write_csv(
            directory / "methods_scaling.csv", ["method", "tasks", "step_time_ms", "peak_memory_mb"], method_rows
        )
    header = ["group", "depth", "width", "seed", "best weights", *("Δ " + o for o in result.objectives)]
    table = [
        [
            r["group"],
            str(r["depth"]),
            f"{r['width']:g}",
            str(r["seed"]),
            "(" + ", ".join(f"{w:.2f}" for w in r["weights"]) + ")",
            *(f"{r['delta'][o]:+.4f}" if o in r["delta"] else "" for o in result.objectives),
        ]
        for r in rows
    ]
    conflict_text = (
        (
            f"Pearson r between Δm and the mean gradient cosine: {r['mean_cosine']:.2f} over all {len(conflicts)} members "
            f"({r['mean_cosine_uniform']:.2f} over the uniform-weight members); between Δm and the fraction of negative "
            f"cosines: {r['negative_fraction']:.2f} ({r['negative_fraction_uniform']:.2f})."
        )
        if conflicts
        else "No conflict measurements."
    )
    figures = [*size_figures, conflict_figure]
    study = result.config.study
    about = (
        f"Depths {depths} x widths {widths}, groups {groups}, sweep {study.sweep.design} (step "
        f"{study.sweep.step}), seeds {study.seeds}. Settings of every run: {settings_text(result.config, seed=False)}"
    )
    lines = [
        f"# Study {result.config.name} on {result.config.benchmark.name}",
        "",
        about,
        "",
        markdown_table(header, table),
        "",
        conflict_text,
        "",
        *(f"![{p.stem}]({p.name})\n" for p in figures if p is not None),
    ]
    if methods_figure is not None:
        lines += [provenance, "", f"![{methods_figure.stem}]({methods_figure.name})", ""]
    else:
        lines += [f"(No MTO benchmark results at {methods_benchmark}: run benchmarks/methods_scaling.py.)", ""]
    lines += [
        "Data behind the figures: best_weights_and_delta.csv, conflict.csv"
        + (", methods_scaling.csv" if method_rows else "")
        + "."
    ]
    path = directory / "report.md"
    write_text(path, "\n".join(lines))
    write_html(
        directory / "report.html",
        lines[0][2:],
        [about, conflict_text, provenance],
        header,
        table,
        [*figures, methods_figure],
    )
    return path, format_table(header, table) + "\n\n" + conflict_text
