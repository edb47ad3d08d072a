"""The report of a PBT/PB2 search: the best member's weight schedule (stacked areas, as in Royer
et al.'s figure), the population's fitness curves, the lineage, and a table comparing the result
with uniform scalarization on the same budget (and the best point of a sweep when given)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalarize.report.describe import settings_text  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, save_figure  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
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


def plot_lineage(lineage, members, total_steps: int, path: Path, best: str | None = None) -> Path:
    """Every exploit as an arrow from the copied member to the one that copies it (the arrows of
    one sync spread apart), the best member's ancestry drawn over them in colour."""
    index = {m: i for i, m in enumerate(members)}
    fig, axis = plt.subplots(figsize=(7.5, 0.42 * len(members) + 1.6), layout="constrained")
    for i in range(len(members)):
        axis.hlines(i, 0, total_steps, color="0.85", lw=1, zorder=0)
    x = _arrow_positions(lineage, index)
    on_path: set[Copy] = set()
    if best is not None:
        for member, start, stop in ancestry(lineage, best):
            on_path |= {start} - {None}
            axis.hlines(index[member], 0 if start is None else x[start], total_steps if stop is None else x[stop],
                        color="C1", lw=3, zorder=2, label="ancestry of the best model" if stop is None else None)
    for row in lineage:
        key = (row["time"], row["member"])
        if row["member"] == row["source"]:
            continue
        bold = key in on_path
        axis.annotate("", xy=(x[key], index[row["member"]]), xytext=(x[key], index[row["source"]]),
                      arrowprops={"arrowstyle": "-|>", "color": "C1" if bold else "0.45", "lw": 2.2 if bold else 0.9,
                                  "shrinkA": 0 if bold else 3, "shrinkB": 0 if bold else 3,
                                  "mutation_scale": 12 if bold else 8}, zorder=3 if bold else 1)
    axis.set_yticks(range(len(members)), [f"{m} (best)" if m == best else m for m in members])
    axis.set_ylim(len(members) - 0.5, -0.5)
    axis.set_xlim(0, total_steps)
    axis.set_xlabel("step")
    axis.set_title("lineage: an arrow from the member copied to the one that copies it")
    if best is not None:
        fig.legend(loc="outside lower center", fontsize=LEGEND_SIZE, frameon=False)
    save_figure(fig, path)
    return path


def comparison_rows(result, sweep_best: tuple[str, dict] | None = None):
    names = [n for n, _ in result.primary]
    header = ["run", *names, "fitness (val)"]
    fitness = build_fitness(result.config.pbt.fitness, result.primary)
    rows = [[f"PBT best ({result.best_name})", *(f"{result.test[n]:.4f}" for n in names), f"{fitness(result.val):.4f}"]]
    if result.uniform is not None and result.uniform.test:
        rows.append([f"uniform ({result.uniform.name})", *(f"{result.uniform.test[n]:.4f}" for n in names),
                     f"{fitness(result.uniform.val):.4f}"])
    if sweep_best is not None:
        name, final = sweep_best
        rows.append([f"best of sweep ({name})", *(f"{final['test'][n]:.4f}" for n in names), f"{fitness(final['val']):.4f}"])
    return header, rows


def best_of_sweep(directory: Path, result) -> tuple[str, dict] | None:
    """The sweep member (runs of kind ``member``) with the best validation fitness."""
    fitness = build_fitness(result.config.pbt.fitness, result.primary)
    with Store.open_existing(directory) as store:
        finals = {r["name"]: store.final(r["name"]) for r in store.runs() if r["kind"] == "member" and r["status"] == "completed"}
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
        f"What is selected on what: \"PBT best\" is the member with the best validation fitness among the "
        f"{population} at the end of the search; its test metrics are read at its best validation evaluation. "
        "Chosen as the best of many on validation, it is optimistic"
        + (f"; \"uniform\" is one run of uniform scalarization (seed {seed}), with the same model, budget and "
           "learning-rate schedule, not selected" if uniform is not None else "")
        + ". For a comparison on equal footing, `scalarize pbt replay " + directory + "` retrains the best "
        "member's schedule from scratch with several seeds against uniform scalarization with the same seeds."
    )


def write_pbt_report(result, store: Store, total_steps: int, sweep_dir: Path | None = None) -> tuple[Path, str]:
    directory = store.directory
    objectives = [n.split("/")[0] for n, _ in result.primary]
    members = [m.name for m in result.members]
    fitness = build_fitness(result.config.pbt.fitness, result.primary)
    schedule = plot_schedule(result.schedule, objectives, total_steps, directory / "schedule.png")
    curves = plot_fitness(fitness_curves(store, members, fitness), result.best_name, directory / "fitness.png")
    lineage = plot_lineage(result.lineage, members, total_steps, directory / "lineage.png", result.best_name)
    sweep_best = best_of_sweep(sweep_dir, result) if sweep_dir is not None else None
    header, rows = comparison_rows(result, sweep_best)
    schedule_text = "; ".join(f"step {s}: ({', '.join(f'{w:.3f}' for w in ws)})" for s, ws in result.schedule)
    config = result.config
    effective = "(" + ", ".join(f"{w:.3f}" for w in result.effective_weights) + ")" if result.effective_weights else "—"
    paragraphs = [
        f"{len(members)} members, sync every {config.pbt.interval} evaluation(s), quantile {config.pbt.quantile}, "
        f"fitness {config.pbt.fitness}. Settings: {settings_text(config, seed=False)} Member seeds "
        f"{config.seed}…{config.seed + len(members) - 1}. Best member: {result.best_name}; its schedule: "
        f"{schedule_text}. Weighted by the learning rate ({config.schedule.name} schedule), the schedule averages "
        f"{effective}: the weights that mattered, since late weights hardly move a model once a decaying learning "
        "rate nears 0 (the final weights alone can then be far from any optimum).",
        selection_text(result, len(members), str(directory)),
    ]
    lines = [
        f"# PBT {config.name}: {config.pbt.algorithm.upper()} of scalarization weights on {config.benchmark.name}",
        "",
        *(line for p in paragraphs for line in (p, "")),
        markdown_table(header, rows),
        "",
        f"![schedule]({schedule.name})",
        "",
        f"![fitness]({curves.name})",
        "",
        f"![lineage]({lineage.name})",
        "",
    ]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    write_html(directory / "report.html", lines[0][2:], paragraphs, header, rows, [schedule, curves, lineage])
    return path, (format_table(header, rows) + f"\n\nbest member {result.best_name}; schedule: {schedule_text}"
                  f"\nlearning-rate-weighted weights: {effective}")
