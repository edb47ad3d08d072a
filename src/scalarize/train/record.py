"""The record of one run, written the same way by every engine (a single run, a member of a
stacked population, a Ray trial).

A :class:`RunRecord` takes each evaluation (the training losses since the last one, validation
and test metrics, the weights applied) and keeps the history, the reported evaluation, the steps
skipped for non-finite gradients and the costs (seconds per step, peak step memory). It writes the
same rows to the store whichever engine feeds it, and its :meth:`state_dict` goes into the
engine's checkpoint.

Which evaluation a run reports (``selection``, the same for every engine and command):

* ``objective`` (default): the one with the lowest value of the run's **own** objective on the
  validation split, ``Σ_i w_i L_i^val`` with the run's weights ``w`` (normalised; in MDL the
  sampling ratios weigh the domains' losses; uniform for methods that set their own weights). A
  member of a sweep is thus judged by what it was trained to minimise, not by the unweighted mean
  of its metrics (which would pull every front towards uniform weights);
* ``last``: the last evaluation (PBT members, whose weights change along training, report this).

The engine saves the model of the reported evaluation (``runs/<name>/model.pt``) whenever
:meth:`RunRecord.evaluated` returns ``True``, so the saved model is the one whose metrics are
reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from scalarize.errors import ScalarizeError
from scalarize.store.database import Store


class DivergedError(ScalarizeError):
    """Training produced nothing to report: every run of a search diverged (one line for users)."""


@dataclass
class RunResult:
    """What a finished (or diverged) run reports: metrics at the best validation evaluation."""

    name: str
    status: str
    objectives: list[str]
    best_evaluation: int
    best_step: int
    val: dict[str, float]
    test: dict[str, float]
    steps: int
    seconds: float = 0.0
    message: str = ""
    history: list[dict[str, float]] = field(default_factory=list)
    #: optimizer steps skipped because a gradient was not finite (training went on)
    skipped_steps: int = 0
    #: mean wall time of a training step (forward, method, optimizer), seconds
    seconds_per_step: float | None = None
    #: peak tensor memory of a training step above its start, bytes (see train/measure.py)
    step_memory: int | None = None


SELECTIONS = ("objective", "last")


class _HasToList(Protocol):
    def tolist(self) -> Any: ...


#: Per-objective weights: a sequence of numbers, or a tensor or array (read with ``tolist``).
Weights = Sequence[float] | _HasToList


def selection_score(metrics: dict[str, float], primary: Sequence[tuple[str, bool]]) -> float:
    """Mean of the objectives' primary metrics, signed so that higher is better (ranks a
    comparison's learning rates)."""
    values = [metrics[key] if up else -metrics[key] for key, up in primary]
    return sum(values) / len(values)


def objective_score(val: dict[str, float], objectives: Sequence[str], weights: Weights | None = None) -> float:
    """``-Σ_i w_i L_i^val`` (higher is better) with ``w`` normalised, uniform when ``None``;
    ``-inf`` when a loss is missing or not finite."""
    w = _as_list(weights) if weights is not None else [1.0] * len(objectives)
    total = sum(w)
    losses = [val.get(f"{o}/loss", math.nan) for o in objectives]
    value = sum(wi / total * li for wi, li in zip(w, losses) if wi)
    return -value if math.isfinite(value) else -math.inf


def _as_list(vector: Weights) -> list[float]:
    if hasattr(vector, "tolist"):
        values: list[float] = vector.tolist()
        return values
    return list(vector)


