"""The report of ``scalarize pbt replay``: the best member's schedule retrained from scratch
against uniform scalarization with the same seeds, budget, model and learning-rate schedule.

* a table: PBT's best member as the search reported it (selected on validation: optimistic),
  then the replay and uniform scalarization, mean ± std over the seeds, and their paired
  difference (replay minus uniform, seed by seed);
* a figure: per objective, every seed's test metric for the replay and for uniform.

Writes ``replay.md``, ``replay.html`` and ``replay.png`` in the experiment directory.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from scalarize.files import write_text  # noqa: E402
from scalarize.report.describe import method_text, settings_text  # noqa: E402
from scalarize.report.experiment import format_table, markdown_table  # noqa: E402
from scalarize.report.figures import LEGEND_SIZE, save_figure  # noqa: E402
from scalarize.report.html import write_html  # noqa: E402
from scalarize.search.fitness import mean_primary  # noqa: E402


def _values(results: dict, metric: str, seeds) -> list[float]:
    return [results[s].test.get(metric, math.nan) if results[s].status == "completed" else math.nan for s in seeds]


def _mean_std(values: list[float], signed: bool = False) -> str:
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return "—"
    std = float(np.std(finite, ddof=1)) if len(finite) > 1 else 0.0
    return f"{float(np.mean(finite)):{'+' if signed else ''}.4f} ± {std:.4f}"


def replay_rows(result) -> tuple[list[str], list[list[str]]]:
    names = [name for name, _ in result.primary]
    fitness = mean_primary(result.primary)
    header = ["run", "seeds", *(f"{n} (test)" for n in names), "fitness (val)"]
    best = result.pbt_best
    rows = [
        [
            f"PBT best ({result.best}, selected on validation)",
            "1",
            *(f"{best['test'][n]:.4f}" if n in best.get("test", {}) else "—" for n in names),
            f"{fitness(best['val']):.4f}" if best.get("val") else "—",
        ]
    ]
    for label, runs in (("replay of its schedule", result.replay), ("uniform scalarization", result.uniform)):
        done = [s for s in result.seeds if runs[s].status == "completed"]
        rows.append(
            [
                label,
                f"{len(done)}/{len(result.seeds)}",
                *(_mean_std(_values(runs, n, result.seeds)) for n in names),
                _mean_std([fitness(runs[s].val) for s in done]),
            ]
        )
    paired = [
        [r - u for r, u in zip(_values(result.replay, n, result.seeds), _values(result.uniform, n, result.seeds))]
        for n in names
    ]
    rows.append(
        [
            "replay − uniform (paired by seed)",
            str(len(result.seeds)),
            *(_mean_std(d, signed=True) for d in paired),
            _mean_std(
                [
                    fitness(result.replay[s].val) - fitness(result.uniform[s].val)
                    for s in result.seeds
                    if result.replay[s].status == result.uniform[s].status == "completed"
                ],
                signed=True,
            ),
        ]
    )
    return header, rows


def plot_replay(result, path: Path) -> Path:
    """Per objective, each seed's test metric: replay and uniform side by side, seeds joined."""
    names = [name for name, _ in result.primary]
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names) + 0.6, 3.6), squeeze=False)
    for axis, name in zip(axes[0], names):
        replay, uniform = _values(result.replay, name, result.seeds), _values(result.uniform, name, result.seeds)
        for _seed, r, u in zip(result.seeds, replay, uniform):
            axis.plot([0, 1], [u, r], color="0.7", lw=0.8, zorder=1)
        axis.scatter(np.zeros(len(uniform)), uniform, color="C0", s=30, zorder=2, label="uniform")
        axis.scatter(np.ones(len(replay)), replay, color="C1", s=30, zorder=2, label="replay")
        axis.set_xticks([0, 1], ["uniform", "replay"])
        axis.set_xlim(-0.5, 1.5)
        axis.set_ylabel(f"{name} (test)")
        axis.grid(alpha=0.3, axis="y")
    axes[0][0].legend(fontsize=LEGEND_SIZE)
    fig.suptitle(f"seeds {', '.join(map(str, result.seeds))}: each line joins one seed's two runs")
    return save_figure(fig, path)


def write_replay_report(result) -> tuple[Path, str]:
    """Writes replay.md/replay.html and the figure; returns (path, terminal text)."""
    directory = Path(result.directory)
    header, rows = replay_rows(result)
    figure = plot_replay(result, directory / "replay.png")
    population = f"the {result.population} members" if result.population else "the population"
    paragraphs = [
        f"The weight schedule of {result.best} ({method_text(result.config)}) retrained from scratch, and uniform "
        f"scalarization, each with seeds {', '.join(map(str, result.seeds))}. Settings of both: "
        f"{settings_text(result.config, seed=False)}",
        f"What is selected on what: PBT chose {result.best} as the best of {population} on validation fitness, "
        "so its row is optimistic. The schedule itself was found on validation, but the replay and uniform are "
        "trained alike and neither is selected again: their paired difference (seed by seed) is the fair "
        "comparison. Test metrics at each run's best validation evaluation.",
    ]
    lines = [
        f"# Replay of PBT {result.search}",
        "",
        *(line for p in paragraphs for line in (p, "")),
        markdown_table(header, rows),
        "",
        f"![replay against uniform]({figure.name})",
        "",
    ]
    path = directory / "replay.md"
    write_text(path, "\n".join(lines))
    write_html(directory / "replay.html", lines[0][2:], paragraphs, header, rows, [figure])
    return path, format_table(header, rows)
