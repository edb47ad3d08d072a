"""The report of a scalarization sweep: the front in metric space, metrics against weights, and
the table of the front, with hypervolume and Δm.

* 2 objectives: scatter of the members' test metrics, the non-dominated ones joined, each point
  labelled with its first weight, the single-task point marked;
* 3 objectives: the weights on the simplex (barycentric coordinates), coloured by the mean metric;
* more: parallel coordinates of the members' metrics, the front highlighted.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalarize.pareto import default_reference, delta_m_batch, hypervolume, pareto_front  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import save_figure  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
from scalarize.train.evaluate import reference_values  # noqa: E402


def _label(weights) -> str:
    return "(" + ", ".join(f"{w:.2f}" for w in weights) + ")"


def front_rows(result, split: str = "test"):
    """Header and rows of every member (front first): its weights, the value of each sweep factor,
    its seed and metrics, with Δm when STL runs exist."""
    points = result.points(split)
    maximize = [up for _, up in result.primary]
    valid = ~np.isnan(points).any(axis=1)
    front = set(np.flatnonzero(valid)[pareto_front(points[valid], maximize)].tolist()) if valid.any() else set()
    deltas = _member_deltas(result, split)
    factors = list(result.config.sweep.factors)
    header = ["member", "weights", *factors, "seed", *(n for n, _ in result.primary), "Δm %", "front"]
    order = sorted(range(len(points)), key=lambda i: (i not in front, i))
    rows = []
    for i in order:
        member = result.members[i]
        status = result.results[member.name].status
        cells = [member.name, _label(member.weights), *(_setting(member.config, key) for key in factors), str(member.seed)]
        cells += [f"{v:.4f}" if not np.isnan(v) else status for v in points[i]]
        cells.append(f"{deltas[i]:+.2f}" if deltas is not None and valid[i] and np.isfinite(deltas[i]) else "—")
        cells.append("yes" if i in front else "")
        rows.append(cells)
    return header, rows


def _member_deltas(result, split: str):
    """Each member's Δm over the Δm metrics (every metric of a dense task, else the primary ones)
    against ``config.single_task`` when given, else the single-task runs; ``None`` without either."""
    metrics = list(getattr(result, "delta", None) or result.primary)
    reference = reference_values(metrics, {o: getattr(r, split) for o, r in result.stl.items()},
                                 getattr(result.config, "single_task", None))
    if reference is None:
        return None
    values = np.array([[getattr(result.results[m.name], split).get(n, np.nan) for n, _ in metrics]
                       for m in result.members], dtype=float).reshape(-1, len(metrics))
    ok = ~np.isnan(values).any(axis=1)
    out = np.full(len(values), np.nan)
    if ok.any():
        out[ok] = delta_m_batch(values[ok], reference, [up for _, up in metrics])
    return out


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


def summary(result, split: str = "test") -> dict:
    """Hypervolume of the members against the reference (STL point, else the worst observed)."""
    points = result.points(split)
    valid = points[~np.isnan(points).any(axis=1)]
    maximize = [up for _, up in result.primary]
    if len(valid) == 0:
        return {"members": len(points), "front": 0, "hypervolume": 0.0, "reference": None}
    stl = _stl_point(result, split)
    reference = default_reference(valid, maximize, stl=None)
    if stl is not None:
        # the worse of the STL value and the worst observed: every member counts
        reference = np.where(maximize, np.minimum(reference, stl), np.maximum(reference, stl))
    return {
        "members": len(points),
        "front": len(pareto_front(valid, maximize)),
        "hypervolume": hypervolume(valid, reference, maximize),
        "reference": reference.tolist(),
    }


def plot_front(result, path: Path, split: str = "test") -> Path:
    points = result.points(split)
    names = [n for n, _ in result.primary]
    maximize = [up for _, up in result.primary]
    weights = np.array([m.weights for m in result.members])
    valid = ~np.isnan(points).any(axis=1)
    k = len(names)
    if k == 2:
        stl = _stl_point(result, split)
        zoom = _knee(points, maximize, valid, stl)
        panels = 2 if zoom is not None else 1
        fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5), squeeze=False, layout="constrained")
        scatter = None
        for axis in axes[0]:
            scatter = _draw_front(axis, points, weights, valid, maximize, names, stl)
        if zoom is not None:
            axes[0][1].set_xlim(zoom[0])
            axes[0][1].set_ylim(zoom[1])
            axes[0][1].set_title("zoom: the members above the lower quartile on both", fontsize=8)
            axes[0][0].set_title("all members", fontsize=8)
        fig.colorbar(scatter, ax=list(axes[0]), label=f"weight of {names[0].split('/')[0]}")
    elif k == 3:
        fig, axis = plt.subplots(figsize=(5.5, 4.8))
        corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, np.sqrt(3) / 2]])
        xy = weights @ corners
        signed = np.where(maximize, points, -points)
        colour = signed.mean(axis=1)
        scatter = axis.scatter(xy[valid, 0], xy[valid, 1], c=colour[valid], cmap="viridis", s=60)
        fig.colorbar(scatter, ax=axis, label="mean primary metric (signed, higher is better)")
        axis.plot(*np.vstack([corners, corners[:1]]).T, "k-", lw=0.8)
        for corner, name in zip(corners, names):
            axis.annotate(name.split("/")[0], corner, ha="center", va="bottom" if corner[1] > 0 else "top")
        axis.set_axis_off()
        axis.set_title("weights on the simplex")
    else:
        fig, axis = plt.subplots(figsize=(max(6, 0.6 * k), 4))
        lo, hi = np.nanmin(points, axis=0), np.nanmax(points, axis=0)
        scaled = (points - lo) / np.where(hi > lo, hi - lo, 1.0)
        front = set(np.flatnonzero(valid)[pareto_front(points[valid], maximize)].tolist())
        for i in np.flatnonzero(valid):
            axis.plot(range(k), scaled[i], color="C1" if i in front else "0.75", lw=1.5 if i in front else 0.7)
        axis.set_xticks(range(k), [n.split("/")[0] for n in names], rotation=45, fontsize=7)
        axis.set_ylabel("metric, min-max scaled")
        axis.set_title("parallel coordinates (front in orange)")
    return save_figure(fig, path)  # constrained layout for two objectives, else tight


def _draw_front(axis, points, weights, valid, maximize, names, stl):
    """Two objectives: the members coloured by their first weight, the front joined."""
    scatter = axis.scatter(points[valid, 0], points[valid, 1], c=weights[valid, 0], cmap="viridis", s=30,
                           vmin=0.0, vmax=1.0)
    front = np.flatnonzero(valid)[pareto_front(points[valid], maximize)]
    front = front[np.argsort(points[front, 0])]
    axis.plot(points[front, 0], points[front, 1], "k--", lw=1, label="front")
    for i in np.flatnonzero(valid):
        axis.annotate(f"{weights[i, 0]:.2f}", points[i], fontsize=6, xytext=(3, 3), textcoords="offset points",
                      annotation_clip=True)
    if stl is not None:
        axis.scatter([stl[0]], [stl[1]], marker="*", s=150, c="red", label="single-task")
    axis.set_xlabel(names[0])
    axis.set_ylabel(names[1])
    axis.legend(fontsize=8)
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


def plot_metric_vs_weight(result, path: Path, split: str = "test") -> Path:
    """Each objective's metric against its own weight."""
    points = result.points(split)
    weights = np.array([m.weights for m in result.members])
    names = [n for n, _ in result.primary]
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.2), squeeze=False)
    for j, (axis, name) in enumerate(zip(axes.flat, names)):
        axis.scatter(weights[:, j], points[:, j], s=14)
        axis.set_xlabel(f"weight of {name.split('/')[0]}")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
    save_figure(fig, path)
    return path


def write_sweep_report(result, directory: Path) -> tuple[Path, str]:
    """Writes report.md/report.html and figures; returns (path, terminal table)."""
    header, rows = front_rows(result)
    stats = summary(result)
    front = plot_front(result, directory / "front.png")
    curves = plot_metric_vs_weight(result, directory / "metric_vs_weight.png")
    config = result.config
    lines = [
        f"# Sweep {config.name}: scalarization on {config.benchmark.name}",
        "",
        f"{stats['members']} members ({config.sweep.design} design), {stats['front']} on the front; "
        f"hypervolume {stats['hypervolume']:.6g} against reference {stats['reference']} (test metrics at the "
        "best validation evaluation of each member).",
        "",
        f"![front]({front.name})",
        "",
        f"![metric against weight]({curves.name})",
        "",
        markdown_table(header, rows),
        "",
    ]
    path = directory / "report.md"
    path.write_text("\n".join(lines))
    write_html(directory / "report.html", lines[0][2:], [lines[2]], header, rows, [front, curves])
    return path, format_table(header, rows) + f"\n\nhypervolume {stats['hypervolume']:.6g}; {stats['front']} of {stats['members']} members on the front"
