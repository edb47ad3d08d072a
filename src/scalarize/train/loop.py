"""The run loop, written once, and what its two step engines share.

A run trains in *segments*: from one evaluation to the next (every ``eval_every`` steps, and at
the last step). The loop (:func:`run`) drives an engine through them; two engines implement it:

* the single-model step (:class:`~scalarize.train.trainer.Trainer`): one model, any method;
* the stacked step (:class:`~scalarize.population.stacked.StackedPopulation`): P members of one
  architecture as one vmapped model, scalarization weights per member.

Both time their steps with one :class:`StepTimer` and keep what their non-finite guard found in
one :class:`GuardCounters`, on the device: on a GPU neither engine syncs the host per step; the
counters and CUDA events are read once per segment (:meth:`StepEngine.settle`).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scalarize.train.measure import step_memory


class StepEngine(Protocol):
    """What :func:`run` needs of an engine."""

    step: int
    total_steps: int
    eval_every: int

    def begin_segment(self) -> None:
        """Before a segment's first step (the samplers take the method's mixture)."""

    def train_step(self) -> Tensor:
        """One optimisation step; the detached losses (``[T]``, or ``[P, T]`` stacked)."""

    def after_step(self, losses: Tensor) -> None:
        """After each step (end-of-epoch hooks)."""

    def settle(self) -> None:
        """After a segment's last step: reads the device's counters (one sync)."""

    def diverged(self) -> bool:
        """Whether the run as a whole stopped before this evaluation (a non-finite loss)."""

    def evaluate(self, mean_losses: Tensor) -> None:
        """Evaluates into the run's records (and calls the engine's evaluation hook)."""

    def save_checkpoint(self) -> None: ...

    def ended(self) -> str | None:
        """After an evaluation: ``None`` to go on, else the status the run ends with now
        (``"stopped"``: early stopping; ``"diverged"``: a population with no member left)."""


def next_evaluation(step: int, eval_every: int, end: int) -> int:
    """The step of the next evaluation after ``step``, or ``end`` if that comes first."""
    return min(step + eval_every - step % eval_every, end)


def at_evaluation(step: int, eval_every: int, total_steps: int) -> bool:
    return step % eval_every == 0 or step == total_steps


def train_segment(engine: StepEngine, end: int, bar: tqdm[Any] | None = None) -> Tensor:
    """Trains ``engine`` to its next evaluation (or ``end``); the segment's mean losses."""
    engine.begin_segment()
    segment_end = next_evaluation(engine.step, engine.eval_every, end)
    loss_sum: Tensor | None = None
    count = 0
    while engine.step < segment_end:
        losses = engine.train_step()
        loss_sum = losses if loss_sum is None else loss_sum + losses
        count += 1
        engine.after_step(losses)
        if bar is not None:
            bar.update(1)  # pragma: no mutate (display only)
    engine.settle()
    if loss_sum is None:
        raise ValueError(f"train_segment: no step left before step {end} (at step {engine.step})")
    return loss_sum / count


def run(
    engine: StepEngine, end: int, bar: tqdm[Any] | None = None, *, segments: int | None = None, checkpoints: bool = True
) -> str:
    """Trains ``engine`` to step ``end`` (at most its total), one segment at a time (at most
    ``segments``): after each, evaluation on the cadence and a checkpoint (``checkpoints``).

    Returns ``"diverged"`` when the run stopped on a non-finite loss (or a population has no
    member left), ``"stopped"`` when early stopping ended it, ``"completed"`` at the last step,
    else ``"running"``.
    """
    end = min(end, engine.total_steps)
    done = 0
    while engine.step < end and (segments is None or done < segments):
        mean_losses = train_segment(engine, end, bar)
        done += 1
        if engine.diverged():
            return "diverged"
        if bar is not None:  # the mean (over members) of the summed task losses
            bar.set_postfix(loss=f"{float(mean_losses.sum(-1).mean()):.4g}")  # pragma: no mutate (display only)
        if at_evaluation(engine.step, engine.eval_every, engine.total_steps):
            engine.evaluate(mean_losses)
            if checkpoints:
                engine.save_checkpoint()
        ended = engine.ended()
        if ended is not None:
            return ended
    return "completed" if engine.step >= engine.total_steps else "running"


def progress_bar(enabled: bool, total: int, initial: int, label: str) -> tqdm[Any]:
    """The run's progress bar (steps), closed by the caller."""
    return tqdm(
        disable=not enabled,
        total=total,
        initial=initial,
        desc=label,
        unit="step",  # pragma: no mutate
        leave=False,
        dynamic_ncols=True,  # pragma: no mutate (the bar's display only)
    )


