"""What the trainer hands a method for one step.

The context holds the step's task losses (with their graph), the shared representation and the
parameter groups, and computes on demand what a method declared it needs: per-task gradients on
the shared parameters, or on the shared representation. Nothing is computed that nobody asked for.

Per-task gradients come from one of two engines (``gradient_engine``), which give the same
Jacobian up to floating-point rounding:

* ``loop``: one ``torch.autograd.grad`` per task;
* ``batched``: one ``torch.autograd.grad`` over all tasks with ``is_grads_batched=True`` (the T
  backward passes vectorised with ``vmap``);
* ``auto`` (default): ``batched`` on a GPU, and on a CPU when the trunk is dense (no shared
  parameter with more than two dimensions); ``loop`` on a CPU for convolutional trunks. This is
  the faster of the two in ``benchmarks/methods_scaling.py`` (its ``engines`` section, with
  ``head_inputs``; the measured times are in the README and
  ``benchmarks/results/methods_scaling.json``).

When the trainer passes ``head_inputs`` (hard parameter sharing: head i reads row i of an
expanded ``[T, *Z.shape]`` view of the shared representation ``Z``,
:meth:`~scalarize.models.MultiTaskModel.forward_with_head_inputs`), every loss reaches the shared
parameters only through ``Z``, and per-task gradients split in two: **one** backward pass of
``Σ_i L_i`` through the heads gives every task's gradient on ``Z`` (row i of the gradient on
``head_inputs`` is task i's alone) and on its own head; then
the engine takes the T vector-Jacobian products ``∂Z/∂θ · ∂L_i/∂Z`` through the trunk alone. A
method that weights the losses afterwards (:meth:`StepContext.backward_weighted`: MGDA-UB,
GradNorm) reuses that pass and takes a single trunk backward of ``Σ_i w_i ∂L_i/∂Z``, so it costs
what a uniform step costs plus what it measures.

Without ``head_inputs``, each task's backward starts from that task's own loss, not from row i of
the ``[T]`` vector: a row's backward would also send zero gradients through every other task's
head (T² head backwards in all). The context finds the task losses as the inputs of the ``torch.stack`` that
built the vector (``losses.grad_fn``), or takes them as a list (``losses=[l_1, ..., l_T]``);
other ``[T]`` tensors (e.g. MDL's per-domain means) are differentiated row by row.

**Across ranks** (data-parallel training, ``scalarize.train.distributed``): the trainer passes a
``reducer`` (sums over the ranks of a process group) and, on every rank, the losses of its shard
of the global batch scaled so that their **mean over the ranks is the global batch's loss**. The
context then hands methods already-reduced quantities, so that N ranks at batch B/N make the
update one process makes at batch B, and no method knows about ranks:

* ``losses``: the global values (one all-reduce of T numbers); their graph is this rank's, so a
  backward from any function of them sends this rank's share of the gradient;
* ``.grad`` after :meth:`backward`, :meth:`backward_weighted`, ...: the global gradient (one
  all-reduce of every parameter's gradient, as DDP does, after the local backward);
* :meth:`shared_jacobian` and :meth:`task_gradients`: means over the ranks (one all-reduce of the
  ``[T, n]`` Jacobian and the heads' gradients); :meth:`gradients_on` a parameter likewise;
* per-sample quantities (gradients on the shared representation, whose rows are this rank's
  samples) stay sharded, scaled to be this rank's rows of the global batch's gradient; they are
  reduced by :meth:`sample_gramian`, :meth:`sample_norms` (sums over the global batch) and
  :meth:`representation_products` (a parameter's gradient, summed over the ranks);
* :meth:`recompute_losses` and :meth:`independent_jacobians`: global, like the step's own.

Every quantity a method writes from reduced ones (``set_shared_gradient``, task-specific
gradients, a method's own ``.grad``) is the same on every rank, so the ranks' parameters stay equal.

**Where the code lives** (``scalarize.methods.gradients``): the context holds the step's data and
caches and delegates the computing: the engines to :mod:`~scalarize.methods.gradients.loop` and
:mod:`~scalarize.methods.gradients.batched` (what an engine is:
:mod:`~scalarize.methods.gradients.engine`), the split at the representation to
:mod:`~scalarize.methods.gradients.heads`, the loss scale to
:mod:`~scalarize.methods.gradients.scale` and the reductions across ranks to
:mod:`~scalarize.methods.gradients.reduction`.

torchjd's Gramian engine (``torchjd.autogram``) is not offered: it needs hooks on the trunk before
the forward pass, serves only methods whose weights depend on the Gramian alone, and on these
models it was slower than either engine here and no lighter in memory than ``loop`` (see the
benchmark's ``engines`` section).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge

from scalarize.methods.gradients import (
    GRADIENT_ENGINES,
    GRADIENT_SPACES,
    build_engine,
    build_space,
    resolve_gradient_engine,
)
from scalarize.methods.gradients import reduction as ranks
from scalarize.methods.gradients import scale as scaling
from scalarize.methods.gradients.engine import GradientEngine, Own, Rows, TaskLosses, task_outputs
from scalarize.methods.gradients.heads import catch_head_gradients, heads_backward
from scalarize.methods.gradients.reduction import Reducer, mean_over_ranks

__all__ = [
    "GRADIENT_ENGINES",
    "GRADIENT_SPACES",
    "Reducer",
    "StepContext",
    "mean_over_ranks",
    "resolve_gradient_engine",
    "task_outputs",
]


class StepContext:
    """One optimisation step as seen by a :class:`~scalarize.methods.base.Method`.

    Args:
        losses: ``[T]`` task losses, attached to the graph (best a ``torch.stack`` of the task
            losses), or the list of the T scalar task losses.
        features: the shared representation (output of the trunk) the heads read, or ``None``.
        shared_params: parameters every task's loss reaches (the trunk).
        task_params: per task, the parameters only that task's loss reaches (its head).
        batch_fractions: MDL only, ``[D]`` share of the batch drawn from each domain.
        recompute_losses: returns the ``[T]`` losses of the same batch under the current
            parameters, without a graph (for methods that look at the effect of a step).
        step: global step index; epoch: epoch index.
        gradient_engine: how per-task gradients are computed: ``auto``, ``loop`` or ``batched``.
        head_inputs: ``[T, *features.shape]``, an expanded view of ``features`` whose row i is
            what head i read, such that task i's loss reaches the shared parameters only through
            that row (see the module docstring); ``None`` when the model is not built that way.
        independent_losses: draws a new batch, independent of this step's, and returns its
            ``[T]`` task losses under the current parameters, with their graph (for methods
            that declare ``INDEPENDENT_BATCHES``: :meth:`independent_jacobians`).
        loss_scale: fp16's loss scale ``s`` (``None``: no scaling). Every backward pass is seeded
            with ``s`` and every gradient divided by ``s`` as it is produced, so methods see true
            gradients and ``.grad`` holds true gradients (``scalarize.train.precision``).
        params: every trainable parameter a backward may reach (model and method), needed with
            ``loss_scale`` and ``reducer``; default the shared and task parameters.
        reducer: data-parallel training: sums over the ranks; ``losses`` are then this rank's
            shard's losses scaled so that their mean over the ranks is the global batch's loss
            (see the module docstring). ``None``: one process.
        gradient_space: where :meth:`shared_jacobian` takes the per-task gradients and where
            :meth:`set_shared_gradient` sends the direction: ``parameters`` (the shared
            parameters) or ``representation`` (the shared representation, the direction then
            backpropagated through the trunk; :mod:`scalarize.methods.gradients.representation`).
            A method asks for its space with :meth:`in_gradient_space`.
    """

    def __init__(
        self,
        losses: Tensor | Sequence[Tensor],
        *,
        features: Tensor | None,
        shared_params: Sequence[nn.Parameter],
        task_params: Sequence[Sequence[nn.Parameter]],
        batch_fractions: Tensor | None = None,
        recompute_losses: Callable[[], Tensor] | None = None,
        step: int = 0,
        epoch: int = 0,
        gradient_engine: str = "auto",
        head_inputs: Tensor | None = None,
        independent_losses: Callable[[], Tensor | Sequence[Tensor]] | None = None,
        loss_scale: float | None = None,
        params: Sequence[nn.Parameter] | None = None,
        reducer: Reducer | None = None,
        gradient_space: str = "parameters",
    ) -> None:
        self._outputs: Sequence[Tensor | GradientEdge] | None
        if isinstance(losses, Tensor):
            self.losses = losses
            self._outputs = task_outputs(losses)
        else:
            self._outputs = list(losses)
            self.losses = torch.stack(self._outputs)  # type: ignore[arg-type]
        self.reducer = ranks.active(reducer)
        self.losses = ranks.global_losses(self.reducer, self.losses)  # the global values, this rank's graph
        self.features = features
        self.shared_params = list(shared_params)
        self.task_params = [list(p) for p in task_params]
        self.batch_fractions = batch_fractions
        self._recompute_losses = recompute_losses
        self.step = step
        self.epoch = epoch
        self.gradient_engine = resolve_gradient_engine(gradient_engine, self.shared_params)
        self._task_grads: Own | None = None
        self._jacobian: Tensor | None = None
        if head_inputs is not None and (
            features is None or head_inputs.shape != (self.losses.numel(), *features.shape)
        ):
            raise ValueError("head_inputs: needs features and a [T, *features.shape] tensor (T task losses)")
        self.head_inputs = head_inputs
        self._head_pass: tuple[Tensor, Own] | None = None
        self._independent_losses = independent_losses
        self.loss_scale = loss_scale
        self._params = (
            list(params)
            if params is not None
            else [*self.shared_params, *(p for group in self.task_params for p in group)]
        )
        self._shared: list[nn.Parameter] | None = None  # the trunk's parameters, in a view of another space
        self.gradient_space = "parameters"
        if gradient_space != "parameters":
            view = self.in_gradient_space(gradient_space)
            self.__dict__.update(view.__dict__)

    def in_gradient_space(self, space: str) -> StepContext:
        """This step with per-task gradients taken in ``space`` (``GRADIENT_SPACES``): itself when
        it is already there, else a view sharing the step's data. In the ``representation`` view,
        :meth:`shared_jacobian` is ``[T, m]`` on the flattened representation, :attr:`shared_params`
        is ``[features]`` (the shared tensor the columns are), :meth:`set_shared_gradient`
        backpropagates a direction on it through the trunk, and :meth:`task_gradients` are the
        heads' from the same passes."""
        if space == self.gradient_space:
            return self
        target = build_space(space)
        view = copy.copy(self)
        view.gradient_space = space
        view._shared = self._trunk_params
        view._jacobian, view._task_grads = None, None
        view.shared_params = target.tensors(view, view._trunk_params)  # type: ignore[assignment]
        return view

    @property
    def _trunk_params(self) -> list[nn.Parameter]:
        """The shared parameters (the trunk's), in any space."""
        return self._shared if self._shared is not None else self.shared_params

    # -- what the gradient layer is handed (scalarize.methods.gradients) ---------------------------
    def _autograd(
        self, outputs: scaling.Outputs, inputs: Sequence[Tensor], grad_outputs: scaling.Seeds = None, **options: Any
    ) -> tuple[Tensor | None, ...]:
        """``torch.autograd.grad`` seeded with the loss scale and unscaled on the way out."""
        return scaling.grad(self.loss_scale, self.losses, outputs, inputs, grad_outputs, **options)

    @property
    def _engine(self) -> GradientEngine:
        """The context's engine (read at each use: ``gradient_engine`` and ``loss_scale`` may be set)."""
        return build_engine(self.gradient_engine, self._autograd)

    def _task_losses(self) -> TaskLosses:
        return TaskLosses(self.losses, self._outputs)

    def _own_params(self, i: int) -> list[nn.Parameter]:
        return self.task_params[i] if i < len(self.task_params) else []  # MDL: no heads

    def _all_own(self) -> list[list[nn.Parameter]]:
        return [self._own_params(i) for i in range(self.losses.numel())]

    # -- backward passes into .grad ------------------------------------------------------------
    def _backward(self, output: Tensor, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        """``output.backward(gradient)`` into ``.grad``; with a loss scale, the true gradients.
        Across ranks, ``.grad`` is then the global gradient."""
        self._local_backward(output, gradient, retain_graph)
        ranks.parameter_gradients(self.reducer, self._params)

    def _local_backward(self, output: Tensor, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        scaling.backward(self.loss_scale, self.losses, output, self._params, gradient, retain_graph)

    # -- other batches -----------------------------------------------------------------------
    @property
    def has_independent_batches(self) -> bool:
        """Whether :meth:`independent_jacobians` can draw batches other than this step's."""
        return self._independent_losses is not None

    def independent_jacobians(self, count: int) -> list[Tensor]:
        """``count`` Jacobians ``[T, n]`` on the shared parameters, each from a newly drawn,
        independent batch at the current parameters (by the context's engine). Without
        ``independent_losses``, each is this step's own :meth:`shared_jacobian` (callers say
        what that costs them in bias)."""
        if self.gradient_space != "parameters":
            raise RuntimeError(
                f"independent batches' Jacobians are on the shared parameters, not in the {self.gradient_space} space"
            )
        if self._independent_losses is None:
            return [self.shared_jacobian() for _ in range(count)]
        out = []
        for _ in range(count):
            other = StepContext(
                self._independent_losses(),
                features=None,
                shared_params=self.shared_params,
                task_params=[[] for _ in range(self.losses.numel())],
                gradient_engine=self.gradient_engine,
                loss_scale=self.loss_scale,
                reducer=self.reducer,
            )
            out.append(other.shared_jacobian().detach())
        return out

    # -- plain backward ----------------------------------------------------------------------
    def backward(self, loss: Tensor) -> None:
        """Backpropagates one scalar into every parameter it reaches."""
        self._backward(loss)

    def backward_weighted(self, weights: Tensor) -> None:
        """Backpropagates ``Σ_i w_i L_i`` (``weights`` held constant) into every parameter.

        With ``head_inputs``, when per-task gradients on the representation were already taken,
        reuses that pass through the heads: head i gets ``w_i ∇L_i``, and the trunk one backward
        of ``Σ_i w_i ∂L_i/∂Z`` (no second pass through the heads).
        """
        weights = weights.detach().to(self.losses)
        if self.head_inputs is None or self._head_pass is None:
            self.backward((weights * self.losses).sum())
            return
        assert self.features is not None
        feature_grads, task_grads = self._head_pass  # this rank's: reduced with the trunk's below
        self._accumulate_task_grads(task_grads, weights)
        self._backward(self.features, torch.tensordot(weights.to(feature_grads), feature_grads, dims=1))

    def backward_weighted_with_representation_gradients(self, weights: Tensor) -> Tensor:
        """Backpropagates ``Σ_i w_i L_i`` and returns ``[T, *Z.shape]``: the gradients
        ``w_i ∂L_i/∂Z`` each task sent into the shared representation on the way (across ranks,
        this rank's rows of the global batch's: reduce with :meth:`sample_norms`,
        :meth:`sample_gramian` or :meth:`representation_products`).

        With ``head_inputs`` this is the one backward pass of a uniform step: a hook on
        ``head_inputs`` catches their gradient as it goes by (the graph is kept, for
        :meth:`representation_products`). Without, one pass per task first.
        """
        weights = weights.detach().to(self.losses)
        if self.head_inputs is None:
            assert self.features is not None
            weighted = self.gradients_on(self.features) * weights.view(-1, *[1] * self.features.dim())
            self._backward((weights * self.losses).sum(), retain_graph=True)
            return weighted
        caught = catch_head_gradients(
            self.head_inputs, lambda: self._backward((weights * self.losses).sum(), retain_graph=True)
        )
        if caught is None:
            return torch.zeros_like(self.head_inputs)
        return ranks.global_rows(self.reducer, scaling.unscale(self.loss_scale, caught))

    def _is_parameter(self, tensor: Tensor) -> bool:
        """Whether ``tensor`` is a parameter (the same on every rank), not a per-sample result."""
        return tensor.is_leaf or any(tensor is p for p in self._params)

    def sample_gramian(self, per_sample: Tensor) -> Tensor:
        """``[T, T]`` in float64: the Gramian of the rows of ``[T, ...]`` per-sample gradients
        (e.g. :meth:`feature_jacobian`), over the global batch (summed over the ranks)."""
        rows = per_sample.detach().flatten(1).double()
        return ranks.total(self.reducer, rows @ rows.T)

    def sample_norms(self, per_sample: Tensor) -> Tensor:
        """``[T]``: the norm of each row of ``[T, ...]`` per-sample gradients over the global batch."""
        return ranks.total(self.reducer, per_sample.flatten(1).pow(2).sum(1)).sqrt()

    def feature_gramian(self) -> Tensor:
        """``[T, T]`` (float64): the Gramian of the losses' gradients on the shared
        representation over the global batch (:meth:`sample_gramian` of :meth:`feature_jacobian`)."""
        return self.sample_gramian(self.feature_jacobian())

    def representation_products(self, tensor: Tensor, representation_gradients: Tensor) -> Tensor:
        """``[T, *tensor.shape]``: row i is the gradient on ``tensor`` (a shared parameter or
        intermediate result) that the gradient ``representation_gradients[i]`` on the shared
        representation makes, by the context's engine (vector-Jacobian products through the
        trunk only). Across ranks, for a parameter, the sum of every rank's (the global batch's
        gradient, given each rank's rows of it)."""
        (grads,) = self._trunk_vjp([tensor], representation_gradients)
        if grads is None:
            grads = tensor.new_zeros(len(representation_gradients), *tensor.shape)
        if self._is_parameter(tensor):
            grads = ranks.total(self.reducer, grads)
        return grads

    def _heads_backward(self) -> tuple[Tensor, Own]:
        """One backward of ``Σ_i L_i`` through the heads only (cached): ``[T, *Z.shape]``
        per-task gradients on the shared representation, and each task's on its own head."""
        if self._head_pass is None:
            assert self.head_inputs is not None
            self._head_pass = heads_backward(self._autograd, self.losses, self.head_inputs, self._all_own())
        return self._head_pass

    def _trunk_vjp(self, inputs: Sequence[Tensor], feature_grads: Tensor) -> tuple[Tensor | None, ...]:
        """``[T, ...]`` per input: the trunk's vector-Jacobian products with each task's
        gradient on the representation, by the context's engine."""
        assert self.features is not None
        return self._engine.products(self.features, inputs, feature_grads)

    # -- per-task gradients on the shared parameters ------------------------------------------
    def shared_jacobian(self) -> Tensor:
        """``[T, n]``: row i is the gradient of loss i on the flattened shared parameters (in the
        ``representation`` space: on the flattened shared representation, :meth:`in_gradient_space`).

        Computed once by the context's gradient engine; the same passes yield each task's
        gradient on its own parameters, kept for :meth:`backward_task_specific`.
        """
        if self._jacobian is None:
            self._jacobian, self._task_grads = build_space(self.gradient_space).jacobian(self, self._trunk_params)
        return self._jacobian

    def _per_task(self, inputs: Sequence[Tensor]) -> tuple[Rows, Own]:
        """Every task's gradients on ``inputs`` (this rank's, ``[T, *x.shape]`` each) and on its
        own head: through the heads' one pass and the trunk's products with ``head_inputs``
        (``inputs`` are then the representation or trunk parameters), else by the engine."""
        if self.head_inputs is not None:
            feature_grads, task_grads = self._heads_backward()
            if len(inputs) == 1 and inputs[0] is self.features:
                return (feature_grads,), task_grads
            return self._trunk_vjp(inputs, feature_grads), task_grads
        return self._engine.task_gradients(self._task_losses(), inputs, self._all_own())

    def backward_task_specific(self, weights: Tensor | None = None) -> None:
        """Accumulates each task's gradient on its own parameters (optionally scaled)."""
        if self._task_grads is None:
            self.shared_jacobian()
        assert self._task_grads is not None
        self._accumulate_task_grads(self._task_grads, weights)

    def _accumulate_task_grads(self, task_grads: Sequence[tuple[Tensor | None, ...]], weights: Tensor | None) -> None:
        """Adds task i's head gradients (times ``weights[i]``) to ``.grad``, in fused operations."""
        params, grads, owners = [], [], []
        for i, task in enumerate(task_grads):
            for param, grad in zip(self._own_params(i), task):
                if grad is not None:
                    params.append(param)
                    grads.append(grad)
                    owners.append(i)
        if not grads:
            return
        if weights is None:
            scaled = [g.clone() for g in grads]
        else:
            scales = weights.detach().to(grads[0]).unbind()
            scaled = list(torch._foreach_mul(grads, [scales[i] for i in owners]))
        for param, grad in zip(params, scaled):
            param.grad = grad if param.grad is None else param.grad + grad

    def task_gradients(self) -> list[tuple[Tensor | None, ...]]:
        """Per task ``i``, its loss's gradient on ``task_params[i]`` (``None`` where unused).

        Computed by the same passes as :meth:`shared_jacobian` (for methods that treat the
        task-specific gradients themselves, e.g. an optimizer keeping per-task moments).
        """
        if self._task_grads is None:
            self.shared_jacobian()
        assert self._task_grads is not None
        return list(self._task_grads)

    def set_shared_gradient(self, direction: Tensor) -> None:
        """Writes a flat ``[n]`` update direction into the shared parameters' ``.grad`` (in the
        ``representation`` space, ``[m]`` on the representation, backpropagated through the trunk)."""
        build_space(self.gradient_space).apply(self, self._trunk_params, direction)

    # -- gradients on the shared representation ---------------------------------------------
    def feature_jacobian(self) -> Tensor:
        """``[T, m]``: gradient of each loss on the (flattened) shared representation (across
        ranks, on this rank's samples: reduce with :meth:`sample_gramian` or
        :meth:`sample_norms`)."""
        if self.features is None:
            raise RuntimeError("this model exposes no shared representation")
        return self.gradients_on(self.features).flatten(1)

    def gradients_on(self, tensor: Tensor) -> Tensor:
        """``[T, *tensor.shape]``: the gradient of each loss on ``tensor`` (a parameter or an
        intermediate result the losses reach), by the context's engine; zeros where a loss does
        not reach it. Across ranks: for a parameter, the global batch's (the mean over the
        ranks); for a per-sample result, this rank's rows of the global batch's."""
        grads = self._local_gradients_on(tensor)
        if self.reducer is None:
            return grads
        if self._is_parameter(tensor):
            reduced = mean_over_ranks(self.reducer, [grads], [grads])[0]
            assert reduced is not None
            return reduced
        return ranks.global_rows(self.reducer, grads)

    def _local_gradients_on(self, tensor: Tensor) -> Tensor:
        num_tasks = self.losses.numel()
        if self.head_inputs is not None and (tensor is self.features or any(tensor is p for p in self.shared_params)):
            feature_grads, _ = self._heads_backward()
            if tensor is self.features:
                return feature_grads
            (grads,) = self._trunk_vjp([tensor], feature_grads)
        else:
            (grads,), _ = self._engine.task_gradients(self._task_losses(), [tensor])
        return grads if grads is not None else tensor.new_zeros(num_tasks, *tensor.shape)

    def recompute_losses(self) -> Tensor:
        if self._recompute_losses is None:
            raise RuntimeError("this trainer cannot recompute losses")
        with torch.no_grad():
            losses = self._recompute_losses()
        return ranks.global_values(self.reducer, losses)
