"""Any scalarize method inside a Lightning ``Trainer``: :class:`ScalarizeModule`.

Subclass :class:`ScalarizeModule` instead of ``LightningModule``, pass it the method and the task
names, and implement :meth:`ScalarizeModule.task_losses` (``batch`` to ``{task: loss}``, or
``{"losses": {task: loss}, "features": z}`` with ``z`` the shared representation the heads read)
and ``configure_optimizers`` over ``self.parameters()``. The module trains under manual
optimization; each step is the trainer's (:meth:`scalarize.train.trainer.Trainer._step`):

1. ``method.draw_preference()`` into ``set_preference`` (methods that declare ``PREFERENCE_INPUT``);
2. the losses of the batch, then ``method.backward(StepContext(...))`` instead of
   ``loss.backward()``, then clipping of the model's gradients (``max_grad_norm``);
3. the **non-finite guard**: a step whose gradients are not all finite is not applied (no
   ``optimizer.step()``, no ``after_step``) and is counted in :attr:`ScalarizeModule.skipped_steps`;
   a non-finite loss also stops the fit (``diverged_at``);
4. ``optimizer.step()``, then ``method.after_step`` (``AFTER_STEP``: FAMO, ...), whose
   ``recompute_losses`` calls ``task_losses`` again on the same batch;
5. the step-interval schedulers, and the method's weights logged as ``weights/<task>``.

Each of the method's ``needs`` is met or refused in one line at ``on_fit_start``:

* ``LOSSES``: always;
* ``SHARED_GRADIENTS`` / ``FEATURE_GRADIENTS``: the module defines ``shared_parameters()`` and
  ``task_parameters()`` (per task, in task order, or ``{task: parameters}``), and, for the
  representation (MGDA-UB, ``gradients="representation"``), ``task_losses`` returns ``features``;
  a loss-space method without them sees every model parameter as shared;
* ``OWN_OPTIMIZER`` (MTAdam): ``configure_optimizers`` returns :meth:`ScalarizeModule.method_optimizer`;
* ``AFTER_STEP``: after ``optimizer.step()``; ``end_epoch``: at the end of every epoch that ran
  through its whole loader, with the epoch's mean losses;
* ``PREFERENCE_INPUT`` (COSMOS): the module defines ``set_preference(preference)``;
* ``INDEPENDENT_BATCHES`` (SDMGrad, MoDo): not drawn; they fall back to the step's own batch;
* MDL-only methods (DoReMi, Aioli: they set a sampler's domain mixture) are refused: the
  Lightning loader draws the batches.

One optimizer, one device (no DDP) and no fp16 loss scaling (``16-mixed``: use ``bf16-mixed``
or ``32``); Lightning's ``gradient_clip_val`` and ``accumulate_grad_batches`` are refused by
Lightning itself under manual optimization (use ``max_grad_norm``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

import torch
from torch import Tensor, nn

try:
    import lightning.pytorch as pl
    from lightning.pytorch.core.optimizer import LightningOptimizer
except ImportError as error:  # pragma: no cover - the optional extra
    raise ImportError("scalarize.integrations.lightning needs Lightning: pip install 'scalarize[lightning]'") from error

from scalarize.errors import ScalarizeError
from scalarize.methods.base import (
    AFTER_STEP,
    FEATURE_GRADIENTS,
    OWN_OPTIMIZER,
    PREFERENCE_INPUT,
    SHARED_GRADIENTS,
    Method,
)
from scalarize.methods.context import StepContext
from scalarize.train.loop import non_finite
from scalarize.train.optim import clip_gradients

__all__ = ["IntegrationError", "ScalarizeModule"]


class IntegrationError(ScalarizeError):
    """A module, method or Lightning ``Trainer`` that cannot train together (one line)."""


class ScalarizeModule(pl.LightningModule):
    """A ``LightningModule`` whose steps are a scalarize method's (see the module docstring).

    Args:
        method: any scalarize method (``scalarize.methods.build_method``); it becomes the
            submodule ``method``, so its parameters (UW's log-variances) are in
            ``self.parameters()`` and its state in the checkpoint.
        tasks: the task names, in the order of the method's weights.
        gradient_engine: how per-task gradients are computed (``auto``, ``loop``, ``batched``).
        max_grad_norm: clips the model's gradients to this 2-norm after the method (``None``: no).
    """

    def __init__(
        self, method: Method, tasks: Sequence[str], *, gradient_engine: str = "auto", max_grad_norm: float | None = None
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.task_names = list(tasks)
        _set_up(method, self.task_names)
        self.method = method
        self.gradient_engine = gradient_engine
        self.max_grad_norm = max_grad_norm
        #: Steps not applied because a gradient was not finite.
        self.skipped_steps = 0
        #: The step whose loss was not finite (the fit then stopped), else ``None``.
        self.diverged_at: int | None = None
        self._method_optimizer: torch.optim.Optimizer | None = None
        self._epoch_loss_sum: Tensor | None = None
        self._epoch_batches = 0

    # -- what a subclass writes ------------------------------------------------------------------
    def task_losses(self, batch: Any) -> Mapping[str, Any]:
        """``{task: scalar loss}`` of ``batch``, or ``{"losses": {task: loss}, "features": z}``."""
        raise NotImplementedError(f"{type(self).__name__} implements no task_losses(batch)")

    def method_optimizer(self, lr: float) -> torch.optim.Optimizer:
        """The method's own optimizer over every trainable parameter (``OWN_OPTIMIZER``, e.g.
        MTAdam): what ``configure_optimizers`` returns for such a method."""
        self._method_optimizer = self.method.build_optimizer(self._trainable(), lr)
        return self._method_optimizer

    # -- checks before the first step ------------------------------------------------------------
    def on_fit_start(self) -> None:
        """Refuses, in one line, a trainer, module or optimizer that cannot meet the method's needs."""
        self._check_trainer()
        self._check_module()
        self._check_optimizer()

    def _check_trainer(self) -> None:
        if self.trainer.world_size > 1:
            raise IntegrationError(
                "ScalarizeModule trains on one device: a method's per-task gradients are not "
                "reduced across Lightning's ranks (use scalarize's own data-parallel engine)"
            )
        if str(self.trainer.precision) in ("16", "16-mixed"):
            raise IntegrationError(
                "ScalarizeModule: precision 16-mixed needs a loss scale the method's backward "
                "does not get; use bf16-mixed or 32"
            )

    def _check_module(self) -> None:
        name = self.method.name or type(self.method).__name__
        if self.method.needs & {SHARED_GRADIENTS, FEATURE_GRADIENTS} and not self._has_groups():
            raise IntegrationError(
                f"method {name} takes per-task gradients: define shared_parameters() and "
                f"task_parameters() on {type(self).__name__}"
            )
        if PREFERENCE_INPUT in self.method.needs and not callable(getattr(self, "set_preference", None)):
            raise IntegrationError(
                f"method {name} feeds the model a preference: define set_preference(preference) "
                f"on {type(self).__name__}"
            )

    def _check_optimizer(self) -> None:
        optimizers = self.trainer.optimizers
        if len(optimizers) != 1:
            raise IntegrationError(f"ScalarizeModule takes one optimizer, configure_optimizers gave {len(optimizers)}")
        name = self.method.name or type(self.method).__name__
        if OWN_OPTIMIZER in self.method.needs and optimizers[0] is not self._method_optimizer:
            raise IntegrationError(
                f"method {name} brings its optimizer: return self.method_optimizer(lr) from configure_optimizers"
            )
        held = {id(p) for group in optimizers[0].param_groups for p in group["params"]}
        if any(p.requires_grad and id(p) not in held for p in self.method.parameters()):
            raise IntegrationError(
                f"method {name} has parameters the optimizer does not hold: build it over self.parameters()"
            )

    # -- one step ----------------------------------------------------------------------------------
    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        """One step of the method (see the module docstring); returns the detached ``[T]`` losses."""
        if PREFERENCE_INPUT in self.method.needs:
            self._hook("set_preference")(self.method.draw_preference())
        losses, features = self._losses_of(batch)
        context = self._context(losses, features, batch)
        optimizer = cast(LightningOptimizer, self.optimizers())
        optimizer.zero_grad(set_to_none=True)
        self.method.backward(context)
        clip_gradients(self._model_parameters(), self.max_grad_norm)
        self._guarded_step(optimizer, context)
        self._step_schedulers("step")
        self._end_of_batch(context.losses.detach())
        return context.losses.detach()

    def _losses_of(self, batch: Any) -> tuple[Tensor, Tensor | None]:
        """The ``[T]`` losses (a ``torch.stack`` in task order) and features of ``batch``."""
        out = self.task_losses(batch)
        if not isinstance(out, Mapping):
            raise IntegrationError(f"task_losses must return {{task: loss}}, got {type(out).__name__}")
        losses, features = (
            (out["losses"], out.get("features")) if isinstance(out.get("losses"), Mapping) else (out, None)
        )
        if set(losses) != set(self.task_names):
            raise IntegrationError(f"task_losses returned losses for {sorted(losses)}; the tasks are {self.task_names}")
        for task in self.task_names:
            if not isinstance(losses[task], Tensor) or losses[task].numel() != 1:
                raise IntegrationError(f"task_losses: the loss of task {task!r} must be a scalar tensor")
        return torch.stack([losses[t].reshape(()) for t in self.task_names]), features

    def _context(self, losses: Tensor, features: Tensor | None, batch: Any) -> StepContext:
        if features is None and self._on_representation():
            raise IntegrationError(
                f"method {self.method.name or type(self.method).__name__} takes gradients on the "
                'shared representation: return {"losses": ..., "features": z} from task_losses'
            )
        shared, own = self._parameter_groups()

        def recompute() -> Tensor:
            return self._losses_of(batch)[0]

        return StepContext(
            losses,
            features=features,
            shared_params=shared,
            task_params=own,
            recompute_losses=recompute,
            step=self._steps_done(),
            epoch=self.current_epoch,
            gradient_engine=self.gradient_engine,
            params=self._trainable(),
        )

    def _guarded_step(self, optimizer: LightningOptimizer, context: StepContext) -> None:
        """The optimizer step and ``after_step``, unless a gradient or loss is not finite."""
        grads_finite, losses_finite = self._finite(context.losses.detach())
        if not losses_finite:
            self.diverged_at = self._steps_done()
            self.trainer.should_stop = True
        if grads_finite and losses_finite:
            optimizer.step()
            if AFTER_STEP in self.method.needs:
                self.method.after_step(context)
        else:
            self.skipped_steps += 1

    def _finite(self, losses: Tensor) -> tuple[bool, bool]:
        """(every gradient finite, every loss finite): the trainer's one-sync check."""
        grads = [p.grad for p in self._trainable() if p.grad is not None]
        if not bool(non_finite([*grads, losses.clone()], losses.device)):
            return True, True
        return not bool(non_finite(grads, losses.device)), bool(torch.isfinite(losses).all())

    def _step_schedulers(self, interval: str) -> None:
        """Steps the schedulers of ``interval`` (``step``: every step, applied or not, as the
        trainer does; ``epoch``: at the epoch's end); ReduceLROnPlateau is left to the module."""
        count = self._steps_done() if interval == "step" else self.current_epoch + 1
        for config in self.trainer.lr_scheduler_configs:
            scheduler: torch.optim.lr_scheduler.LRScheduler = config.scheduler
            if config.interval == interval and not config.reduce_on_plateau and count % config.frequency == 0:
                scheduler.step()

    def _end_of_batch(self, losses: Tensor) -> None:
        self._epoch_loss_sum = losses if self._epoch_loss_sum is None else self._epoch_loss_sum + losses
        self._epoch_batches += 1
        self._log_weights()

    def _log_weights(self) -> None:
        """Logs ``method.current_weights()`` as ``weights/<task>`` and the skipped steps."""
        weights = self.method.current_weights()
        if weights is not None:
            for task, value in zip(self.task_names, weights.detach()):
                self.log(f"weights/{task}", value, on_step=True, on_epoch=False)
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)

    def on_train_epoch_end(self) -> None:
        """``method.end_epoch`` with the epoch's mean losses, when the epoch ran its whole loader."""
        self._step_schedulers("epoch")
        batches = self.trainer.num_training_batches
        if self._epoch_loss_sum is not None and (math.isinf(batches) or self._epoch_batches >= batches):
            self.method.end_epoch(self.current_epoch, self._epoch_loss_sum / self._epoch_batches)
        self._epoch_loss_sum, self._epoch_batches = None, 0

    # -- checkpoints -------------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Adds the guard's counters and the epoch's loss sum (the method is in ``state_dict``)."""
        checkpoint["scalarize"] = {
            "skipped_steps": self.skipped_steps,
            "diverged_at": self.diverged_at,
            "epoch_loss": (self._epoch_loss_sum, self._epoch_batches),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("scalarize")
        if state is not None:
            self.skipped_steps, self.diverged_at = state["skipped_steps"], state["diverged_at"]
            self._epoch_loss_sum, self._epoch_batches = state["epoch_loss"]

    # -- parameters --------------------------------------------------------------------------------
    def _steps_done(self) -> int:
        """Steps taken, applied or skipped (the trainer's step count)."""
        return self.global_step + self.skipped_steps

    def _on_representation(self) -> bool:
        """Whether the method reads the shared representation (``FEATURE_GRADIENTS`` or a gradient
        method with ``gradients="representation"``)."""
        return FEATURE_GRADIENTS in self.method.needs or getattr(self.method, "gradients", None) == "representation"

    def _hook(self, name: str) -> Callable[..., Any]:
        """One of the optional hooks a subclass may define (not attributes of this class)."""
        hook: Callable[..., Any] = getattr(self, name)
        return hook

    def _has_groups(self) -> bool:
        return callable(getattr(self, "shared_parameters", None)) and callable(getattr(self, "task_parameters", None))

    def _trainable(self) -> list[nn.Parameter]:
        """Every trainable parameter, the model's and the method's."""
        return [p for p in self.parameters() if p.requires_grad]

    def _model_parameters(self) -> list[nn.Parameter]:
        own = {id(p) for p in self.method.parameters()}
        return [p for p in self._trainable() if id(p) not in own]

    def _parameter_groups(self) -> tuple[list[nn.Parameter], list[list[nn.Parameter]]]:
        """(shared, per task): the module's ``shared_parameters()``/``task_parameters()``, else
        every model parameter shared and none a task's own (loss-space methods only)."""
        if not self._has_groups():
            return self._model_parameters(), [[] for _ in self.task_names]
        shared = [p for p in self._hook("shared_parameters")() if p.requires_grad]
        return shared, _task_groups(self._hook("task_parameters")(), self.task_names)


def _set_up(method: Method, tasks: list[str]) -> None:
    """Sets the method up for ``tasks`` (MTL), or refuses one that cannot train them."""
    name = method.name or type(method).__name__
    if "mtl" not in getattr(type(method), "settings", frozenset({"mtl"})):
        raise IntegrationError(
            f"method {name} runs in MDL only (it sets a sampler's domain mixture); the Lightning "
            "loader draws the batches"
        )
    if not method.task_names:
        method.setup(tasks)
    elif method.task_names != tasks:
        raise IntegrationError(f"method {name} was set up for {method.task_names}, the module's tasks are {tasks}")


def _task_groups(
    groups: Sequence[Iterable[nn.Parameter]] | Mapping[str, Iterable[nn.Parameter]], tasks: list[str]
) -> list[list[nn.Parameter]]:
    """``task_parameters()`` as one list per task, in task order."""
    if isinstance(groups, Mapping):
        if set(groups) != set(tasks):
            raise IntegrationError(f"task_parameters() has groups for {sorted(groups)}; the tasks are {tasks}")
        groups = [groups[t] for t in tasks]
    if len(groups) != len(tasks):
        raise IntegrationError(f"task_parameters() gave {len(groups)} groups for {len(tasks)} tasks")
    return [[p for p in group if p.requires_grad] for group in groups]
