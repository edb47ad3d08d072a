"""One training run: the loop, evaluation, checkpoint and resume.

The loop asks the method for an update through :class:`~scalarize.methods.StepContext` and never
looks at which method it is. Every ``eval_every`` steps it evaluates val and test into the run's
:class:`~scalarize.train.record.RunRecord` (history, best evaluation, store rows, costs) and writes
a checkpoint (model, optimizer, schedule, method, sampler, RNG, record) by atomic rename, so a
killed run resumed with the same command continues from the last evaluation and ends with the
same numbers as an uninterrupted one.

With ``distributed`` (a rank of data-parallel training, ``scalarize.train.distributed``), each
rank trains on its shard of every global batch and the step's context reduces what the method
reads across the ranks; rank 0 alone writes checkpoints, the store and the reported model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor
from tqdm.auto import tqdm

from scalarize.data.benchmark import Benchmark
from scalarize.data.sampling import Batch, build_sampler
from scalarize.methods.base import (
    AFTER_STEP,
    FEATURE_GRADIENTS,
    INDEPENDENT_BATCHES,
    PREFERENCE_INPUT,
    SHARED_GRADIENTS,
    Method,
)
from scalarize.methods.context import StepContext
from scalarize.models.conditioned import PreferenceConditioned
from scalarize.models.contract import as_multitask, supports_head_inputs
from scalarize.models.multitask import MultiTaskModel
from scalarize.store.database import Store
from scalarize.train.checkpoint import MODEL_FILE, Checkpointable, load_checkpoint, save_atomically
from scalarize.train.config import TrainConfig
from scalarize.train.devices import run_device
from scalarize.train.distributed import Distributed, ShardBatch, ShardedSampler, check_batches, rank_seed, shard_losses
from scalarize.train.evaluate import evaluate, primary_metrics
from scalarize.train.loop import GuardCounters, StepTimer, non_finite, progress_bar, run
from scalarize.train.losses import batch_fractions, objective_losses
from scalarize.train.optim import build_schedule, clip_gradients, run_optimizer
from scalarize.train.precision import LossScale, autocast, to_channels_last
from scalarize.train.record import RunRecord, RunResult
from scalarize.train.setup import check_model_and_method

#: Called after every evaluation with (run name, model, step, evaluation index).
EvaluationHook = Callable[[str, MultiTaskModel, int, int], None]


class Trainer(Checkpointable):
    """Trains ``model`` on ``benchmark`` with ``method`` as ``config`` says; see :meth:`fit`."""

    def __init__(
        self,
        config: TrainConfig,
        benchmark: Benchmark,
        model: torch.nn.Module | tuple[torch.nn.Module, Mapping[str, torch.nn.Module]],
        method: Method,
        *,
        run_name: str = "run",
        store: Store | None = None,
        checkpoint_path: str | Path | None = None,
        progress: bool = True,
        distributed: Distributed | None = None,
    ) -> None:
        self.config = config
        self.distributed = distributed if distributed is not None and distributed.world > 1 else None
        self.device = run_device(config.device, self.distributed)
        self.benchmark = benchmark.to(self.device, workers=config.data.workers)
        self.model = cast(MultiTaskModel, as_multitask(model, benchmark.tasks))  # or a module of the contract
        self.model.to(self.device)
        # channels-last is a GPU layout (tensor cores); on this CPU's oneDNN, convolutions with a
        # few channels in channels-last corrupted the heap (torch 2.13), so the CPU keeps NCHW
        self._channels_last = config.channels_last and self.device.type == "cuda"
        if self._channels_last:
            self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # (stubs omit it)
        self.method = method.to(self.device)
        if not method.task_names:
            method.setup(benchmark.objectives, benchmark.setting)
        check_model_and_method(self.model, method, self.benchmark)
        self.run_name = run_name
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.progress = progress
        self.sampler = self._sampler(config.seed + 1)
        #: Batches drawn independently of the training stream, for the methods that ask for them
        #: (SDMGrad, MoDo): their own sampler, so the training batches are those of any method.
        self.independent_sampler = self._sampler(config.seed + 2) if INDEPENDENT_BATCHES in method.needs else None
        self.steps_per_epoch = self.sampler.steps_per_epoch
        self.total_steps = config.steps or config.epochs * self.steps_per_epoch
        self.eval_every = config.eval_every or self.steps_per_epoch
        params = list(self.model.parameters()) + list(self.method.parameters())
        self._params = [p for p in params if p.requires_grad]
        self._model_params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = run_optimizer(config, method, params)
        # On a GPU the non-finite guard runs on the device (no host sync): a fused optimizer skips
        # its update when its ``found_inf`` is set, as under torch.amp.GradScaler.
        self._device_guard = (
            self.device.type == "cuda"
            and AFTER_STEP not in method.needs
            and config.precision != "fp16"
            and bool(self.optimizer.defaults.get("fused"))
        )
        self.loss_scale = LossScale(config.precision == "fp16")
        self._guard = GuardCounters(self.device)
        self.schedule = build_schedule(config, self.optimizer, self.total_steps, self.steps_per_epoch)
        if benchmark.setting == "mtl":
            self.shared_params = self.model.shared_parameters()
            self.task_params = self.model.task_parameters()
        else:  # MDL: every domain's loss reaches the one head too, so it is shared
            self.shared_params = [p for p in self.model.parameters() if p.requires_grad]
            self.task_params = []
        # Per-task gradients through one pass over the heads (methods/context.py): in MTL, for
        # the methods that ask for per-task gradients.
        self._split_heads = (  # not through a compiled graph: its head inputs would be a copy
            benchmark.setting == "mtl"
            and not config.compile
            and bool(method.needs & {SHARED_GRADIENTS, FEATURE_GRADIENTS})
            and supports_head_inputs(self.model, benchmark.tasks)
        )
        self.diverged_at: int | None = None
        self._forward: Callable[..., Any] = self.model
        self._forward_heads: Callable[..., Any] | None = getattr(self.model, "forward_with_head_inputs", None)
        if config.compile:
            self._compile()
        self.step = 0
        self.record = RunRecord(
            run_name,
            benchmark.objectives,
            primary_metrics(benchmark),
            store,
            config.selection,
            patience=config.early_stopping.patience,
            min_delta=config.early_stopping.min_delta,
        )
        self._timer = StepTimer(self.device, self.eval_every, self.record.time_steps, self.record.measure_memory)
        self._epoch_loss_sum: Tensor | None = None
        self._epoch_loss_steps = 0
        #: Called after every evaluation with (run name, model, step, evaluation index), e.g. to
        #: measure gradient conflict along training; it must not touch the training RNG.
        self.on_evaluation: EvaluationHook | None = None

    def _sampler(self, seed: int) -> Any:  # epochs or a mixture, maybe streamed or sharded: one interface
        augmentation = self.config.data.augmentation()
        if self.distributed is None:
            return build_sampler(self.benchmark, self.config.batch_size, seed, augmentation)
        sampler = build_sampler(self.benchmark, self.config.batch_size, seed, augmentation, stream=False)
        check_batches(self.benchmark, self.config.batch_size, self.distributed.world)
        return ShardedSampler(sampler, self.distributed.rank, self.distributed.world)

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run's files (always, but on ranks > 0)."""
        return self.distributed is None or self.distributed.is_driver

    # -- what the record holds -------------------------------------------------------------------
    @property
    def store(self) -> Store | None:
        return self.record.store

    @property
    def message(self) -> str:
        return self.record.message

    @property
    def history(self) -> list[dict[str, float]]:
        return self.record.history

    @property
    def evaluation(self) -> int:
        return self.record.evaluation

    @property
    def skipped_steps(self) -> int:
        return self.record.skipped_steps

    @property
    def timed_steps(self) -> int:
        return self.record.timed_steps

    @property
    def train_seconds(self) -> float:
        return self.record.train_seconds

    @property
    def step_memory(self) -> int | None:
        return self.record.step_memory

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "method": self.method.state_dict(),
            "sampler": self.sampler.state_dict(),
            "independent_sampler": self.independent_sampler.state_dict() if self.independent_sampler else None,
            "rng": torch.get_rng_state(),
            **({"rng_ranks": self.distributed.gather(torch.get_rng_state())} if self.distributed else {}),
            "step": self.step,
            "record": self.record.state_dict(),
            "epoch_loss": (self._epoch_loss_sum, self._epoch_loss_steps),
            "loss_scale": self.loss_scale.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.method.load_state_dict(state["method"])
        self.sampler.load_state_dict(state["sampler"])
        if self.independent_sampler is not None:
            self.independent_sampler.load_state_dict(state["independent_sampler"])
        torch.set_rng_state(state["rng"])
        self.step = state["step"]
        if self.distributed is not None and self.distributed.rank > 0:
            ranks = state.get("rng_ranks")
            if ranks is not None and len(ranks) == self.distributed.world:
                torch.set_rng_state(ranks[self.distributed.rank])
            else:  # saved by another number of processes: a fresh stream of this rank's
                torch.manual_seed(rank_seed(self.config.seed + self.step, self.distributed.rank))
        self.record.load_state_dict(state["record"])
        self._epoch_loss_sum, self._epoch_loss_steps = state["epoch_loss"]
        self.loss_scale.load_state_dict(state["loss_scale"])

    # -- one step ------------------------------------------------------------------------------
    def _compile(self) -> None:
        """``torch.compile`` the forward pass. Per-task gradients take several backward passes
        through one compiled graph, which AOT autograd's donated buffers forbid: they are off.
        The heads' one-pass per-task gradients (``forward_with_head_inputs``) are not used: the
        head inputs a compiled graph returns are a copy of what the heads read, so the gradients
        on them would be zero."""
        import torch._functorch.config as functorch_config

        functorch_config.donated_buffer = False
        self._forward = torch.compile(self.model)

    def _outputs(self, inputs: Tensor, heads: bool = False) -> tuple[Any, ...]:
        """The model's forward pass under the configured precision; outputs in float32."""
        if self._channels_last:
            inputs = to_channels_last(inputs)
        with autocast(self.config.precision, self.device):
            forward = self._forward_heads if heads and self._forward_heads is not None else self._forward
            result = forward(inputs)
        if self.config.precision == "fp32":
            return tuple(result)
        *front, outputs = result
        return (*(f.float() for f in front), {k: v.float() for k, v in outputs.items()})

    def _losses(self, outputs: dict[str, Tensor], batch: Batch) -> Tensor:
        """The ``[T]`` losses of a batch; in data-parallel training, this rank's share of the
        global batch's (train/distributed.py: their mean over the ranks is the global loss)."""
        if self.distributed is None:
            return objective_losses(self.benchmark, outputs, batch.targets, batch.counts)
        assert isinstance(batch, ShardBatch)  # a sharded sampler's
        return shard_losses(self.benchmark, outputs, batch.targets, batch.counts, batch.total, self.distributed.world)

    def _context(self, batch: Batch) -> StepContext:
        head_inputs = None
        if self._split_heads:
            features, head_inputs, outputs = self._outputs(batch.inputs, heads=True)
        else:
            features, outputs = self._outputs(batch.inputs)
        losses = self._losses(outputs, batch)

        def recompute() -> Tensor:
            _, again = self._outputs(batch.inputs)
            return self._losses(again, batch)

        def independent() -> Tensor:
            assert self.independent_sampler is not None  # only handed over when there is one
            other = self.independent_sampler.next_batch()
            return self._losses(self._outputs(other.inputs)[1], other)

        counts = batch.total if isinstance(batch, ShardBatch) else batch.counts  # the global batch's mixture
        return StepContext(
            losses,
            features=features,
            shared_params=self.shared_params,
            task_params=self.task_params,
            batch_fractions=batch_fractions(counts, losses) if self.benchmark.setting == "mdl" else None,
            recompute_losses=recompute,
            independent_losses=independent if self.independent_sampler is not None else None,
            step=self.step,
            epoch=self.step // self.steps_per_epoch,
            gradient_engine="loop" if self.config.compile else self.config.gradient_engine,
            head_inputs=head_inputs,
            loss_scale=self.loss_scale.value,
            params=self._params,
            reducer=self.distributed.reducer if self.distributed is not None else None,
        )

    def train_step(self) -> Tensor:
        """One optimisation step; returns the detached ``[T]`` losses.

        A step whose gradients are not all finite is not applied (no optimizer step, no
        ``after_step`` hook): it is counted in :attr:`skipped_steps` and training goes on. Steps
        are timed and measured by the loop's :class:`~scalarize.train.loop.StepTimer` (the first
        a warm-up, the second of the run and of each evaluation interval measured for memory).
        """
        return self._timer.run(self.step, self._step)

    def _finite_on_host(self, losses: Tensor) -> tuple[bool, bool]:
        """(every gradient finite, every loss finite), read with one host sync in the usual case
        where both hold: the gradients and (a copy of) the losses are checked in one pass, and
        only when something is not finite are the two told apart."""
        grads = [p.grad for p in self._params if p.grad is not None]
        if not bool(non_finite([*grads, losses.clone()], self.device)):
            return True, True
        return not bool(non_finite(grads, self.device)), bool(torch.isfinite(losses).all())

    def _step(self) -> Tensor:
        if PREFERENCE_INPUT in self.method.needs:  # the model takes the method's preference as input
            cast(PreferenceConditioned, self.model).set_preference(self.method.draw_preference())
        context = self._context(self.sampler.next_batch())
        self.optimizer.zero_grad(set_to_none=True)
        self.method.backward(context)
        clip_gradients(self._model_params, self.config.optimizer.max_grad_norm)  # after the method
        losses = context.losses.detach()
        losses_finite = None
        if self._device_guard:
            self._guarded_step_on_device()
        else:
            applied, losses_finite = self._finite_on_host(losses)
            if self.distributed is not None:  # the same decision on every rank
                applied = self.distributed.all_true(applied)
            self.loss_scale.update(applied)
            if applied:
                self.optimizer.step()
            else:
                self.record.skip()
            if applied and AFTER_STEP in self.method.needs:
                self.method.after_step(context)
        self.schedule.step()
        self.step += 1
        if losses_finite is None:  # on the device: no host sync
            self._guard.losses(self.step, torch.isfinite(losses).all())
        elif not losses_finite:
            self._guard.losses(self.step, torch.tensor(False))
        self._log_weights()
        return losses

    def _log_weights(self) -> None:
        """Logs a copy of the method's current weights at this step (read at the evaluation)."""
        weights = self.method.current_weights()
        if weights is not None:
            self.record.log_weights(self.step, weights.detach().clone())

    def _guarded_step_on_device(self) -> None:
        """The fused optimizer's update, skipped on the device when a gradient is not finite."""
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            self.optimizer.step()
            return
        found_inf = non_finite(grads, self.device)
        self.optimizer.found_inf = found_inf  # type: ignore[attr-defined]  # read by the fused kernel
        try:
            self.optimizer.step()
        finally:
            del self.optimizer.found_inf  # type: ignore[attr-defined]
        self._guard.skip(found_inf)

    def _end_of_epoch(self, losses: Tensor) -> None:
        self._epoch_loss_sum = losses if self._epoch_loss_sum is None else self._epoch_loss_sum + losses
        self._epoch_loss_steps += 1
        if self.step % self.steps_per_epoch == 0:
            self.method.end_epoch(self.step // self.steps_per_epoch - 1, self._epoch_loss_sum / self._epoch_loss_steps)
            self._epoch_loss_sum, self._epoch_loss_steps = None, 0

    # -- the run loop's engine (train/loop.py) ---------------------------------------------------
    def begin_segment(self) -> None:
        self.sampler.set_weights(self.method.sampling_weights())
        if self.independent_sampler is not None:
            self.independent_sampler.set_weights(self.method.sampling_weights())

    def after_step(self, losses: Tensor) -> None:
        self._end_of_epoch(losses)

    def settle(self) -> None:
        """Reads what the device counted since the last evaluation (one sync per evaluation)."""
        self._timer.settle()
        for _ in range(self._guard.take_skipped()[0]):
            self.record.skip()

    def diverged(self) -> bool:
        first = self._guard.take_first_bad()[0]
        if first is None:
            return False
        self.diverged_at = first
        self.record.message = f"non-finite loss at step {first}"
        return True

    def evaluate(self, mean_losses: Tensor) -> None:
        if PREFERENCE_INPUT in self.method.needs:  # a conditioned model reports its uniform preference
            cast(PreferenceConditioned, self.model).set_preference(torch.ones(len(self.benchmark.objectives)))
        if self.distributed is not None:  # batch-norm statistics: rank 0's, so every rank evaluates alike
            self.distributed.broadcast_tensors([b for b in self.model.buffers() if b.is_floating_point()])
        val = evaluate(self.model, self.benchmark, "val")
        test = evaluate(self.model, self.benchmark, "test")
        if self.record.evaluated(self.step, mean_losses.tolist(), val, test, self.method.objective_weights()):
            if self.is_writer:
                self.save_reported_model()
        if self.on_evaluation is not None:
            self.on_evaluation(self.run_name, self.model, self.step, self.evaluation - 1)

    def ended(self) -> str | None:
        return "stopped" if self.record.patience_spent else None

    def train_segment(self, bar: tqdm[Any] | None = None) -> str:
        """Trains to the next evaluation (or the end) and evaluates; returns the status (no
        checkpoint: :meth:`fit` writes them, the Ray backend reports its own).

        ``"diverged"`` (with :attr:`message` set) when a loss turned non-finite, else
        ``"running"`` or ``"completed"`` at the last step.
        """
        return run(self, self.total_steps, bar, segments=1, checkpoints=False)

    def fit(self) -> RunResult:
        """Trains to ``total_steps`` (resuming from the checkpoint if there is one)."""
        started = time.perf_counter()
        if self.distributed is None:
            self.try_resume()
        else:
            self._resume_distributed()
        self.model.train()
        bar = progress_bar(self.progress and self.is_writer, self.total_steps, self.step, self.run_name)
        try:
            status = run(self, self.total_steps, bar)
        finally:
            bar.close()
        steps = self.diverged_at if status == "diverged" and self.diverged_at is not None else self.step
        return self.record.finish(status, steps, time.perf_counter() - started)

    def _resume_distributed(self) -> None:
        """Rank 0 reads the checkpoint, if any, and every rank loads it; then every rank holds
        rank 0's model and method (equal already when built from the same seed)."""
        context = self.distributed
        assert context is not None  # called in data-parallel training only
        state = None
        if context.is_driver and self.checkpoint_path is not None and self.checkpoint_path.exists():
            state = load_checkpoint(self.checkpoint_path)
        state = context.broadcast(state)
        if state is not None:
            self.load_state_dict(state)
        elif context.rank > 0:
            torch.manual_seed(rank_seed(self.config.seed, context.rank))
        context.broadcast_tensors([*self.model.state_dict().values(), *self.method.state_dict().values()])
        #: whether rank 0 checkpoints (every rank then takes part: the RNG states are gathered)
        self._checkpointing = context.broadcast(self.checkpoint_path is not None)

    def save_checkpoint(self) -> None:
        if self.distributed is None:
            super().save_checkpoint()
            return
        if not getattr(self, "_checkpointing", False):
            return
        state = self.state_dict()
        if self.is_writer and self.checkpoint_path is not None:
            save_atomically(state, self.checkpoint_path)

    def save_reported_model(self) -> None:
        """Saves the model of the evaluation the run reports, beside its checkpoint."""
        if self.checkpoint_path is not None:
            save_atomically(self.model.state_dict(), self.checkpoint_path.parent / MODEL_FILE)

    def costs(self) -> dict[str, float]:
        """What the run has cost so far: skipped steps, seconds per step, peak step memory."""
        return self.record.costs(self.step)

    def result(self, status: str = "completed") -> RunResult:
        """The run's result as it stands (nothing written)."""
        return self.record.result(status, self.step)
