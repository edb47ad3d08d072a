"""Uncertainty weighting (UW).

Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
Geometry and Semantics", CVPR 2018.

Each task gets a learnable log-variance ``s_i = log σ_i²`` and the model minimises

    L = Σ_i ½ e^{−s_i} L_i + ½ s_i

(the paper's regression form, also torchjd's and LibMTL's; the classification form
``e^{−s_i} L_i + ½ s_i`` is available with ``form="classification"``). The ``s_i`` are
``nn.Parameter`` of the method, created by :meth:`setup`: the trainer puts ``method.parameters()``
in its optimizer, so they are learned jointly with the model (and saved in ``state_dict``).

Hyperparameters: ``init`` (initial ``s_i``, default 0: uniform weights ½; LibMTL uses −0.5),
``form`` ("regression" | "classification", default "regression").

Backed by :class:`torchjd.scalarization.UW` for the regression form.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchjd.scalarization import UW

from scalarize.methods._common import check_choice, check_real, same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, Method, Setting
from scalarize.methods.registry import register


@register
class UncertaintyWeighting(Method):
    """Learned homoscedastic-uncertainty weights ``½ e^{−s_i}`` (regression form)."""

    name = "uw"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, init: float = 0.0, form: str = "regression") -> None:
        super().__init__()
        self.init = check_real(self.name, "init", init)
        self.form = check_choice(self.name, "form", form, ("regression", "classification"))
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)
        self.scalarizer: UW | None = None

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.scalarizer = UW(self.num_tasks)
            with torch.no_grad():
                self.scalarizer.log_var.fill_(self.init)

    @property
    def log_var(self) -> nn.Parameter:
        if self.scalarizer is None:
            raise RuntimeError("method uw: call setup() before use")
        return self.scalarizer.log_var

    def combine(self, losses: Tensor) -> Tensor:
        self.step_dtype = losses.dtype
        s = self.log_var.to(losses.dtype)
        if self.form == "regression":
            assert self.scalarizer is not None  # built by setup
            return self.scalarizer(losses)
        return (torch.exp(-s) * losses + 0.5 * s).sum()

    def current_weights(self) -> Tensor | None:
        if self.scalarizer is None:
            return None
        scale = 0.5 if self.form == "regression" else 1.0
        return self.reported(scale * torch.exp(-self.log_var.detach()))
