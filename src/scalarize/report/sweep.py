"""The report of a scalarization sweep: the front in metric space, metrics against weights, and
the table of the front, with hypervolume and Δm.

A **setting** of the sweep is one weight vector with one value of every other factor; with
several training seeds it holds one member per seed. Settings are summarised by the mean ± std
of their completed seeds, and the front, Δm and the hypervolume are computed on these means;
the seeds themselves are drawn faintly behind them.

* 2 objectives: the settings in metric space (mean ± std), the non-dominated ones joined, labelled
  with their first weight where a label fits, the single-task point marked; a second panel zooms
  on the knee when extreme weights squash it;
* 3 objectives: the weights on the simplex (barycentric coordinates), coloured by Δm against the
  single-task models (or, without them, by the mean of the min-max scaled metrics): both are free
  of the objectives' units, so no task's scale dominates;
* more: parallel coordinates of the settings' metrics, the front highlighted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalarize.files import write_text  # noqa: E402
from scalarize.pareto import default_reference, delta_m_batch, hypervolume, pareto_front  # noqa: E402
from scalarize.report.describe import settings_text  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, place_labels, save_figure  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
from scalarize.train.evaluate import reference_values  # noqa: E402


def _label(weights) -> str:
    return "(" + ", ".join(f"{w:.2f}" for w in weights) + ")"


@dataclass
class Setting:
    """One weight vector and factor values of a sweep, over its seeds."""

    weights: np.ndarray
    factors: tuple[str, ...]
    members: list[int]
    seeds: list[int]
    mean: np.ndarray
    std: np.ndarray
    completed: int


def settings_of(result, split: str = "test") -> list[Setting]:
    """The sweep's settings in member order, each with the mean and std of its completed seeds
    (NaN when none completed)."""
    points = result.points(split)
    factors = list(result.config.sweep.factors)
    groups: dict[tuple, list[int]] = {}
    for index, member in enumerate(result.members):
        key = (tuple(member.weights), tuple(_setting(member.config, f) for f in factors))
        groups.setdefault(key, []).append(index)
    out = []
    for (weights, values), members in groups.items():
        rows = points[members]
        done = rows[~np.isnan(rows).any(axis=1)]
        mean = done.mean(axis=0) if len(done) else np.full(points.shape[1], np.nan)
        std = done.std(axis=0, ddof=1) if len(done) > 1 else np.zeros(points.shape[1])
        out.append(
            Setting(
                np.asarray(weights, float),
                values,
                members,
                [result.members[i].seed for i in members],
                mean,
                std,
                len(done),
            )
        )
    return out


def _several_seeds(result) -> bool:
    return len(result.config.sweep.seeds) > 1


def _front(means: np.ndarray, maximize) -> set[int]:
    valid = ~np.isnan(means).any(axis=1)
    return set(np.flatnonzero(valid)[pareto_front(means[valid], maximize)].tolist()) if valid.any() else set()


def front_rows(result, split: str = "test"):
    """Header and rows of every member (one seed per setting) or every setting (mean ± std
    over its seeds), front first: weights, the value of each sweep factor, metrics, Δm."""
    if _several_seeds(result):
        return _setting_rows(result, split)
    points = result.points(split)
    maximize = [up for _, up in result.primary]
    valid = ~np.isnan(points).any(axis=1)
    front = _front(points, maximize)
    deltas = _member_deltas(result, split)
    factors = list(result.config.sweep.factors)
    header = ["member", "weights", *factors, "seed", *(n for n, _ in result.primary), "Δm %", "front"]
    order = sorted(range(len(points)), key=lambda i: (i not in front, i))
    rows = []
    for i in order:
        member = result.members[i]
        status = result.results[member.name].status
        cells = [
            member.name,
            _label(member.weights),
            *(_setting(member.config, key) for key in factors),
            str(member.seed),
        ]
        cells += [f"{v:.4f}" if not np.isnan(v) else status for v in points[i]]
        cells.append(f"{deltas[i]:+.2f}" if deltas is not None and valid[i] and np.isfinite(deltas[i]) else "—")
        cells.append("yes" if i in front else "")
        rows.append(cells)
    return header, rows


def _member_deltas(result, split: str):
    """Each member's Δm over the Δm metrics (every metric of a dense task, else the primary ones)
    against ``config.single_task`` when given, else the single-task runs; ``None`` without either."""
    metrics = list(getattr(result, "delta", None) or result.primary)
    reference = reference_values(
        metrics, {o: getattr(r, split) for o, r in result.stl.items()}, getattr(result.config, "single_task", None)
    )
    if reference is None:
        return None
    values = np.array(
        [[getattr(result.results[m.name], split).get(n, np.nan) for n, _ in metrics] for m in result.members],
        dtype=float,
    ).reshape(-1, len(metrics))
    ok = ~np.isnan(values).any(axis=1)
    out = np.full(len(values), np.nan)
    if ok.any():
        out[ok] = delta_m_batch(values[ok], reference, [up for _, up in metrics])
    return out


def _setting_rows(result, split: str):
    settings = settings_of(result, split)
    means = np.array([s.mean for s in settings])
    maximize = [up for _, up in result.primary]
    front = _front(means, maximize)
    stl = _stl_point(result, split)
    valid = ~np.isnan(means).any(axis=1)
    deltas = delta_m_batch(np.where(valid[:, None], means, 1.0), stl, maximize) if stl is not None else None
    header = [
        "weights",
        *result.config.sweep.factors,
        "seeds",
        *(f"{n} (mean ± std)" for n, _ in result.primary),
        "Δm % (of the means)",
        "front",
    ]
    rows = []
    for i in sorted(range(len(settings)), key=lambda i: (i not in front, i)):
        s = settings[i]
        cells = [_label(s.weights), *s.factors, f"{s.completed}/{len(s.members)}"]
        cells += [f"{m:.4f} ± {d:.4f}" if not np.isnan(m) else "no seed completed" for m, d in zip(s.mean, s.std)]
        cells.append(f"{deltas[i]:+.2f}" if deltas is not None and valid[i] else "—")
        cells.append("yes" if i in front else "")
        rows.append(cells)
    return header, rows


def _setting(config, key: str) -> str:
    """The value of a dotted config key (a sweep factor) in a member's config, for the table."""
    value = config.model_dump()
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return f"{value:g}" if isinstance(value, float) else str(value)


