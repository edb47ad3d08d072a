"""What every report figure ends with: laid out, written as a PNG beside the report, closed."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Writes ``fig`` to ``path`` (110 dpi) and closes it; ``tight_layout`` unless the figure
    was made with a layout engine of its own (e.g. ``layout="constrained"``)."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
