"""GradNorm: gradient normalisation for adaptive loss balancing.

Chen, Badrinarayanan, Lee & Rabinovich, "GradNorm: Gradient Normalization for Adaptive Loss
Balancing in Deep Multitask Networks", ICML 2018.

Learnable weights ``w`` (``nn.Parameter``, initialised to 1, renormalised to sum to ``T``). Each
step, on the last shared layer's weight ``W``:

    G_i = ‖∇_W w_i L_i‖ = w_i ‖∇_W L_i‖,      Ḡ = mean_i G_i,
    r_i = (L_i / L_i(0)) / mean_j (L_j / L_j(0)),
    L_grad = Σ_i |G_i − Ḡ · r_i^α|          (the target Ḡ r_i^α held constant)

The model's gradient is that of ``Σ_i w_i L_i`` (``w`` held constant); ``w``'s gradient is that
of ``L_grad`` alone, ``∂L_grad/∂w_i = sign(G_i − Ḡ r_i^α) ‖∇_W L_i‖`` (written out: no autograd
call). The trainer's optimizer steps both (``method.parameters()`` is in it), then
:meth:`after_step` renormalises ``w`` to sum to ``T`` (clamping it to stay positive). ``L_i(0)``
are the losses of the first step seen.

"Last shared layer": the last tensor of ``context.shared_params`` with at least two dimensions
(the weight of the trunk's last layer; biases are skipped), or the last tensor if there is none.
With the trainer's ``head_inputs`` (methods/context.py), the model's backward pass of
``Σ_i w_i L_i`` is the only pass through the model: the gradients ``w_i ∇_Z L_i`` reaching the
shared representation are caught on the way, and the per-task gradients on ``W`` are their
vector-Jacobian products back to ``W`` only (one per task, or one vectorised with the ``batched``
engine). Without them, one extra partial backward per task to that layer.

Hyperparameters: ``alpha`` (asymmetry, default 1.5, the paper's value for NYUv2; ≥ 0);
``layer``: where the norms are taken, ``"last_shared"`` (default: ``W`` as above, the paper's
choice) or ``"representation"`` (the shared representation ``Z`` the heads read, as LibMTL's
``rep_grad`` option does: no products back to ``W``, the cheapest; needs ``features``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from scalarize.methods._common import check_choice, check_real, same_device
from scalarize.methods.base import AFTER_STEP, LOSSES, PERMUTATION_EQUIVARIANT, SHARED_GRADIENTS, Method, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register

_MIN_WEIGHT = 1e-6
LAYERS = ("last_shared", "representation")


def last_shared_layer(params: list[nn.Parameter]) -> nn.Parameter:
    """The last shared tensor with ≥ 2 dimensions (a layer's weight), else the last one."""
    if not params:
        raise RuntimeError("method gradnorm: this model has no shared parameters")
    matrices = [p for p in params if p.dim() >= 2]
    return matrices[-1] if matrices else params[-1]


@register
class GradNorm(Method):
    """Weights learned so that the tasks' gradient norms on the last shared layer train at
    rates set by their relative inverse training rates."""

    name = "gradnorm"
    needs = frozenset({LOSSES, SHARED_GRADIENTS, AFTER_STEP})
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, alpha: float = 1.5, layer: str = "last_shared") -> None:
        super().__init__()
        self.alpha = check_real(self.name, "alpha", alpha, low=0)
        self.layer = check_choice(self.name, "layer", layer, LAYERS)
        self._normalised: Tensor | None = None  # w when last renormalised
        self.loss_weights = nn.Parameter(torch.ones(0))
        self.register_buffer("initial_losses", torch.zeros(0))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.loss_weights = nn.Parameter(torch.ones(self.num_tasks))
            self.initial_losses = torch.zeros(self.num_tasks)
            self.initialised = torch.zeros((), dtype=torch.bool)

    @torch.no_grad()
    def renormalise(self) -> None:
        """``w ← T · max(w, ε) / Σ max(w, ε)``, unless ``w`` is unchanged since it was last
        renormalised (renormalising again is not a bitwise no-op). Unchanged is told by value, not
        by the tensor's version counter: fused optimizers update parameters in place without
        bumping it."""
        w = self.loss_weights
        last = self._normalised
        if last is not None and last.shape == w.shape and last.device == w.device and torch.equal(last, w):
            return
        w.clamp_(min=_MIN_WEIGHT)
        w.mul_(self.num_tasks / w.sum())
        self._normalised = w.detach().clone()

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        # saved after a step's renormalisation (or before the first step): normalised already
        self._normalised = self.loss_weights.detach().clone()

    def combine(self, losses: Tensor) -> Tensor:
        self.step_dtype = losses.dtype
        return (self.loss_weights.detach().to(losses) * losses).sum()

    def backward(self, context: StepContext) -> None:
        self.renormalise()  # a no-op after after_step; keeps user loops that skip it correct
        losses = context.losses
        self.step_dtype = losses.dtype
        detached = losses.detach().to(self.initial_losses)
        if not bool(self.initialised):
            self.initial_losses = detached.clone()
            self.initialised = torch.ones((), dtype=torch.bool)
        w = self.loss_weights.detach()
        g = self._weighted_norms(context, w)  # G_i, while the model's gradient is taken
        norms = g / w.clamp(min=_MIN_WEIGHT)  # ‖∇_W L_i‖
        ratios = detached / self.initial_losses.clamp(min=1e-12)
        target = g.mean() * (ratios / ratios.mean()) ** self.alpha
        grad_w = (g - target).sign() * norms  # ∂/∂w_i Σ_j |w_j n_j − target_j|, target held
        weights = self.loss_weights
        weights.grad = grad_w if weights.grad is None else weights.grad + grad_w

    def _weighted_norms(self, context: StepContext, w: Tensor) -> Tensor:
        """Backpropagates ``Σ_i w_i L_i`` into the model and returns ``G_i = ‖∇_W w_i L_i‖``."""
        if self.layer == "representation" or context.head_inputs is not None:
            # one backward; the gradients w_i ∇_Z L_i are caught on the way
            weighted = context.backward_weighted_with_representation_gradients(w)
            if self.layer == "last_shared":
                weighted = context.representation_products(last_shared_layer(context.shared_params), weighted)
                norms: Tensor = weighted.flatten(1).norm(dim=1).to(w)
                return norms
            sample_norms: Tensor = context.sample_norms(weighted).to(w)
            return sample_norms  # over the whole batch (every rank's samples)
        per_task = context.gradients_on(last_shared_layer(context.shared_params))
        context.backward_weighted(w)
        weighted_norms: Tensor = w * per_task.flatten(1).norm(dim=1).to(w)
        return weighted_norms

    def after_step(self, context: StepContext) -> None:
        self.renormalise()

    def current_weights(self) -> Tensor | None:
        return self.reported(self.loss_weights.detach())