def _stl_point(result, split: str):
    if not result.stl:
        return None
    try:
        point = np.array([getattr(result.stl[n.split("/")[0]], split)[n] for n, _ in result.primary])
    except KeyError:
        return None
    return point if (point > 0).all() else None  # Δm divides by the single-task metric


def summary(result, split: str = "test", settings: list[Setting] | None = None) -> dict:
    """Hypervolume of the settings' means against the reference (the worse of the STL point
    and the worst observed mean); with one seed, the settings are the members. ``settings``:
    other points to summarise the same way (default: :func:`settings_of` the sweep)."""
    settings = settings_of(result, split) if settings is None else settings
    means = np.array([s.mean for s in settings]).reshape(len(settings), len(result.primary))
    valid = means[~np.isnan(means).any(axis=1)]
    maximize = [up for _, up in result.primary]
    count = len(means)
    if len(valid) == 0:
        return {"members": len(result.members), "settings": count, "front": 0, "hypervolume": 0.0, "reference": None}
    stl = _stl_point(result, split)
    reference = default_reference(valid, maximize, stl=None)
    if stl is not None:
        # the worse of the STL value and the worst observed: every setting counts
        reference = np.where(maximize, np.minimum(reference, stl), np.maximum(reference, stl))
    return {
        "members": len(result.members),
        "settings": count,
        "front": len(pareto_front(valid, maximize)),
        "hypervolume": hypervolume(valid, reference, maximize),
        "reference": reference.tolist(),
    }


def plot_front(result, path: Path, split: str = "test", settings: list[Setting] | None = None) -> Path:
    """The settings (default: :func:`settings_of` the sweep) in metric space, drawn by the
    number of objectives (see the module docstring)."""
    settings = settings_of(result, split) if settings is None else settings
    names = [n for n, _ in result.primary]
    k = len(names)
    if k == 2:
        fig = _plot_two(result, settings, split)
    elif k == 3:
        fig = _plot_simplex(result, settings, split)
    else:
        fig = _plot_parallel(result, settings)
    return save_figure(fig, path)  # constrained layout for two objectives, else tight


