"""What every report figure shares: readable fonts, labels that never print over each other, log
axes with plain ticks, colours that stay distinct past ten series, and the final write."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FixedLocator, NullFormatter, NullLocator, ScalarFormatter  # noqa: E402

from scalarize.files import replaced  # noqa: E402

#: Font sizes of the reports (points): labels on points, legends (matplotlib's default elsewhere: 10).
LABEL_SIZE = 9
LEGEND_SIZE = 9


def save_figure(fig, path: Path) -> Path:
    """Writes ``fig`` to ``path`` (110 dpi) and closes it; ``tight_layout`` unless the figure
    was made with a layout engine of its own (e.g. ``layout="constrained"``)."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with replaced(path, "wb") as handle:  # never through a planted link (scalarize.files)
        fig.savefig(handle, dpi=110, format=Path(path).suffix[1:] or "png")
    plt.close(fig)
    return path


def styles(count: int) -> list[dict]:
    """``count`` distinct (colour, marker, line style) combinations: ten colours first, then the
    same colours with other markers and dashes, so that no two series look alike."""
    colours = [f"C{i}" for i in range(10)]
    markers = ["o", "s", "^", "D", "v", "P", "X"]
    dashes = ["-", "--", ":", "-."]
    combos = []
    for marker, dash in zip(markers, itertools.cycle(dashes)):
        for colour in colours:
            combos.append({"color": colour, "marker": marker, "linestyle": dash})
        if len(combos) >= count:
            break
    return combos[:count]


def plain_log_axis(axis, which: str, ticks: Sequence[float]) -> None:
    """A log-scaled ``which`` axis ('x' or 'y') with a labelled tick at each of ``ticks`` in
    plain numbers and no minor labels (matplotlib's defaults print ``2×10^0``-style labels
    over each other on short ranges)."""
    target = axis.xaxis if which == "x" else axis.yaxis
    (axis.set_xscale if which == "x" else axis.set_yscale)("log")
    target.set_major_locator(FixedLocator(sorted(set(ticks))))
    formatter = ScalarFormatter()
    formatter.set_scientific(False)
    target.set_major_formatter(formatter)
    target.set_minor_locator(NullLocator())
    target.set_minor_formatter(NullFormatter())


def one_two_five(values: Sequence[float]) -> list[float]:
    """The 1-2-5 sequence (…, 0.5, 1, 2, 5, 10, …) covering the positive ``values``: plain
    ticks for a log axis."""
    positive = [v for v in values if v is not None and np.isfinite(v) and v > 0]
    if not positive:
        return [1.0]
    low, high = np.floor(np.log10(min(positive))), np.ceil(np.log10(max(positive)))
    ticks = [m * 10.0**e for e in range(int(low), int(high) + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if min(positive) / 1.5 <= t <= max(positive) * 1.5]
    return inside or [min(positive)]


def log_scale_if_wide(axis, which: str, values: Sequence[float]) -> None:
    """Log scale when the positive ``values`` span at least a decade, else linear (a log axis
    over a narrow range only shows crowded minor labels)."""
    positive = np.asarray([v for v in values if v is not None and np.isfinite(v) and v > 0])
    if len(positive) and positive.max() / positive.min() >= 10:
        (axis.set_xscale if which == "x" else axis.set_yscale)("log")


#: Offsets (points) tried in turn for a point's label: up-right, down-right, up-left, down-left.
OFFSETS = ((5, 4), (5, -12), (-5, 4), (-5, -12))


def place_labels(
    fig,
    axis,
    xy: np.ndarray,
    texts: Sequence[str],
    order: Sequence[int] | None = None,
    fontsize: float = LABEL_SIZE,
    redraw: bool = True,
) -> list:
    """Labels points ``xy`` of ``axis`` with ``texts``, in ``order`` (most important first),
    each at the first offset where it overlaps neither a label already placed nor a marker; a
    label that fits nowhere is left out. Call after everything else is drawn (the layout is
    fixed first; ``redraw=False`` when nothing but labels changed since the last call). Returns
    the placed annotations."""
    if redraw:
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pixel = axis.transData.transform(xy) if len(xy) else np.zeros((0, 2))
    inside = axis.get_window_extent(renderer)
    radius = 4 * fig.dpi / 72
    markers = [matplotlib.transforms.Bbox.from_bounds(x - radius, y - radius, 2 * radius, 2 * radius) for x, y in pixel]
    placed_boxes, placed = [], []
    for i in order if order is not None else range(len(texts)):
        if not inside.contains(*pixel[i]):
            continue
        for dx, dy in OFFSETS:
            label = axis.annotate(
                texts[i],
                xy[i],
                xytext=(dx, dy),
                textcoords="offset points",
                fontsize=fontsize,
                ha="left" if dx > 0 else "right",
                annotation_clip=True,
            )
            label.set_in_layout(False)
            box = label.get_window_extent(renderer)
            others = [m for j, m in enumerate(markers) if j != i]
            clear = (
                inside.containsx(box.x0)
                and inside.containsx(box.x1)
                and inside.containsy(box.y0)
                and inside.containsy(box.y1)
            )
            if clear and not any(box.overlaps(b) for b in placed_boxes + others):
                placed_boxes.append(box)
                placed.append(label)
                break
            label.remove()
    return placed
