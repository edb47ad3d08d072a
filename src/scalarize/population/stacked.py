"""P runs of one architecture trained as one model with stacked parameters ``[P, ...]``.

The members' parameters and buffers are stacked (``torch.func.stack_module_state``) and the
forward pass is vectorised over members with ``torch.func.vmap`` of ``functional_call``; each member reads its
own batch (its own sampler and seed), so the inputs are ``[P, B, ...]``. The loss is the sum over
members of each member's scalarization, and one backward gives every member its own gradient
(member p's loss depends on slice p only). Adam, AdamW and SGD are element-wise, so one optimizer
over the stacked parameters is P independent optimizers (to rounding with the fused Adam kernel,
see :func:`fused_optimizer`; tests/test_population.py checks each member against its own run). Batch norm's running statistics are stacked buffers
that each member's forward pass updates in place, on its own slice: they match an independent
run's to rounding (exactly in float64; in float32 the batched reductions round differently, about
1e-7 after one step, and training amplifies that as it amplifies any rounding).

A member whose loss turns non-finite is marked diverged at that step: its gradient is zeroed from
then on, it is no longer evaluated, and the others go on. A member whose loss is finite but whose
gradient is not (NaN or inf anywhere in its slice) skips that step, as the trainer does: its
parameters and optimizer state are left as they were (the step counter of Adam's bias correction
is shared by the stacked tensors, so it still advances), the step is counted and reported, and it
goes on.

The run loop, step timing and guard counters are the trainer's (``train/loop.py``). On a GPU the
guard runs on the device (``_device_guard``), with no host sync per step: a member's divergence
and skipped steps are kept on the device and read once per segment, and a skipped member's slices
(parameters and optimizer state) are put back from a copy taken before the optimizer's step. That
copy costs one pass over the stacked state per step; on the CPU, where a sync is free, the host
guard copies only the slices of the members that skip.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from scalarize.data.benchmark import Benchmark
from scalarize.data.sampling import build_sampler
from scalarize.data.streaming import population_stream
from scalarize.methods.base import normalize_weights
from scalarize.population.members import Member
from scalarize.store.database import Store
from scalarize.train.checkpoint import MODEL_FILE, Checkpointable, run_directory, save_atomically
from scalarize.train.config import TrainConfig
from scalarize.train.devices import resolve_device
from scalarize.train.evaluate import evaluate, primary_metrics
from scalarize.train.loop import GuardCounters, StepTimer, progress_bar, run
from scalarize.train.losses import batch_fractions, objective_losses
from scalarize.train.optim import build_optimizer, build_schedule, fused_optimizer
from scalarize.train.precision import LossScale, autocast, to_channels_last
from scalarize.train.record import RunRecord, RunResult
from scalarize.train.setup import build_model_from_config, check_targets


class StackedPopulation(Checkpointable):
    """Trains ``members`` (same architecture, scalarization weights, seeds) together."""

    def __init__(
        self,
        members: Sequence[Member],
        benchmark: Benchmark,
        *,
        store: Store | None = None,
        checkpoint_path: str | Path | None = None,
        progress: bool = True,
        label: str = "population",
    ) -> None:
        self.members = list(members)
        self.config: TrainConfig = self.members[0].config
        if self.config.early_stopping.patience is not None:
            raise ValueError(
                "early_stopping: a stacked population trains every member to the end; "
                "early stopping runs on the loop engine (each run its own trainer), "
                "or use a sweep's sweep.early_stopping"
            )
        self.device = resolve_device(self.config.device)
        self.benchmark = benchmark.to(self.device, workers=self.config.data.workers)
        self.store = store
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.progress = progress
        self.label = label
        models = []
        for member in self.members:
            torch.manual_seed(member.seed)
            models.append(self._build(member.config))
        check_targets(models[0].to(self.device), self.benchmark)
        self.template = self._build(self.config).to("meta")
        stacked, buffers = stack_module_state(models)
        self.params = {k: nn.Parameter(v.to(self.device)) for k, v in stacked.items()}
        #: Stacked buffers (batch-norm running statistics), updated in place by the forward pass.
        self.buffers = {k: v.to(self.device) for k, v in buffers.items()}
        self.size = len(self.members)
        objectives = self.benchmark.objectives
        self.weights = torch.stack([self._weights(m, len(objectives)) for m in self.members]).to(self.device)
        augmentation = self.config.data.augmentation()
        self.samplers = [
            build_sampler(self.benchmark, self.config.batch_size, m.seed + 1, augmentation, stream=False)
            for m in self.members
        ]
        #: The members' batches read together by loader workers from the shared storage, and
        #: augmented per member (data/streaming.py); None: one gather of in-memory tensors.
        self.batch_stream = population_stream(self.samplers)
        self.steps_per_epoch = self.samplers[0].steps_per_epoch
        self.total_steps = self.config.steps or self.config.epochs * self.steps_per_epoch
        self.eval_every = self.config.eval_every or self.steps_per_epoch
        self.optimizer = fused_optimizer(build_optimizer(self.config, list(self.params.values())))
        self.loss_scale = LossScale(self.config.precision == "fp16")
        self.schedule = build_schedule(self.config, self.optimizer, self.total_steps, self.steps_per_epoch)
        self.forward = vmap(self._forward_one)
        self.step = 0
        self.evaluation = 0
        self.alive = torch.ones(self.size, dtype=torch.bool)
        self.diverged_at: dict[int, int] = {}
        #: Each member's record: history, best evaluation, skipped steps, costs, store rows.
        primary = primary_metrics(self.benchmark)
        self.records = [RunRecord(m.name, objectives, primary, store, m.config.selection) for m in self.members]
        #: Per-member learning-rate multipliers (PBT may explore the lr): the optimizer's step
        #: is rescaled per member, exact for SGD, Adam and AdamW whose step is proportional to lr.
        self.lr_scale = torch.ones(self.size)
        self._timer = StepTimer(self.device, self.eval_every, self._charge, self._measured)
        #: The non-finite guard on the device (no host sync per step): on a GPU, as the trainer's.
        self._device_guard = self.device.type == "cuda" and not self.loss_scale.enabled
        self._guard = GuardCounters(self.device, self.size)
        self._alive_on_device = self.alive.to(self.device)
        #: Called after every evaluation, before the checkpoint (PBT syncs here).
        self.on_evaluation: Callable[[StackedPopulation], None] | None = None
        #: Extra state saved in the checkpoint (e.g. PBT's lineage).
        self.extra_state: dict = {}
        self._eval_model = self._build(self.config).to(self.device)

    # -- construction ------------------------------------------------------------------------
    def _build(self, config: TrainConfig) -> nn.Module:
        return build_model_from_config(config, self.benchmark)

    @staticmethod
    def _weights(member: Member, num: int) -> Tensor:
        raw = member.weights if member.weights is not None else [1.0] * num
        return normalize_weights(raw, num)

    def set_weights(self, index: int, weights: Sequence[float] | Tensor) -> None:
        """Changes member ``index``'s weights (PBT's explore)."""
        self.weights[index] = normalize_weights(weights, self.weights.shape[1]).to(self.weights)

    # -- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {
            "params": {k: v.detach().clone() for k, v in self.params.items()},
            "buffers": {k: v.clone() for k, v in self.buffers.items()},
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "weights": self.weights.clone(),
            "samplers": [s.state_dict() for s in self.samplers],
            "rng": torch.get_rng_state(),
            "step": self.step,
            "evaluation": self.evaluation,
            "alive": self.alive.clone(),
            "diverged_at": dict(self.diverged_at),
            "records": [r.state_dict() for r in self.records],
            "lr_scale": self.lr_scale.clone(),
            "loss_scale": self.loss_scale.state_dict(),
            "extra": self.extra_state,
        }

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for key, value in state["params"].items():
                self.params[key].copy_(value)
            for key, value in state.get("buffers", {}).items():  # absent before buffers were stacked
                self.buffers[key].copy_(value)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.weights.copy_(state["weights"])
        for sampler, s in zip(self.samplers, state["samplers"]):
            sampler.load_state_dict(s)
        torch.set_rng_state(state["rng"])
        self.step, self.evaluation = state["step"], state["evaluation"]
        self.alive, self.diverged_at = state["alive"].clone(), dict(state["diverged_at"])
        for record, saved in zip(self.records, state["records"]):
            record.load_state_dict(saved)
        self.lr_scale = state["lr_scale"].clone()
        self.loss_scale.load_state_dict(state["loss_scale"])
        self.extra_state = state["extra"]

    def copy_member(self, source: int, target: int) -> None:
        """PBT's exploit: target takes source's parameters, optimizer state, weights and learning
        rate. It keeps its own batch stream: copying the source's sampler state too would make
        the two members draw identical batches, and with unchanged weights (a perturbation
        that multiplies every weight by the same factor) train into exact duplicates."""
        with torch.no_grad():
            for value in [*self.params.values(), *self.buffers.values()]:
                value[target] = value[source]
            for state in self.optimizer.state.values():
                for value in state.values():
                    if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == self.size:
                        value[target] = value[source]
        self.weights[target] = self.weights[source]
        self.lr_scale[target] = self.lr_scale[source]
        self.records[target].best = dict(self.records[source].best)
        self.alive[target] = self.alive[source]
        self.diverged_at.pop(target, None)

    def keep_members(self, indices: Sequence[int]) -> None:
        """Shrinks the population to the members ``indices`` (ascending, distinct): the others
        stop here (successive halving, :mod:`scalarize.search.successive_halving`).

        Every per-member piece is sliced, nothing else is touched: the stacked parameters and
        buffers, the optimizer's per-member state (Adam's moments; its shared step counter and
        the schedule are kept), weights, learning-rate multipliers, samplers (their state is
        that of the batches consumed, so a streamed population's reader restarts from it),
        records and divergence marks. The members left then train exactly as a population
        built with only them would have (tested bit for bit)."""
        keep = [int(i) for i in indices]
        if not keep or sorted(set(keep)) != keep or keep[0] < 0 or keep[-1] >= self.size:
            raise ValueError(f"keep_members: indices must be distinct, ascending and in [0, {self.size}); got {keep}")
        if len(keep) == self.size:
            return
        index = torch.tensor(keep, dtype=torch.long)
        old_size, saved = self.size, self.optimizer.state_dict()
        with torch.no_grad():
            self.params = {k: nn.Parameter(v.detach()[index.to(v.device)].clone()) for k, v in self.params.items()}
            self.buffers = {k: v[index.to(v.device)].clone() for k, v in self.buffers.items()}
        for state in saved["state"].values():
            for key, value in state.items():
                if isinstance(value, Tensor) and value.dim() > 0 and value.shape[0] == old_size:
                    state[key] = value[index.to(value.device)].clone()
        schedule = self.schedule.state_dict()
        self.optimizer = fused_optimizer(build_optimizer(self.config, list(self.params.values())))
        self.schedule = build_schedule(self.config, self.optimizer, self.total_steps, self.steps_per_epoch)
        self.optimizer.load_state_dict(saved)
        self.schedule.load_state_dict(schedule)
        self._keep_per_member(keep, index)

    def _keep_per_member(self, keep: list[int], index: Tensor) -> None:
        """:meth:`keep_members`'s lists and per-member tensors."""
        self.members = [self.members[i] for i in keep]
        self.weights = self.weights[index.to(self.weights.device)].clone()
        self.lr_scale = self.lr_scale[index].clone()
        self.samplers = [self.samplers[i] for i in keep]
        self.records = [self.records[i] for i in keep]
        self.alive = self.alive[index].clone()
        self.diverged_at = {new: self.diverged_at[old] for new, old in enumerate(keep) if old in self.diverged_at}
        self.size = len(keep)
        if self.batch_stream is not None:
            self.batch_stream.close()
            self.batch_stream = population_stream(self.samplers)
        self._guard = GuardCounters(self.device, self.size)
        self._alive_on_device = self.alive.to(self.device)

    # -- one step ------------------------------------------------------------------------------
    def _forward_one(self, params: dict[str, Tensor], buffers: dict[str, Tensor], inputs: Tensor):
        return functional_call(self.template, (params, buffers), (inputs,))

    def _next_batches(self) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """``inputs [P, B, ...]``, ``targets {name: [P, B, ...]}``, ``counts [P, D]``."""
        if self.batch_stream is not None:
            batch = self.batch_stream.next_batch()
            return batch.inputs, batch.targets, batch.counts
        if self.benchmark.setting == "mtl":
            index = torch.stack([s.next_index() for s in self.samplers])  # one gather, not P
            counts = torch.full((self.size, 1), index.shape[1], dtype=torch.long)
            return *self.benchmark.split("train").batch(index), counts
        batches = [s.next_batch() for s in self.samplers]
        targets = {k: torch.stack([b.targets[k] for b in batches]) for k in batches[0].targets}
        return torch.stack([b.inputs for b in batches]), targets, torch.stack([b.counts for b in batches])

    def train_step(self) -> Tensor:
        """One step of every member; returns the detached ``[P, T]`` losses. Timed and measured
        as the trainer's steps (``train/loop.py: StepTimer``): each member is charged 1/P of the
        stack's step and of its peak memory."""
        return self._timer.run(self.step, self._step)

    def _charge(self, seconds: float, steps: int) -> None:
        for record in self.records:
            record.time_steps(seconds / self.size, steps)

    def _measured(self, peak: int) -> None:
        for record in self.records:
            record.measure_memory(peak // self.size)

    def _step(self) -> Tensor:
        inputs, targets, counts = self._next_batches()
        if self.config.channels_last and self.device.type == "cuda":
            inputs = to_channels_last(inputs.flatten(0, 1)).unflatten(0, inputs.shape[:2])
        with autocast(self.config.precision, self.device):
            _, outputs = self.forward(self.params, self.buffers, inputs)
        if self.config.precision != "fp32":
            outputs = {k: v.float() for k, v in outputs.items()}
        losses = objective_losses(self.benchmark, outputs, targets, counts)
        if self.benchmark.setting == "mdl":
            coefficients = batch_fractions(counts, losses)
        else:
            coefficients = self.weights.to(losses)
        alive = self._mark_diverged(torch.isfinite(losses).all(1))
        total = torch.where(alive[:, None], coefficients * losses, torch.zeros_like(losses)).sum()
        self.optimizer.zero_grad(set_to_none=True)
        if self.loss_scale.enabled:  # fp16: seeded with the loss scale, unscaled at once
            (total * self.loss_scale.scale).backward()
            torch._foreach_div_([v.grad for v in self.params.values() if v.grad is not None], self.loss_scale.scale)
        else:
            total.backward()
        if self._device_guard or not bool(self.alive.all()):
            self._zero_gradients(~alive)
        self._clip_member_gradients()
        if self._device_guard:
            self._guarded_step_on_device()
        else:
            self._guarded_step_on_host()
        self.schedule.step()
        self.step += 1
        for record, weights in zip(self.records, self.weights.detach().clone()):
            record.log_weights(self.step, weights)
        return losses.detach()

    def _mark_diverged(self, finite: Tensor) -> Tensor:
        """Marks the members whose loss just turned non-finite as diverged at this step; returns
        who is alive, on the losses' device (on the device guard, kept there until :meth:`settle`)."""
        if self._device_guard:
            self._guard.losses(self.step + 1, finite | ~self._alive_on_device)
            self._alive_on_device = self._alive_on_device & finite
            return self._alive_on_device
        finite = finite.cpu()
        for index in (self.alive & ~finite).nonzero().flatten().tolist():
            self.diverged_at[index] = self.step + 1
        self.alive &= finite
        return self.alive.to(self.device)

    @torch.no_grad()
    def _clip_member_gradients(self) -> None:
        """``optimizer.max_grad_norm``: each member's gradient scaled to at most that 2-norm, as
        the trainer clips one model's (``torch.nn.utils.clip_grad_norm_``'s rule, per slice)."""
        max_norm = self.config.optimizer.max_grad_norm
        if max_norm is None:
            return
        grads = [v.grad for v in self.params.values() if v.grad is not None]
        norms = torch.stack([g.flatten(1).pow(2).sum(1) for g in grads]).sum(0).sqrt()  # [P]
        factor = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for grad in grads:
            grad.mul_(factor.view(-1, *([1] * (grad.dim() - 1))).to(grad.dtype))

    @torch.no_grad()
    def _zero_gradients(self, members: Tensor) -> None:
        """Zeroes the gradient slices of ``members`` (a ``[P]`` mask), NaN included."""
        for value in self.params.values():
            if value.grad is not None:
                value.grad.masked_fill_(members.view(-1, *([1] * (value.dim() - 1))), 0.0)

    def _guarded_step_on_host(self) -> None:
        skipped = self._non_finite_gradients()
        self.loss_scale.update(not skipped)
        if skipped:
            saved = self._zero_and_save(skipped)
            self._optimizer_step()
            self._restore(skipped, saved)
        else:
            self._optimizer_step()

    def _guarded_step_on_device(self) -> None:
        """The optimizer's step, undone on the device for the members whose gradient is not
        finite (counted in the guard, read at :meth:`settle`)."""
        bad = self._member_flags()
        self._guard.skip(bad)
        self._zero_gradients(bad)
        saved = [t.detach().clone() for t in self._member_slices()]
        self._optimizer_step()
        with torch.no_grad():
            for tensor, old in zip(self._member_slices(), saved):
                tensor.copy_(torch.where(bad.view(-1, *([1] * (tensor.dim() - 1))), old, tensor))

    def _member_flags(self) -> Tensor:
        """``[P]`` bool on the device: whose gradient slice holds a NaN or an inf (one sum per
        stacked tensor: a row sum is finite exactly when every entry is, up to overflow)."""
        sums = torch.stack([v.grad.flatten(1).sum(1) for v in self.params.values() if v.grad is not None])
        return ~sums.isfinite().all(0)

    def _non_finite_gradients(self) -> list[int]:
        """Members whose gradient slice holds a NaN or an inf (:meth:`_member_flags`), read with
        one host sync."""
        members = self._member_flags().cpu().nonzero().flatten().tolist()
        for index in members:
            self.records[index].skip()
        return members

    def _member_slices(self) -> list[Tensor]:
        """The stacked tensors a step changes: parameters and per-member optimizer state."""
        tensors = list(self.params.values())
        for state in self.optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == self.size]
        return tensors

    @torch.no_grad()
    def _zero_and_save(self, members: list[int]) -> list[Tensor]:
        for value in self.params.values():
            value.grad[members] = 0.0  # no NaN into the fused kernel
        return [t[members].clone() for t in self._member_slices()]

    @torch.no_grad()
    def _restore(self, members: list[int], saved: list[Tensor]) -> None:
        for tensor, old in zip(self._member_slices(), saved):
            tensor[members] = old

    def _optimizer_step(self) -> None:
        if bool((self.lr_scale == 1).all()):
            self.optimizer.step()
            return
        before = [v.detach().clone() for v in self.params.values()]
        self.optimizer.step()
        with torch.no_grad():
            for value, old in zip(self.params.values(), before):
                scale = self.lr_scale.to(value).view(-1, *([1] * (value.dim() - 1)))
                value.copy_(old + scale * (value - old))

    # -- evaluation ------------------------------------------------------------------------------
    def member_model(self, index: int) -> nn.Module:
        """Member ``index`` as an ordinary model (a copy of its slice)."""
        with torch.no_grad():
            state = {k: v[index] for k, v in [*self.params.items(), *self.buffers.items()]}
            self._eval_model.load_state_dict(state)
        return self._eval_model

    def evaluate_member(self, index: int, split: str) -> dict[str, float]:
        return evaluate(self.member_model(index), self.benchmark, split)

    def _evaluate(self, mean_losses: Tensor) -> None:
        for index, record in enumerate(self.records):
            if not self.alive[index]:
                continue
            val = self.evaluate_member(index, "val")
            test = self.evaluate_member(index, "test")
            if record.evaluated(self.step, mean_losses[index].tolist(), val, test, self.weights[index]):
                self._save_member_model(index)
        self.evaluation += 1

    def _save_member_model(self, index: int) -> None:
        """Saves member ``index``'s model of the evaluation it reports (as the trainer does)."""
        if self.store is not None:
            state = {k: v.detach().clone() for k, v in self.member_model(index).state_dict().items()}
            save_atomically(state, run_directory(self.store.directory, self.members[index].name) / MODEL_FILE)

    @property
    def histories(self) -> list[list[dict[str, float]]]:
        return [record.history for record in self.records]

    @property
    def skipped_steps(self) -> list[int]:
        return [record.skipped_steps for record in self.records]

    # -- the run loop's engine (train/loop.py) -------------------------------------------------
    def begin_segment(self) -> None:
        for sampler, weights in zip(self.samplers, self.weights):
            sampler.set_weights(weights if self.benchmark.setting == "mdl" else None)
        if self._device_guard:  # PBT's exploit may have revived a member since the last segment
            self._alive_on_device = self.alive.to(self.device)

    def after_step(self, losses: Tensor) -> None:
        pass

    def settle(self) -> None:
        """Reads what the device counted since the last segment (one sync per segment)."""
        self._timer.settle()
        if not self._device_guard:
            return
        for record, count in zip(self.records, self._guard.take_skipped()):
            for _ in range(count):
                record.skip()
        for index, step in enumerate(self._guard.take_first_bad()):
            if step is not None:
                self.diverged_at[index] = step
        self.alive = self._alive_on_device.cpu()

    def diverged(self) -> bool:
        return False  # members diverge one by one: see training()

    def evaluate(self, mean_losses: Tensor) -> None:
        self._evaluate(mean_losses)
        if self.on_evaluation is not None:
            self.on_evaluation(self)

    def ended(self) -> str | None:
        return None if bool(self.alive.any()) else "diverged"

    def run_until(self, step: int, bar=None) -> None:
        """Trains to ``step`` (at most the total), evaluating and checkpointing on schedule."""
        run(self, step, bar)

    def fit(self) -> list[RunResult]:
        started = time.perf_counter()
        self.try_resume()
        bar = progress_bar(self.progress, self.total_steps, self.step, self.label)
        try:
            self.run_until(self.total_steps, bar)
        finally:
            bar.close()
        seconds = time.perf_counter() - started
        if self.store is None:
            return [self._finish(index, seconds) for index in range(self.size)]
        with self.store.transaction():  # a kill leaves every member finished, or none
            return [self._finish(index, seconds) for index in range(self.size)]

    def _finish(self, index: int, seconds: float) -> RunResult:
        record = self.records[index]
        if index in self.diverged_at:
            return record.finish(
                "diverged", self.diverged_at[index], seconds, f"non-finite loss at step {self.diverged_at[index]}"
            )
        return record.finish("completed", self.step, seconds)

    def results(self, seconds: float = 0.0) -> list[RunResult]:
        """Every member's result as it stands (nothing written)."""
        return [
            record.result(
                "diverged" if index in self.diverged_at else "completed",
                self.diverged_at.get(index, self.step),
                seconds,
            )
            for index, record in enumerate(self.records)
        ]