def _plot_two(result, settings: list[Setting], split: str):
    names = [n for n, _ in result.primary]
    maximize = [up for _, up in result.primary]
    means = np.array([s.mean for s in settings])
    valid = ~np.isnan(means).any(axis=1)
    stl = _stl_point(result, split)
    zoom = _knee(means, maximize, valid, stl)
    panels = 2 if zoom is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5.2), squeeze=False, layout="constrained")
    scatter = None
    for axis in axes[0]:
        scatter = _draw_front(axis, result, settings, valid, maximize, names, stl, split)
    if zoom is not None:
        axes[0][1].set_xlim(zoom[0])
        axes[0][1].set_ylim(zoom[1])
        axes[0][1].set_title("zoom: the settings above the lower quartile on both")
        axes[0][0].set_title("all settings")
    fig.colorbar(scatter, ax=list(axes[0]), label=f"weight of {names[0].split('/')[0]}")
    front = _front(means, maximize)
    order = sorted(np.flatnonzero(valid), key=lambda i: (i not in front, i))
    texts = [f"{s.weights[0]:.2f}" for s in settings]
    for number, axis in enumerate(axes[0]):
        place_labels(fig, axis, means, texts, order, redraw=number == 0)  # labels stay out of the layout
    return fig


def _draw_front(axis, result, settings, valid, maximize, names, stl, split):
    """Two objectives: the settings coloured by their first weight (mean ± std over seeds, each
    seed faint behind), the front of the means joined."""
    means = np.array([s.mean for s in settings])
    weights = np.array([s.weights[0] for s in settings])
    if _several_seeds(result):
        points = result.points(split)
        for s in settings:
            seeds = points[s.members]
            axis.scatter(
                seeds[:, 0],
                seeds[:, 1],
                c=np.full(len(seeds), s.weights[0]),
                cmap="viridis",
                vmin=0,
                vmax=1,
                s=14,
                alpha=0.3,
                linewidths=0,
            )
        std = np.array([s.std for s in settings])
        axis.errorbar(
            means[valid, 0],
            means[valid, 1],
            xerr=std[valid, 0],
            yerr=std[valid, 1],
            fmt="none",
            ecolor="0.55",
            elinewidth=0.8,
            capsize=2,
            zorder=1,
        )
        axis.scatter([], [], s=14, c="0.6", alpha=0.4, label="one seed")
        axis.scatter([], [], s=40, c="0.6", edgecolors="k", linewidths=0.4, label="mean ± std over seeds")
    scatter = axis.scatter(
        means[valid, 0],
        means[valid, 1],
        c=weights[valid],
        cmap="viridis",
        s=40,
        vmin=0.0,
        vmax=1.0,
        edgecolors="k",
        linewidths=0.4,
        zorder=3,
    )
    front = sorted(_front(means, maximize), key=lambda i: means[i, 0])
    axis.plot(means[front, 0], means[front, 1], "k--", lw=1, label="front", zorder=2)
    if stl is not None:
        axis.scatter([stl[0]], [stl[1]], marker="*", s=160, c="red", label="single-task", zorder=4)
    axis.set_xlabel(f"{names[0]} ({split})")
    axis.set_ylabel(f"{names[1]} ({split})")
    axis.legend(fontsize=LEGEND_SIZE)
    axis.grid(alpha=0.3)
    return scatter


def _knee(points, maximize, valid, stl=None):
    """Axis limits around the members above the lower quartile on both objectives (and the
    single-task point), when they fill less than a quarter of the full view on some axis (the
    extreme weights, near chance on one task, squash the rest); ``None`` when a zoom would show
    nothing new."""
    signed = np.where(maximize, points, -points)
    quartile = np.quantile(signed[valid], 0.25, axis=0)
    chosen = valid & (signed >= quartile).all(axis=1)
    if chosen.sum() < 2:
        return None
    full = np.ptp(points[valid], axis=0)
    shown = points[chosen] if stl is None else np.vstack([points[chosen], stl])
    low, high = shown.min(axis=0), shown.max(axis=0)
    span = high - low
    if not (span < 0.25 * full).any():
        return None
    margin = np.maximum(0.1 * span, 1e-3 * np.maximum(full, 1e-12))
    return [(low[d] - margin[d], high[d] + margin[d]) for d in range(2)]