class RunRecord:
    """History, best evaluation, skipped steps and costs of one run (see the module docstring)."""

    def __init__(
        self,
        name: str,
        objectives: Sequence[str],
        primary: Sequence[tuple[str, bool]],
        store: Store | None = None,
        selection: str = "objective",
        patience: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        if selection not in SELECTIONS:
            raise ValueError(f"selection: must be one of {', '.join(SELECTIONS)}, got {selection!r}")
        self.name = name
        self.objectives = list(objectives)
        self.primary = list(primary)
        self.store = store
        self.selection = selection
        self.evaluation = 0
        self.best: dict[str, Any] = {"score": -math.inf, "evaluation": -1, "step": 0, "val": {}, "test": {}}
        self.history: list[dict[str, float]] = []
        self.weight_log: list[tuple[int, Weights]] = []
        self.skipped_steps = 0
        self.skipped_since_evaluation = 0
        self.train_seconds = 0.0
        self.timed_steps = 0
        self.step_memory: int | None = None
        self.message = ""
        #: early stopping: evaluations in a row whose objective did not beat the best by min_delta
        self.patience, self.min_delta = patience, min_delta
        self.stale = 0
        self.patience_best = -math.inf

    # -- along training ------------------------------------------------------------------------
    def log_weights(self, step: int, weights: Weights) -> None:
        """The per-objective weights applied at ``step`` (a sequence or a tensor, read only at
        the next evaluation: no host sync per step)."""
        self.weight_log.append((step, weights))

    def skip(self) -> None:
        """An optimizer step was skipped: a gradient was not finite."""
        self.skipped_steps += 1
        self.skipped_since_evaluation += 1
        self.message = f"{self.skipped_steps} step(s) skipped: non-finite gradients"

    def time_steps(self, seconds: float, steps: int = 1) -> None:
        self.train_seconds += seconds
        self.timed_steps += steps

    def measure_memory(self, peak: int) -> None:
        self.step_memory = peak if self.step_memory is None else max(self.step_memory, peak)

    def costs(self, steps: int) -> dict[str, float]:
        """What the run has cost so far: skipped steps, steps, seconds per step, peak step memory."""
        costs = {"skipped_steps": float(self.skipped_steps), "steps": float(steps)}
        if self.timed_steps:
            costs["seconds_per_step"] = self.train_seconds / self.timed_steps
        if self.step_memory is not None:
            costs["step_memory_bytes"] = float(self.step_memory)
        return costs

    # -- evaluations ---------------------------------------------------------------------------
    def evaluated(
        self,
        step: int,
        train_losses: Sequence[float],
        val: dict[str, float],
        test: dict[str, float],
        weights: Weights | None = None,
    ) -> bool:
        """One evaluation after ``step`` steps (``weights``: the run's objective weights, see the
        module docstring): history, reported evaluation, store rows. Returns whether this
        evaluation is now the reported one (the engine then saves the model)."""
        train = {f"{o}/loss": float(v) for o, v in zip(self.objectives, train_losses)}
        train["skipped_steps"] = float(self.skipped_since_evaluation)
        self.skipped_since_evaluation = 0
        if self.selection == "last":
            score = float(self.evaluation)
        else:
            score = objective_score(val, self.objectives, weights)
        improved: bool = score > self.best["score"] or self.best["evaluation"] < 0
        self._count_patience(objective_score(val, self.objectives, weights))
        if improved:
            self.best = {"score": score, "evaluation": self.evaluation, "step": step, "val": val, "test": test}
        self.history.append({"step": step, **{f"val/{k}": v for k, v in val.items()}})
        if self.store is not None:
            weight_rows = [
                (at, objective, float(value))
                for at, vector in self.weight_log
                for objective, value in zip(self.objectives, _as_list(vector))
            ]
            self.store.record_evaluation(
                self.name, self.evaluation, step, {"train": train, "val": val, "test": test}, weight_rows
            )
            self.store.record_costs(self.name, self.costs(step))
        self.weight_log.clear()
        self.evaluation += 1
        return improved

    def _count_patience(self, score: float) -> None:
        """Early stopping's count: an evaluation whose objective (on validation, whatever the
        selection) beats the best so far by more than ``min_delta`` resets it; any other adds one."""
        if score > self.patience_best + self.min_delta:
            self.patience_best, self.stale = score, 0
        else:
            self.stale += 1

    @property
    def patience_spent(self) -> bool:
        """Whether early stopping ends the run: ``patience`` evaluations in a row without improvement."""
        return self.patience is not None and self.stale >= self.patience

    def finish(self, status: str, steps: int, seconds: float = 0.0, message: str | None = None) -> RunResult:
        """The run's result; with a store, its final metrics and status are written."""
        if message is not None:
            self.message = message
        result = self.result(status, steps, seconds)
        if self.store is not None:
            self.store.record_final(self.name, {"val": result.val, "test": result.test})
            self.store.finish_run(self.name, status, steps, self.message)
        return result

    def result(self, status: str, steps: int, seconds: float = 0.0) -> RunResult:
        return RunResult(
            name=self.name,
            status=status,
            objectives=self.objectives,
            best_evaluation=self.best["evaluation"],
            best_step=self.best["step"],
            val=self.best["val"],
            test=self.best["test"],
            steps=steps,
            seconds=seconds,
            message=self.message,
            history=self.history,
            skipped_steps=self.skipped_steps,
            seconds_per_step=self.train_seconds / self.timed_steps if self.timed_steps else None,
            step_memory=self.step_memory,
        )

    # -- state ---------------------------------------------------------------------------------
    _STATE = (
        "evaluation",
        "best",
        "history",
        "weight_log",
        "skipped_steps",
        "skipped_since_evaluation",
        "train_seconds",
        "timed_steps",
        "step_memory",
        "message",
    )

    def state_dict(self) -> dict[str, Any]:
        return {
            **{key: getattr(self, key) for key in self._STATE},
            "stale": self.stale,
            "patience_best": self.patience_best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])
        self.stale, self.patience_best = state.get("stale", 0), state.get("patience_best", -math.inf)
