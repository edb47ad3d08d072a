"""Frozen weights: fixed scalarization weights taken from another method's weight trajectory.

Gama & Grassi Jr, "Uniform Loss vs. Specialized Optimization: A Comparative Analysis in
Multi-Task Learning", arXiv:2505.10347, 2025: fixed weights taken from the trajectory of the
weights an adaptive method (GradNorm, DWA, FAMO, MGDA...) applied over a run — their mean, an
exponential moving average (β = 0.9) or the last value — and used as *fixed* scalarization
weights for a new run are competitive with the adaptive methods (within 0.4 Δm points of the
best in the paper's comparisons). A baseline that separates what an adaptive
method finds (its average weights) from how it moves them.

The trajectory is a list of ``[step, weights]`` rows (weights in task order), or the weights a
run recorded in an experiment directory's database (``scalarize.db``, table ``weights``: run,
step, objective, value; pass the directory or the file as ``source`` and the run's name as
``run``; objectives are matched to tasks by name). The rows are sorted by step and summarised:

    mean:  w = (1/N) Σ_k w⁽ᵏ⁾
    ema:   e ← β e + (1 − β) w⁽ᵏ⁾ over the rows in order, starting from e = w⁽¹⁾; w = e
    last:  w = w⁽ᴺ⁾

then normalised to sum to one (methods record weights on different scales — DWA's and GradNorm's
sum to T, Nash-MTL's are unnormalised — so only their proportions carry over) and applied as
:class:`~scalarize.methods.scalarization.Scalarization` applies fixed weights (in MDL, as sampling
ratios).

Hyperparameters: ``source`` (required), ``run`` (with a database), ``reduce`` ("mean" | "ema" |
"last", default "mean"), ``beta`` in [0, 1) (EMA factor, default 0.9 as in that study),
``start_step`` (rows before it are ignored, default 0).
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scalarize.methods._common import check_choice, check_int, check_real
from scalarize.methods.base import MethodError, Setting
from scalarize.methods.registry import register
from scalarize.methods.scalarization import Scalarization

DATABASE_NAME = "scalarize.db"  # the experiment database's file name (scalarize.store)
REDUCTIONS = ("mean", "ema", "last")


@register
class FrozenWeights(Scalarization):
    """Scalarization with weights summarised from a recorded weight trajectory."""

    name = "frozen"
    promises = frozenset()  # its weights are given, by position: no symmetry

    def __init__(
        self,
        source: str | Path | Sequence[Sequence[Any]],
        run: str | None = None,
        reduce: str = "mean",
        beta: float = 0.9,
        start_step: int = 0,
    ) -> None:
        super().__init__(None)
        self.reduce = check_choice(self.name, "reduce", reduce, REDUCTIONS)
        self.beta = check_real(self.name, "beta", beta, low=0, high=1, high_open=True)
        self.start_step = check_int(self.name, "start_step", start_step, low=0)
        self._objectives: list[str] | None  # the recorded objectives (a database source), else None
        if isinstance(source, (str, Path)):
            self._objectives, rows = _read_database(Path(source), run)
        else:
            if run is not None:
                raise MethodError("method frozen: run names a run of a database source; source is a list of rows")
            self._objectives, rows = None, _check_rows(source)
        rows = sorted((step, values) for step, values in rows if step >= self.start_step)
        if not rows:
            raise MethodError(f"method frozen: source has no weights at or after step {self.start_step}")
        self.trajectory = rows

    def summary(self) -> list[float]:
        """The trajectory summarised by ``reduce`` (before normalisation), in source order."""
        values = [v for _, v in self.trajectory]
        if self.reduce == "last":
            return list(values[-1])
        if self.reduce == "mean":
            return [sum(column) / len(values) for column in zip(*values)]
        ema = list(values[0])
        for row in values[1:]:
            ema = [self.beta * e + (1 - self.beta) * x for e, x in zip(ema, row)]
        return ema

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        summary = self.summary()
        if self._objectives is not None:
            missing = [t for t in task_names if t not in self._objectives]
            if missing:
                raise MethodError(
                    f"method frozen: the run's weights have no objective {missing[0]!r}; "
                    f"recorded: {', '.join(self._objectives)}"
                )
            summary = [summary[self._objectives.index(t)] for t in task_names]
        elif len(summary) != len(task_names):
            raise MethodError(
                f"method frozen: source rows have {len(summary)} weights, expected {len(task_names)} (one per task)"
            )
        if any(w < 0 for w in summary) or sum(summary) <= 0:
            raise MethodError(f"method frozen: the summarised weights must be >= 0 and not all 0, got {summary}")
        self._requested = summary
        super().setup(task_names, setting)


def _check_rows(source: Any) -> list[tuple[int, list[float]]]:
    """``[[step, [w_1, ..., w_T]], ...]`` with finite weights of one length."""
    bad = "method frozen: source must be a list of [step, [weights...]] rows or a path to an experiment directory"
    if not isinstance(source, Sequence) or isinstance(source, (str, bytes)) or not source:
        raise MethodError(bad)
    rows = []
    for row in source:
        if not isinstance(row, Sequence) or len(row) != 2 or not isinstance(row[1], Sequence):
            raise MethodError(f"{bad}; got the row {row!r}")
        step, weights = row
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise MethodError(f"method frozen: a row's step must be an integer >= 0, got {step!r}")
        try:
            values = [float(w) for w in weights]
        except (TypeError, ValueError):
            raise MethodError(f"method frozen: weights must be numbers, got {weights!r}") from None
        if not all(math.isfinite(v) for v in values):
            raise MethodError(f"method frozen: weights must be finite, got {values}")
        rows.append((step, values))
    if len({len(v) for _, v in rows}) != 1:
        raise MethodError("method frozen: every row must have the same number of weights")
    return rows


def _read_database(path: Path, run: str | None) -> tuple[list[str], list[tuple[int, list[float]]]]:
    """The recorded weights of ``run`` in an experiment database (read, never written)."""
    database = path / DATABASE_NAME if path.is_dir() else path
    if not database.is_file():
        raise MethodError(
            f"method frozen: source {str(path)!r}: no {DATABASE_NAME} there (not an experiment directory)"
        )
    if not isinstance(run, str) or not run:
        raise MethodError("method frozen: run must name the run whose weights to take (source is a database)")
    try:
        # a plain connection (only SELECTs follow): a read-only one may fail to open a WAL database
        # whose -shm file is gone, as after the writer closed it
        connection = sqlite3.connect(database, timeout=60)
        try:
            records = connection.execute(
                "SELECT step, objective, value FROM weights WHERE run = ? ORDER BY step", (run,)
            ).fetchall()
            runs = [r[0] for r in connection.execute("SELECT DISTINCT run FROM weights ORDER BY run")]
        finally:
            connection.close()
    except sqlite3.Error as error:
        raise MethodError(f"method frozen: cannot read weights from {str(database)!r}: {error}") from None
    if not records:
        known = ", ".join(runs) if runs else "none"
        raise MethodError(
            f"method frozen: run {run!r} recorded no weights in {str(database)!r}; runs with weights: {known}"
        )
    objectives: list[str] = []
    by_step: dict[int, dict[str, float]] = {}
    for step, objective, value in records:
        if objective not in objectives:
            objectives.append(objective)
        by_step.setdefault(int(step), {})[objective] = float("nan") if value is None else float(value)
    rows = []
    for step, values in sorted(by_step.items()):
        if len(values) != len(objectives) or not all(math.isfinite(v) for v in values.values()):
            continue  # an incomplete or non-finite record (e.g. a skipped step): left out
        rows.append((step, [values[o] for o in objectives]))
    if not rows:
        raise MethodError(f"method frozen: run {run!r} has no complete finite weight records in {str(database)!r}")
    return objectives, rows