class StepTimer:
    """Times and measures an engine's steps, the same way in both engines.

    The first step of a run is a warm-up (lazy optimizer state, and on a GPU the CUDA context
    and kernel selection), neither timed nor measured. The second step of the run and of every
    evaluation interval (of 10 steps or more) is measured for peak memory (train/measure.py) and
    left out of the timing; the others are timed: on the CPU by the clock, on a GPU by CUDA
    events read at :meth:`settle` (no sync per step). ``charge(seconds, steps)`` and
    ``measured(peak_bytes)`` hand the figures to the run's records.
    """

    def __init__(
        self,
        device: torch.device,
        eval_every: int,
        charge: Callable[[float, int], None],
        measured: Callable[[int], None],
    ) -> None:
        self.device = device
        self.eval_every = eval_every
        self.charge = charge
        self.measured = measured
        self.events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []

    def run(self, step: int, one_step: Callable[[], Tensor]) -> Tensor:
        if step == 0:
            return one_step()
        if step == 1 or (self.eval_every >= 10 and step % self.eval_every == 1):
            losses, peak = step_memory(one_step, self.device)
            self.measured(peak)
            return losses
        if self.device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
            start.record()
            losses = one_step()
            end.record()
            self.events.append((start, end))
            return losses
        started = time.perf_counter()
        losses = one_step()
        self.charge(time.perf_counter() - started, 1)
        return losses

    def settle(self) -> None:
        """Reads the CUDA events of the steps timed since the last call (one sync)."""
        if self.events:
            torch.cuda.synchronize(self.device)
            seconds = sum(start.elapsed_time(end) for start, end in self.events) / 1000
            self.charge(seconds, len(self.events))
            self.events.clear()


@functools.lru_cache(maxsize=8)
def _unit(device: torch.device) -> Tensor:
    """The check's unscale factor, 1, made once per device (it is only read): not an allocation
    per step."""
    return torch.ones((), dtype=torch.float32, device=device)


def non_finite(tensors: list[Tensor], device: torch.device) -> Tensor:
    """A 0-d float32 tensor on ``device``, 1 if an entry of ``tensors`` is NaN or infinite:
    GradScaler's one-pass check (``_amp_foreach_non_finite_check_and_unscale_``, its unscale by
    1 leaving every value as it is), once per dtype as GradScaler calls it. No host sync."""
    found = torch.zeros((), dtype=torch.float32, device=device)  # the kernel's dtype
    one = _unit(device)
    by_dtype: dict[torch.dtype, list[Tensor]] = {}
    for tensor in tensors:
        by_dtype.setdefault(tensor.dtype, []).append(tensor)
    for group in by_dtype.values():
        torch._amp_foreach_non_finite_check_and_unscale_(group, found, one)
    return found


class GuardCounters:
    """What a run's non-finite guard found, kept on the device and read once per segment: the
    steps skipped (a gradient not finite) and the first step whose loss was not finite, for one
    model (``members=None``: 0-d tensors) or per member of a population (``[P]``)."""

    def __init__(self, device: torch.device, members: int | None = None) -> None:
        self.device = device
        self.shape = () if members is None else (members,)
        self.skipped: Tensor | None = None
        self.first_bad_step: Tensor | None = None

    def skip(self, flags: Tensor) -> None:
        """Counts the skipped steps ``flags`` marks (1/True: skipped), without a sync."""
        flags = flags.to(torch.float32)
        self.skipped = flags if self.skipped is None else self.skipped + flags

    def losses(self, step: int, finite: Tensor) -> None:
        """Keeps ``step`` as the first non-finite step where ``finite`` is False and none was kept."""
        if self.first_bad_step is None:
            self.first_bad_step = torch.full(self.shape, -1, dtype=torch.long, device=self.device)
        step_tensor = torch.full(self.shape, step, dtype=torch.long, device=self.device)
        self.first_bad_step = torch.where(~finite & (self.first_bad_step < 0), step_tensor, self.first_bad_step)

    def take_skipped(self) -> list[int]:
        """The skipped-step counts since the last call (one sync; then reset)."""
        if self.skipped is None:
            return [0] * (self.shape[0] if self.shape else 1)
        counts = [int(c) for c in self.skipped.reshape(-1).tolist()]
        self.skipped = None
        return counts

    def take_first_bad(self) -> list[int | None]:
        """The first non-finite step of the model (or of each member) since the last call, None
        where there was none (one sync; then reset)."""
        if self.first_bad_step is None:
            return [None] * (self.shape[0] if self.shape else 1)
        steps = [s if s >= 0 else None for s in self.first_bad_step.reshape(-1).tolist()]
        self.first_bad_step = None
        return steps
