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

torchjd's Gramian engine (``torchjd.autogram``) is not offered: it needs hooks on the trunk before
the forward pass, serves only methods whose weights depend on the Gramian alone, and on these
models it was slower than either engine here and no lighter in memory than ``loop`` (see the
benchmark's ``engines`` section).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import torch
from torch import Tensor, nn
from torch.autograd.graph import GradientEdge

#: The values of ``gradient_engine`` (see the module docstring).
GRADIENT_ENGINES = ("auto", "loop", "batched")


def resolve_gradient_engine(engine: str, shared_params: Sequence[nn.Parameter] = ()) -> str:
    """``loop`` or ``batched`` for ``engine``. ``auto``: ``batched`` when the shared parameters
    are on a GPU or are all vectors and matrices (a dense trunk), else ``loop`` (a convolutional
    trunk on a CPU, or no parameters); see the module docstring."""
    if engine not in GRADIENT_ENGINES:
        raise ValueError(f"gradient_engine: must be one of {', '.join(GRADIENT_ENGINES)}, got {engine!r}")
    if engine != "auto":
        return engine
    if not shared_params:
        return "loop"
    on_gpu = shared_params[0].device.type == "cuda"
    dense = all(p.dim() <= 2 for p in shared_params)
    return "batched" if on_gpu or dense else "loop"


class Reducer(Protocol):
    """Sums over the ranks of data-parallel training (``scalarize.train.distributed``)."""

    world: int

    def sum(self, tensor: Tensor) -> Tensor:
        """The sum of ``tensor`` over the ranks (a new tensor; ``tensor`` is left alone)."""
        ...


def mean_over_ranks(reducer: Reducer, values: Sequence[Tensor | None], like: Sequence[Tensor]) -> list[Tensor | None]:
    """The mean over the ranks of each of ``values`` (``None``: zeros shaped like ``like[k]``),
    in one reduction per device and dtype; ``None`` where no rank had a value."""
    out: list[Tensor | None] = [None] * len(values)
    groups: dict[tuple, list[int]] = {}
    for k, (value, ref) in enumerate(zip(values, like)):
        source = ref if value is None else value
        groups.setdefault((source.device, source.dtype), []).append(k)
    for (device, dtype), members in groups.items():
        parts = [
            (like[k].new_zeros(like[k].numel(), dtype=dtype, device=device) if values[k] is None
             else values[k].detach().reshape(-1))
            for k in members
        ]
        present = torch.tensor([values[k] is not None for k in members], dtype=dtype, device=device)
        total = reducer.sum(torch.cat([*parts, present]))
        offset = 0
        for j, k in enumerate(members):
            size = parts[j].numel()
            if total[total.numel() - len(members) + j] > 0:
                shape = like[k].shape if values[k] is None else values[k].shape
                out[k] = (total[offset : offset + size] / reducer.world).view(shape)
            offset += size
    return out


def task_outputs(losses: Tensor) -> list[Tensor | GradientEdge] | None:
    """The T task losses as outputs of their own, if ``losses`` is a ``torch.stack`` of scalars.

    Returns gradient edges (which ``torch.autograd.grad`` differentiates like tensors), or
    ``None`` when ``losses`` was built another way.
    """
    node = losses.grad_fn
    if node is None or losses.dim() != 1 or node.name() != "StackBackward0":
        return None
    edges = node.next_functions
    if len(edges) != losses.numel():
        return None
    out: list[Tensor | GradientEdge] = []
    for function, index in edges:
        if function is None or "AccumulateGrad" in function.name():
            return None  # a loss without a graph of its own
        out.append(GradientEdge(function, index))
    return out


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
    ) -> None:
        if isinstance(losses, Tensor):
            self.losses = losses
            self._outputs = task_outputs(losses)
        else:
            self._outputs = list(losses)
            self.losses = torch.stack(self._outputs)
        self.reducer = reducer if reducer is not None and reducer.world > 1 else None
        if self.reducer is not None:  # the global values, with this rank's graph
            local = self.losses
            value = self.reducer.sum(local.detach()) / self.reducer.world
            self.losses = value + (local - local.detach())
        self.features = features
        self.shared_params = list(shared_params)
        self.task_params = [list(p) for p in task_params]
        self.batch_fractions = batch_fractions
        self._recompute_losses = recompute_losses
        self.step = step
        self.epoch = epoch
        self.gradient_engine = resolve_gradient_engine(gradient_engine, self.shared_params)
        self._task_grads: list[tuple[Tensor | None, ...]] | None = None
        self._jacobian: Tensor | None = None
        if head_inputs is not None and (features is None or head_inputs.shape != (self.losses.numel(), *features.shape)):
            raise ValueError("head_inputs: needs features and a [T, *features.shape] tensor (T task losses)")
        self.head_inputs = head_inputs
        self._head_pass: tuple[Tensor, list[tuple[Tensor | None, ...]]] | None = None
        self._independent_losses = independent_losses
        self.loss_scale = loss_scale
        self._params = list(params) if params is not None else [
            *self.shared_params, *(p for group in self.task_params for p in group)]

    # -- autograd, with fp16's loss scale ---------------------------------------------------------
    def _autograd(self, outputs, inputs, grad_outputs=None, **options) -> tuple[Tensor | None, ...]:
        """``torch.autograd.grad`` seeded with the loss scale and unscaled on the way out."""
        if self.loss_scale is None:
            return torch.autograd.grad(outputs, inputs, grad_outputs=grad_outputs, **options)
        # a GradientEdge is a named tuple: one output, not a sequence of them
        single = not isinstance(outputs, (list, tuple)) or isinstance(outputs, GradientEdge)
        outputs = [outputs] if single else list(outputs)
        if grad_outputs is None:
            grad_outputs = [torch.ones_like(o) if isinstance(o, Tensor) else None for o in outputs]
        elif not isinstance(grad_outputs, (list, tuple)):
            grad_outputs = [grad_outputs]
        seeds = [None if g is None else g * self.loss_scale for g in grad_outputs]
        if any(g is None for g in seeds):  # gradient edges: seed with the scale itself
            seeds = [torch.full((), self.loss_scale, dtype=self.losses.dtype, device=self.losses.device)
                     if g is None else g for g in seeds]
        grads = torch.autograd.grad(outputs, inputs, grad_outputs=seeds, **options)
        return tuple(None if g is None else g / self.loss_scale for g in grads)

    def _reduce_grads(self) -> None:
        """Across ranks: every parameter's ``.grad`` becomes its mean over the ranks (what DDP's
        all-reduce does), after this rank's backward added its share."""
        if self.reducer is None:
            return
        params = [p for p in self._params if p.requires_grad]
        for param, grad in zip(params, mean_over_ranks(self.reducer, [p.grad for p in params], params)):
            param.grad = None if grad is None else grad.to(param.dtype)

    def _backward(self, output: Tensor, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        """``output.backward(gradient)`` into ``.grad``; with a loss scale, the true gradients.
        Across ranks, ``.grad`` is then the global gradient."""
        self._local_backward(output, gradient, retain_graph)
        self._reduce_grads()

    def _local_backward(self, output: Tensor, gradient: Tensor | None = None, retain_graph: bool = False) -> None:
        if self.loss_scale is None:
            output.backward(gradient, retain_graph=retain_graph)
            return
        params = [p for p in self._params if p.requires_grad]
        grads = self._autograd([output], params, None if gradient is None else [gradient],
                               retain_graph=retain_graph, allow_unused=True)
        for param, grad in zip(params, grads):
            if grad is not None:
                param.grad = grad if param.grad is None else param.grad + grad

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
        if self._independent_losses is None:
            return [self.shared_jacobian() for _ in range(count)]
        out = []
        for _ in range(count):
            other = StepContext(
                self._independent_losses(), features=None, shared_params=self.shared_params,
                task_params=[[] for _ in range(self.losses.numel())], gradient_engine=self.gradient_engine,
                loss_scale=self.loss_scale, reducer=self.reducer,
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
            weighted = self.gradients_on(self.features) * weights.view(-1, *[1] * self.features.dim())
            self._backward((weights * self.losses).sum(), retain_graph=True)
            return weighted
        caught: list[Tensor] = []
        handle = self.head_inputs.register_hook(caught.append)
        try:
            self._backward((weights * self.losses).sum(), retain_graph=True)
        finally:
            handle.remove()
        if not caught:
            return torch.zeros_like(self.head_inputs)
        return self._global_rows(caught[0] if self.loss_scale is None else caught[0] / self.loss_scale)

    def _global_rows(self, per_sample: Tensor) -> Tensor:
        """This rank's rows of the global batch's gradient on a per-sample tensor, from this
        rank's gradient (whose losses are scaled by the number of ranks)."""
        return per_sample if self.reducer is None else per_sample / self.reducer.world

    def _is_parameter(self, tensor: Tensor) -> bool:
        """Whether ``tensor`` is a parameter (the same on every rank), not a per-sample result."""
        return tensor.is_leaf or any(tensor is p for p in self._params)

    def sample_gramian(self, per_sample: Tensor) -> Tensor:
        """``[T, T]`` in float64: the Gramian of the rows of ``[T, ...]`` per-sample gradients
        (e.g. :meth:`feature_jacobian`), over the global batch (summed over the ranks)."""
        rows = per_sample.detach().flatten(1).double()
        gram = rows @ rows.T
        return gram if self.reducer is None else self.reducer.sum(gram)

    def sample_norms(self, per_sample: Tensor) -> Tensor:
        """``[T]``: the norm of each row of ``[T, ...]`` per-sample gradients over the global batch."""
        squares = per_sample.flatten(1).pow(2).sum(1)
        if self.reducer is not None:
            squares = self.reducer.sum(squares)
        return squares.sqrt()

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
        if self.reducer is not None and self._is_parameter(tensor):
            grads = self.reducer.sum(grads)
        return grads

    def _heads_backward(self) -> tuple[Tensor, list[tuple[Tensor | None, ...]]]:
        """One backward of ``Σ_i L_i`` through the heads only: ``[T, *Z.shape]`` per-task
        gradients on the shared representation, and each task's gradients on its own head."""
        if self._head_pass is None:
            assert self.head_inputs is not None
            num_tasks = self.losses.numel()
            own = [self._own_params(i) for i in range(num_tasks)]
            grads = self._autograd(
                self.losses.sum(), [self.head_inputs, *(p for params in own for p in params)],
                retain_graph=True, allow_unused=True,
            )
            feature_grads = torch.zeros_like(self.head_inputs) if grads[0] is None else grads[0]
            task_grads, offset = [], 1
            for params in own:
                task_grads.append(tuple(grads[offset : offset + len(params)]))
                offset += len(params)
            self._head_pass = feature_grads, task_grads
        return self._head_pass

    def _trunk_vjp(self, inputs: Sequence[Tensor], feature_grads: Tensor) -> tuple[Tensor | None, ...]:
        """``[T, ...]`` per input: the trunk's vector-Jacobian products with each task's
        gradient on the representation, by the context's engine."""
        assert self.features is not None
        if self.gradient_engine == "batched":
            return self._autograd(
                self.features, list(inputs), grad_outputs=feature_grads, retain_graph=True,
                allow_unused=True, is_grads_batched=True,
            )
        per_task = [
            self._autograd(self.features, list(inputs), grad_outputs=g, retain_graph=True, allow_unused=True)
            for g in feature_grads
        ]
        return tuple(
            None if all(row[k] is None for row in per_task)
            else torch.stack([torch.zeros_like(x) if row[k] is None else row[k] for row in per_task])
            for k, x in enumerate(inputs)
        )

    # -- per-task gradients on the shared parameters ------------------------------------------
    def shared_jacobian(self) -> Tensor:
        """``[T, n]``: row i is the gradient of loss i on the flattened shared parameters.

        Computed once by the context's gradient engine; the same passes yield each task's
        gradient on its own parameters, kept for :meth:`backward_task_specific`.
        """
        if self._jacobian is None:
            if not self.shared_params:
                raise RuntimeError("this model has no shared parameters")
            if self.head_inputs is not None:
                jacobian, task_grads = self._split_jacobian()
            elif self.gradient_engine == "batched":
                jacobian, task_grads = self._batched_jacobian()
            else:
                jacobian, task_grads = self._loop_jacobian()
            if self.reducer is not None:  # one all-reduce: the Jacobian and every head's gradients
                own = [self._own_params(i) for i in range(len(task_grads))]
                flat = [g for grads in task_grads for g in grads]
                like = [p for params in own for p in params]
                jacobian, *flat = mean_over_ranks(self.reducer, [jacobian, *flat], [jacobian, *like])
                reduced = iter(flat)
                task_grads = [tuple(next(reduced) for _ in grads) for grads in task_grads]
            self._jacobian, self._task_grads = jacobian, task_grads
        return self._jacobian

    def _own_params(self, i: int) -> list[nn.Parameter]:
        return self.task_params[i] if i < len(self.task_params) else []  # MDL: no heads

    def _loop_jacobian(self) -> tuple[Tensor, list[tuple[Tensor | None, ...]]]:
        rows, task_grads = [], []
        shared = len(self.shared_params)
        for i in range(self.losses.numel()):
            grads = self._grad(i, self.shared_params + self._own_params(i))
            rows.append(_flatten(grads[:shared], self.shared_params))
            task_grads.append(grads[shared:])
        return torch.stack(rows), task_grads

    def _split_jacobian(self) -> tuple[Tensor, list[tuple[Tensor | None, ...]]]:
        feature_grads, task_grads = self._heads_backward()
        grads = self._trunk_vjp(self.shared_params, feature_grads)
        return _flatten_rows(grads, self.shared_params, len(feature_grads)), task_grads

    def _batched_jacobian(self) -> tuple[Tensor, list[tuple[Tensor | None, ...]]]:
        num_tasks = self.losses.numel()
        own = [self._own_params(i) for i in range(num_tasks)]
        inputs = self.shared_params + [p for params in own for p in params]
        grads = self._batched_grad(inputs)
        shared = len(self.shared_params)
        jacobian = _flatten_rows(grads[:shared], self.shared_params, num_tasks)
        task_grads, offset = [], shared
        for i, params in enumerate(own):
            task_grads.append(tuple(None if g is None else g[i] for g in grads[offset : offset + len(params)]))
            offset += len(params)
        return jacobian, task_grads

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
        """Writes a flat ``[n]`` update direction into the shared parameters' ``.grad``."""
        offset = 0
        for param in self.shared_params:
            size = param.numel()
            grad = direction[offset : offset + size].view_as(param).to(param.dtype)
            param.grad = grad.clone() if param.grad is None else param.grad + grad
            offset += size

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
            return mean_over_ranks(self.reducer, [grads], [grads])[0]
        return self._global_rows(grads)

    def _local_gradients_on(self, tensor: Tensor) -> Tensor:
        num_tasks = self.losses.numel()
        if self.head_inputs is not None and (tensor is self.features or any(tensor is p for p in self.shared_params)):
            feature_grads, _ = self._heads_backward()
            if tensor is self.features:
                return feature_grads
            (grads,) = self._trunk_vjp([tensor], feature_grads)
            return grads if grads is not None else tensor.new_zeros(num_tasks, *tensor.shape)
        if self.gradient_engine == "batched":
            (grads,) = self._batched_grad([tensor])
            return grads if grads is not None else tensor.new_zeros(num_tasks, *tensor.shape)
        rows = []
        for i in range(num_tasks):
            (grad,) = self._grad(i, [tensor])
            rows.append(torch.zeros_like(tensor) if grad is None else grad)
        return torch.stack(rows)

    def _grad(self, i: int, inputs: Sequence[Tensor]) -> tuple[Tensor | None, ...]:
        """Gradient of task i's loss on ``inputs`` (``None`` where it does not reach)."""
        if self._outputs is None:
            output, grad_output = self.losses[i], None
        else:
            output, grad_output = self._outputs[i], torch.ones((), dtype=self.losses.dtype, device=self.losses.device)
        return self._autograd(output, list(inputs), grad_outputs=grad_output, retain_graph=True, allow_unused=True)

    def _batched_grad(self, inputs: Sequence[Tensor]) -> tuple[Tensor | None, ...]:
        """``[T, ...]`` per input: every task's gradient at once (``vmap`` over the T rows)."""
        num_tasks = self.losses.numel()
        eye = torch.eye(num_tasks, dtype=self.losses.dtype, device=self.losses.device)
        if self._outputs is None:
            outputs, grad_outputs = [self.losses.reshape(-1)], [eye]
        else:
            outputs, grad_outputs = self._outputs, list(eye.T)
        return self._autograd(
            outputs, list(inputs), grad_outputs=grad_outputs, retain_graph=True,
            allow_unused=True, is_grads_batched=True,
        )

    def recompute_losses(self) -> Tensor:
        if self._recompute_losses is None:
            raise RuntimeError("this trainer cannot recompute losses")
        with torch.no_grad():
            losses = self._recompute_losses()
        if self.reducer is None:
            return losses
        return self.reducer.sum(losses.detach()) / self.reducer.world


def _flatten_rows(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter], rows: int) -> Tensor:
    """``[rows, n]`` from per-parameter ``[rows, *p.shape]`` gradients (zeros where ``None``)."""
    return torch.cat(
        [(g.reshape(rows, -1) if g is not None else p.new_zeros(rows, p.numel())) for g, p in zip(grads, params)],
        dim=1,
    )


def _flatten(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter]) -> Tensor:
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).reshape(-1)
            for g, p in zip(grads, params)
        ]
    )
