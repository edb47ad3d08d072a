"""COSMOS: a whole Pareto front from one preference-conditioned model.

Ruchte & Grabocka, "Scalable Pareto Front Approximation for Deep Multi-Objective Learning", ICDM
2021 (official code: ruchtem/cosmos, ``multi_objective/methods/cosmos/cosmos.py``).

Every step draws a preference ``r ~ Dirichlet(α)`` (the method's own generator); the model takes
``r`` as an input (:class:`~scalarize.models.conditioned.PreferenceConditioned`: ``r`` is appended
to the input, as ``K`` constant image channels or ``K`` features) and the step minimises

    L = Σ_i r_i L_i − λ · cos(r, L)

(the paper's Eq. 5, :class:`torchjd.scalarization.COSMOS`): the linear scalarization for ``r``,
plus a penalty that keeps the loss vector at a small angle to ``r``, which spreads the solutions
along the front. After one training run the model is evaluated at any preference: that is the
front (``scalarize sweep`` with ``method: {name: cosmos}``).

Hyperparameters: ``penalty`` λ ≥ 0 (default 2) and ``alpha`` α > 0 (default 1.2), the official
settings for Multi-MNIST and Multi-Fashion (λ = 8 for Multi-Fashion+MNIST, 3 and α = 1 for CelebA,
0.01 and 0.5 for the fairness data sets); ``seed`` of the preference draws.

Where this differs from the official code: there, images get the preference through a learned
transposed-convolution "upsampler" to the input's size; here it is broadcast as constant channels
(the same information, without the upsampler's parameters). The run's own evaluations (and its
reported point) use the uniform preference.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchjd.scalarization import COSMOS as TorchJDCOSMOS

from scalarize.methods._common import SeededMethod, check_real, global_rng_from, same_device
from scalarize.methods.base import LOSSES, PREFERENCE_INPUT, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register


@register
class Cosmos(SeededMethod):
    """Preference-conditioned training for a one-run front (see the module docstring)."""

    name = "cosmos"
    needs = frozenset({LOSSES, PREFERENCE_INPUT})

    def __init__(self, penalty: float = 2.0, alpha: float = 1.2, seed: int | None = None) -> None:
        super().__init__()
        self.penalty = check_real(self.name, "penalty", penalty, low=0)
        self.alpha = check_real(self.name, "alpha", alpha, low=0, low_open=True)
        self.init_generator(seed)
        self.register_buffer("preference", torch.ones(0))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.preference = torch.full((self.num_tasks,), 1.0 / self.num_tasks)

    def draw_preference(self) -> Tensor:
        """This step's preference ``r ~ Dirichlet(α)`` (the model's input and the loss's weights)."""
        concentration = torch.full((self.num_tasks,), self.alpha, dtype=torch.float64)
        with global_rng_from(self.generator):
            draw = torch.distributions.Dirichlet(concentration).sample()
        self.preference.copy_(draw.to(self.preference))
        return self.preference

    def combine(self, losses: Tensor) -> Tensor:
        self.step_dtype = losses.dtype
        return TorchJDCOSMOS(self.penalty, self.preference.to(losses))(losses)

    def backward(self, context: StepContext) -> None:
        context.backward(self.combine(context.losses))

    def current_weights(self) -> Tensor | None:
        return self.reported(self.preference)
