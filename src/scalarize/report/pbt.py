"""The report of a PBT/PB2/MO-PBT search: the best member's weight schedule (stacked areas, as in
Royer et al.'s figure), the population's fitness curves, the lineage, and a table comparing the
result with uniform scalarization on the same budget (and the best point of a sweep when given).

MO-PBT's result is the population's front, reported as a sweep's front is
(:mod:`scalarize.report.sweep`): the members in metric space with the front joined, the
hypervolume against the worst value of each objective, and a table, front first."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalarize.files import write_text  # noqa: E402
from scalarize.report.describe import settings_text  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, save_figure  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
from scalarize.report.sweep import Setting, plot_front, summary  # noqa: E402
from scalarize.search.fitness import build_fitness  # noqa: E402
from scalarize.store.database import Store  # noqa: E402


def plot_schedule(schedule, objectives, total_steps: int, path: Path) -> Path:
    steps = [s for s, _ in schedule] + [total_steps]
    weights = np.array([w for _, w in schedule])
    x = np.repeat(steps, 2)[1:-1]
    y = np.repeat(weights, 2, axis=0)
    fig, axis = plt.subplots(figsize=(6, 3.4))
    axis.stackplot(x, y.T, labels=objectives, alpha=0.85)
    axis.set_xlim(0, total_steps)
    axis.set_ylim(0, 1)
    axis.set_xlabel("step")
    axis.set_ylabel("weight")
    axis.set_title("weight schedule of the best member")
    axis.legend(fontsize=LEGEND_SIZE, loc="upper right")
    save_figure(fig, path)
    return path


def fitness_curves(store: Store, members, fitness) -> dict[str, list[tuple[int, float]]]:
    curves = {}
    for member in members:
        history = store.history(member, "val")
        steps = sorted({s for points in history.values() for s, _ in points})
        rows = {s: {} for s in steps}
        for name, points in history.items():
            for s, v in points:
                rows[s][name] = v
        curves[member] = [(s, fitness(rows[s])) for s in steps]
    return curves


def plot_fitness(curves, best: str, path: Path) -> Path:
    fig, axis = plt.subplots(figsize=(6, 3.4))
    for member, points in curves.items():
        if points:
            axis.plot(*zip(*points), lw=2.2 if member == best else 0.9, label=member if member == best else None)
    axis.set_xlabel("step")
    axis.set_ylabel("validation fitness")
    axis.set_title("population fitness (best member bold)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize=LEGEND_SIZE)
    save_figure(fig, path)
    return path


Copy = tuple[int, str]  # (sync time, the member that copies)


def ancestry(lineage, best: str) -> list[tuple[str, Copy | None, Copy | None]]:
    """The line of models the best member's final model descends from, latest first: per
    member on it, ``(member, the copy it starts at or None for the start of training, the copy
    it ends at or None for the end)``."""
    segments, current, end = [], best, None
    for row in sorted(lineage, key=lambda r: r["time"], reverse=True):
        if row["member"] == current and row["source"] != current:
            copy = (row["time"], current)
            segments.append((current, copy, end))
            current, end = row["source"], copy
    segments.append((current, None, end))
    return segments


def _arrow_positions(lineage, index: dict[str, int]) -> dict[Copy, float]:
    """The x of each copy's arrow: at its sync's step, the arrows of one sync spread over most
    of the steps between syncs so that none overlaps another."""
    steps = sorted({r["step"] for r in lineage})
    gaps = [b - a for a, b in zip([0, *steps], steps) if b > a]
    gap = min(gaps) if gaps else 1
    by_time: dict[int, list[dict]] = {}
    for row in lineage:
        if row["member"] != row["source"]:
            by_time.setdefault(row["time"], []).append(row)
    positions = {}
    for rows in by_time.values():
        rows = sorted(rows, key=lambda r: index[r["member"]])
        for k, row in enumerate(rows):
            positions[(row["time"], row["member"])] = row["step"] + (k - (len(rows) - 1) / 2) * 0.8 * gap / len(rows)
    return positions


def plot_lineage(lineage, members, total_steps: int, path: Path, best: str | None = None, front=()) -> Path:
    """Every exploit as an arrow from the copied member to the one that copies it (the arrows of
    one sync spread apart), the best member's ancestry drawn over them in colour; the members
    of ``front`` (MO-PBT's result) marked in the labels."""
    index = {m: i for i, m in enumerate(members)}
    fig, axis = plt.subplots(figsize=(7.5, 0.42 * len(members) + 1.6), layout="constrained")
    for i in range(len(members)):
        axis.hlines(i, 0, total_steps, color="0.85", lw=1, zorder=0)
    x = _arrow_positions(lineage, index)
    on_path: set[Copy] = set()
    if best is not None:
        for member, start, stop in ancestry(lineage, best):
            on_path |= {start} - {None}
            axis.hlines(
                index[member],
                0 if start is None else x[start],
                total_steps if stop is None else x[stop],
                color="C1",
                lw=3,
                zorder=2,
                label="ancestry of the best model" if stop is None else None,
            )
    for row in lineage:
        key = (row["time"], row["member"])
        if row["member"] == row["source"]:
            continue
        bold = key in on_path
        axis.annotate(
            "",
            xy=(x[key], index[row["member"]]),
            xytext=(x[key], index[row["source"]]),
            arrowprops={
                "arrowstyle": "-|>",
                "color": "C1" if bold else "0.45",
                "lw": 2.2 if bold else 0.9,
                "shrinkA": 0 if bold else 3,
                "shrinkB": 0 if bold else 3,
                "mutation_scale": 12 if bold else 8,
            },
            zorder=3 if bold else 1,
        )
    axis.set_yticks(range(len(members)), [_lineage_label(m, best, front) for m in members])
    axis.set_ylim(len(members) - 0.5, -0.5)
    axis.set_xlim(0, total_steps)
    axis.set_xlabel("step")
    axis.set_title("lineage: an arrow from the member copied to the one that copies it")
    if best is not None:
        fig.legend(loc="outside lower center", fontsize=LEGEND_SIZE, frameon=False)
    save_figure(fig, path)
    return path


def _lineage_label(member: str, best: str | None, front) -> str:
    marks = [word for word, on in (("best", member == best), ("front", member in front)) if on]
    return f"{member} ({', '.join(marks)})" if marks else member


def comparison_rows(result, sweep_best: tuple[str, dict] | None = None):
    names = [n for n, _ in result.primary]
    header = ["run", *names, "fitness (val)"]
    fitness = build_fitness(result.config.pbt.fitness, result.primary)
    rows = [[f"PBT best ({result.best_name})", *(f"{result.test[n]:.4f}" for n in names), f"{fitness(result.val):.4f}"]]
    if result.uniform is not None and result.uniform.test:
        rows.append(
            [
                f"uniform ({result.uniform.name})",
                *(f"{result.uniform.test[n]:.4f}" for n in names),
                f"{fitness(result.uniform.val):.4f}",
            ]
        )
    if sweep_best is not None:
        name, final = sweep_best
        rows.append(
            [f"best of sweep ({name})", *(f"{final['test'][n]:.4f}" for n in names), f"{fitness(final['val']):.4f}"]
        )
    return header, rows


def best_of_sweep(directory: Path, result) -> tuple[str, dict] | None:
    """The sweep member (runs of kind ``member``) with the best validation fitness."""
    fitness = build_fitness(result.config.pbt.fitness, result.primary)
    with Store.open_existing(directory) as store:
        finals = {
            r["name"]: store.final(r["name"])
            for r in store.runs()
            if r["kind"] == "member" and r["status"] == "completed"
        }
    scored = [(fitness(f["val"]), name) for name, f in finals.items() if "val" in f]
    if not scored:
        return None
    _, name = max(scored)
    return name, finals[name]


def selection_text(result, population: int, directory: str) -> str:
    """What each row of the comparison was selected on, and where the fair comparison is."""
    uniform = result.uniform
    seed = result.config.seed
    return (
        f'What is selected on what: "PBT best" is the member with the best validation fitness among the '
        f"{population} at the end of the search; its test metrics are read at its best validation evaluation. "
        "Chosen as the best of many on validation, it is optimistic"
        + (
            f'; "uniform" is one run of uniform scalarization (seed {seed}), with the same model, budget and '
            "learning-rate schedule, not selected"
            if uniform is not None
            else ""
        )
        + ". For a comparison on equal footing, `scalarize pbt replay "
        + directory
        + "` retrains the best "
        "member's schedule from scratch with several seeds against uniform scalarization with the same seeds."
    )


# -- MO-PBT: the population's front, reported as a sweep's ----------------------------------------


@dataclass
class PopulationView:
    """A PBT population as the sweep's report reads a sweep of one seed (what
    :func:`scalarize.report.sweep.plot_front` and ``summary`` use): one setting per member."""

    primary: list[tuple[str, bool]]
    members: list
    config: Any = field(default_factory=lambda: SimpleNamespace(sweep=SimpleNamespace(seeds=[0], factors=[])))
    stl: dict = field(default_factory=dict)


def member_points(result, split: str) -> np.ndarray:
    """``[N, K]``: each member's final primary metrics on ``split`` (NaN when it has none)."""
    names = [n for n, _ in result.primary]
    rows = [[getattr(result.results.get(m.name), split, {}).get(n, np.nan) for n in names] for m in result.members]
    return np.asarray(rows, dtype=float).reshape(len(result.members), len(names))


def member_settings(result, split: str) -> list[Setting]:
    """One :class:`~scalarize.report.sweep.Setting` per member: its learning-rate-weighted
    weights (what its final model was trained with, on average) and its final metrics."""
    points = member_points(result, split)
    weights = result.member_weights or [m.weights for m in result.members]
    return [
        Setting(
            np.asarray(w, float),
            (),
            [i],
            [m.seed],
            points[i],
            np.zeros(points.shape[1]),
            int(not np.isnan(points[i]).any()),
        )
        for i, (m, w) in enumerate(zip(result.members, weights))
    ]


def front_table(result):
    """Every member, the search's front first (best fitness first): its learning-rate-weighted
    weights, final validation and test metrics, and whether the search returned it."""
    names = [n for n, _ in result.primary]
    val, test = member_points(result, "val"), member_points(result, "test")
    weights = result.member_weights or [m.weights for m in result.members]
    order = list(result.front) + [i for i in range(len(result.members)) if i not in result.front]
    header = [
        "member",
        "weights (lr-weighted)",
        *(f"{n} (val)" for n in names),
        *(f"{n} (test)" for n in names),
        "front",
    ]
    rows = []
    for i in order:
        cells = [result.members[i].name, "(" + ", ".join(f"{w:.3f}" for w in weights[i]) + ")"]
        cells += [f"{v:.4f}" if np.isfinite(v) else "—" for v in (*val[i], *test[i])]
        rows.append(cells + ["yes" if i in result.front else ""])
    return header, rows


def front_section(result, directory: Path) -> tuple[str, Path]:
    """MO-PBT's paragraph and front figure (validation metrics, the front the search returned)."""
    view = PopulationView(result.primary, result.members)
    val = summary(view, "val", member_settings(result, "val"))
    test = summary(view, "test", member_settings(result, "test"))
    figure = plot_front(view, directory / "front.png", "val", member_settings(result, "val"))
    names = ", ".join(n for n, _ in result.primary)
    diversity = result.config.pbt.diversity or "scattered"
    text = (
        f"MO-PBT (Dushatskiy et al., ICML 2023) ranked the members at each sync by non-dominated sorting of their "
        f"validation {names}, then by the {diversity} order inside each front. Its result is the population's "
        f"front: {len(result.front)} of {len(result.members)} members non-dominated on validation (each model in "
        f"runs/<member>/model.pt; schedules and lineage in pbt_result.json). Hypervolume of the population "
        f"{val['hypervolume']:.6g} on validation (reference {_vector(val['reference'])}) and {test['hypervolume']:.6g} "
        f"on test (reference {_vector(test['reference'])}, {test['front']} members non-dominated there), each "
        "against the worst value of each objective, as a sweep's report computes it. A member's weights are the "
        "learning-rate-weighted mean of its own schedule."
    )
    return text, figure


def _vector(values) -> str:
    return "—" if values is None else "(" + ", ".join(f"{v:.4g}" for v in values) + ")"


def write_pbt_report(result, store: Store, total_steps: int, sweep_dir: Path | None = None) -> tuple[Path, str]:
    directory = store.directory
    objectives = [n.split("/")[0] for n, _ in result.primary]
    members = [m.name for m in result.members]
    mo = result.config.pbt.algorithm == "mo-pbt"
    front_names = [members[i] for i in result.front] if mo else []
    fitness = build_fitness(result.config.pbt.fitness, result.primary)
    schedule = plot_schedule(result.schedule, objectives, total_steps, directory / "schedule.png")
    curves = plot_fitness(fitness_curves(store, members, fitness), result.best_name, directory / "fitness.png")
    lineage = plot_lineage(
        result.lineage, members, total_steps, directory / "lineage.png", result.best_name, front_names
    )
    sweep_best = best_of_sweep(sweep_dir, result) if sweep_dir is not None else None
    header, rows = comparison_rows(result, sweep_best)
    schedule_text = "; ".join(f"step {s}: ({', '.join(f'{w:.3f}' for w in ws)})" for s, ws in result.schedule)
    config = result.config
    effective = "(" + ", ".join(f"{w:.3f}" for w in result.effective_weights) + ")" if result.effective_weights else "—"
    paragraphs = [
        f"{len(members)} members, sync every {config.pbt.interval} evaluation(s), quantile {config.pbt.quantile}, "
        f"fitness {config.pbt.fitness}. Settings: {settings_text(config, seed=False)} Member seeds "
        f"{config.seed}…{config.seed + len(members) - 1}. Best member"
        + (" (of the front, by the fitness)" if mo else "")
        + f": {result.best_name}; its schedule: "
        f"{schedule_text}. Weighted by the learning rate ({config.schedule.name} schedule), the schedule averages "
        f"{effective}: the weights that mattered, since late weights hardly move a model once a decaying learning "
        "rate nears 0 (the final weights alone can then be far from any optimum).",
        selection_text(result, len(members), str(directory)),
    ]
    figures, tables, terminal = [schedule, curves, lineage], [], ""
    if mo:
        text, front = front_section(result, directory)
        paragraphs.insert(0, text)
        figures.insert(0, front)
        front_header, front_rows = front_table(result)
        tables.append(("The population, the search's front first:", front_header, front_rows))
        terminal = "\n\n" + format_table(front_header, front_rows) + f"\n\nfront: {', '.join(front_names)}"
    lines = [
        f"# PBT {config.name}: {config.pbt.algorithm.upper()} of scalarization weights on {config.benchmark.name}",
        "",
        *(line for p in paragraphs for line in (p, "")),
        markdown_table(header, rows),
        "",
        *(line for caption, h, r in tables for line in (caption, "", markdown_table(h, r), "")),
        *(line for figure in figures for line in (f"![{figure.stem}]({figure.name})", "")),
    ]
    path = directory / "report.md"
    write_text(path, "\n".join(lines))
    write_html(directory / "report.html", lines[0][2:], paragraphs, header, rows, figures, tables)
    return path, (
        format_table(header, rows) + f"\n\nbest member {result.best_name}; schedule: {schedule_text}"
        f"\nlearning-rate-weighted weights: {effective}" + terminal
    )