def simplex_colour(result, means: np.ndarray, split: str = "test") -> tuple[np.ndarray, str]:
    """Per setting, a score free of the objectives' units, and its name: Δm against the
    single-task models when they exist, else the mean over objectives of the metric min-max
    scaled over the settings (1: the best setting on that objective, 0: the worst)."""
    maximize = np.array([up for _, up in result.primary])
    valid = ~np.isnan(means).any(axis=1)
    stl = _stl_point(result, split)
    if stl is not None:
        return delta_m_batch(
            np.where(valid[:, None], means, 1.0), stl, maximize
        ), "Δm % vs single-task (higher is better)"
    signed = np.where(maximize, means, -means)
    low, high = np.nanmin(signed, axis=0), np.nanmax(signed, axis=0)
    scaled = (signed - low) / np.where(high > low, high - low, 1.0)
    return scaled.mean(axis=1), "mean of the metrics min-max scaled per objective (1: best)"


def _plot_simplex(result, settings: list[Setting], split: str):
    names = [n for n, _ in result.primary]
    means = np.array([s.mean for s in settings])
    valid = ~np.isnan(means).any(axis=1)
    weights = np.array([s.weights for s in settings])
    fig, axis = plt.subplots(figsize=(6.5, 5.6))
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
    xy = (weights / weights.sum(axis=1, keepdims=True)) @ corners
    colour, label = simplex_colour(result, means, split)
    scatter = axis.scatter(
        xy[valid, 0], xy[valid, 1], c=colour[valid], cmap="viridis", s=70, edgecolors="k", linewidths=0.4
    )
    if valid.any():
        best = np.flatnonzero(valid)[np.nanargmax(colour[valid])]
        axis.scatter(*xy[best], s=260, facecolors="none", edgecolors="red", linewidths=1.5, label="best")
        axis.legend(loc="upper right", fontsize=LEGEND_SIZE)
    fig.colorbar(scatter, ax=axis, label=label)
    axis.plot(*np.vstack([corners, corners[:1]]).T, "k-", lw=0.8)
    for corner, name in zip(corners, names):
        axis.annotate(
            f"{name.split('/')[0]} = 1",
            corner,
            ha="center",
            va="bottom" if corner[1] > 0 else "top",
            xytext=(0, 4 if corner[1] > 0 else -4),
            textcoords="offset points",
        )
    axis.set_xlim(-0.08, 1.08)
    axis.set_ylim(-0.1, 0.95)
    axis.set_aspect("equal")
    axis.set_axis_off()
    axis.set_title(f"weights on the simplex ({split} {'means over seeds' if _several_seeds(result) else 'metrics'})")
    return fig


def _plot_parallel(result, settings: list[Setting]):
    names = [n for n, _ in result.primary]
    k = len(names)
    maximize = [up for _, up in result.primary]
    means = np.array([s.mean for s in settings])
    valid = ~np.isnan(means).any(axis=1)
    fig, axis = plt.subplots(figsize=(max(6.5, 0.7 * k), 4.2))
    lo, hi = np.nanmin(means, axis=0), np.nanmax(means, axis=0)
    scaled = (means - lo) / np.where(hi > lo, hi - lo, 1.0)
    front = _front(means, maximize)
    for i in np.flatnonzero(valid):
        axis.plot(range(k), scaled[i], color="C1" if i in front else "0.75", lw=1.5 if i in front else 0.7)
    axis.set_xticks(range(k), [n.split("/")[0] for n in names], rotation=45, fontsize=9)
    axis.set_ylabel("metric, min-max scaled")
    axis.set_title("parallel coordinates (front in orange)")
    return fig


def plot_metric_vs_weight(result, path: Path, split: str = "test") -> Path:
    """Each objective's metric against its own weight (mean ± std over seeds, seeds faint)."""
    points = result.points(split)
    settings = settings_of(result, split)
    names = [n for n, _ in result.primary]
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.5), squeeze=False)
    for j, (axis, name) in enumerate(zip(axes.flat, names)):
        weights = np.array([result.members[i].weights[j] for i in range(len(result.members))])
        several = _several_seeds(result)
        axis.scatter(
            weights,
            points[:, j],
            s=14,
            alpha=0.3 if several else 1.0,
            color="C0",
            label="one seed" if several else None,
        )
        if several:
            w = np.array([s.weights[j] for s in settings])
            axis.errorbar(
                w,
                [s.mean[j] for s in settings],
                yerr=[s.std[j] for s in settings],
                fmt="o",
                ms=5,
                color="C0",
                capsize=2,
                label="mean ± std",
            )
            axis.legend(fontsize=LEGEND_SIZE)
        axis.set_xlabel(f"weight of {name.split('/')[0]}")
        axis.set_ylabel(f"{name} ({split})")
        axis.grid(alpha=0.3)
    save_figure(fig, path)
    return path


def design_text(spec, num_objectives: int) -> str:
    """The sweep's design in words (an adaptive one with its batches, an Optuna one with its sampler)."""
    if spec.design == "optuna":
        o = spec.optuna
        return (
            f"an optuna design ({o.trials} trials of the {o.sampler} sampler, objectives {o.objectives}, asked in "
            "batches; weights by Beta stick-breaking, uniform on the simplex)"
        )
    if spec.design != "adaptive":
        return f"a {spec.design} design"
    a = spec.adaptive
    return (
        f"an adaptive design ({a.first(num_objectives)} space-filling weight vectors, then up to {a.batches} "
        f"batch(es) of {a.batch} at the largest gaps of the validation front traced so far; SURF 2026, "
        "Kim & de Weck 2005)"
    )


def write_sweep_report(result, directory: Path) -> tuple[Path, str]:
    """Writes report.md/report.html and figures; returns (path, terminal table)."""
    header, rows = front_rows(result)
    stats = summary(result)
    front = plot_front(result, directory / "front.png")
    curves = plot_metric_vs_weight(result, directory / "metric_vs_weight.png")
    config = result.config
    seeds = config.sweep.seeds
    several = len(seeds) > 1
    what = (
        f"{stats['settings']} settings x {len(seeds)} seeds = {stats['members']} members"
        if several
        else f"{stats['members']} members"
    )
    paragraphs = [
        f"Scalarization with the weights of {design_text(config.sweep, len(result.primary))}"
        + (f", crossed with {', '.join(config.sweep.factors)}" if config.sweep.factors else "")
        + f"; training seeds {', '.join(map(str, seeds))}. Settings: {settings_text(config, seed=False)}",
        f"{what}, {stats['front']} on the front; hypervolume {stats['hypervolume']:.6g} against reference "
        f"{stats['reference']} (test metrics at the best validation evaluation of each member"
        + (
            "; the front, Δm and the hypervolume are those of the means over seeds, each seed drawn faintly"
            if several
            else ""
        )
        + ").",
    ]
    if getattr(result, "saved_steps", None) is not None:
        paragraphs.append(early_stopping_text(result))
    lines = [
        f"# Sweep {config.name}: scalarization on {config.benchmark.name}",
        "",
        *(line for p in paragraphs for line in (p, "")),
        f"![front]({front.name})",
        "",
        f"![metric against weight]({curves.name})",
        "",
        markdown_table(header, rows),
        "",
    ]
    if several:
        members = _member_rows(result)
        lines += ["Every member (one seed each):", "", markdown_table(*members), ""]
    path = directory / "report.md"
    write_text(path, "\n".join(lines))
    write_html(directory / "report.html", lines[0][2:], paragraphs, header, rows, [front, curves])
    noun = "settings" if several else "members"
    count = stats["settings"] if several else stats["members"]
    return path, format_table(
        header, rows
    ) + f"\n\nhypervolume {stats['hypervolume']:.6g}; {stats['front']} of {count} {noun} on the front"


def early_stopping_text(result) -> str:
    """Early stopping in words: how many members stopped, and the member-steps not trained."""
    planned, saved = result.saved_steps
    spec = result.config.sweep.early_stopping
    stopped = sum(r.status == "stopped" for r in result.results.values())
    rungs = f"rungs {spec.rungs}" if spec.rungs else f"min_resource {spec.min_resource}"
    share = f" ({100 * saved / planned:.0f}%)" if planned else ""
    return (
        f"Early stopping (successive halving / ASHA, Li et al. 2020; {rungs}, reduction factor "
        f"{spec.reduction_factor}, by {result.config.sweep.fitness}): {stopped} of {len(result.members)} members stopped "
        f"(status stopped, left off the front); {saved} of {planned} member-steps{share} not trained."
    )


def _member_rows(result):
    points = result.points()
    header = ["member", "weights", "seed", *(n for n, _ in result.primary), "status"]
    rows = [
        [
            m.name,
            _label(m.weights),
            str(m.seed),
            *(f"{v:.4f}" if not np.isnan(v) else "—" for v in points[i]),
            result.results[m.name].status,
        ]
        for i, m in enumerate(result.members)
    ]
    return header, rows
