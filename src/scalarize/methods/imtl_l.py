"""IMTL-L: the loss-balancing half of Impartial Multi-Task Learning.

Liu, Li, Kuang, Xue, Chen, Yang, Liao & Zhang, "Towards Impartial Multi-task Learning",
ICLR 2021.

Each task gets a learnable scale ``s_i`` and the model minimises

    L = Σ_i e^{s_i} L_i − s_i

so that the scaled losses ``e^{s_i} L_i`` are driven to the same value (1): at the optimum in
``s_i``, ``e^{s_i} = 1 / L_i``. The ``s_i`` are ``nn.Parameter`` of the method, created by
:meth:`setup` (the trainer optimises ``method.parameters()`` with the model).

Hyperparameters: ``init`` (initial ``s_i``, default 0: unit weights).

Backed by :class:`torchjd.scalarization.IMTLL`. The gradient-balancing half is ``imtl_g``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchjd.scalarization import IMTLL as _IMTLL

from scalarize.methods._common import check_real, same_device
from scalarize.methods.base import PERMUTATION_EQUIVARIANT, Method, Setting
from scalarize.methods.registry import register


@register
class IMTLL(Method):
    """Learned loss scales ``e^{s_i}`` with the regulariser ``−s_i``."""

    name = "imtl_l"
    promises = frozenset({PERMUTATION_EQUIVARIANT})

    def __init__(self, init: float = 0.0) -> None:
        super().__init__()
        self.init = check_real(self.name, "init", init)
        self.register_buffer("_device_anchor", torch.zeros(0), persistent=False)
        self.scalarizer: _IMTLL | None = None

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        with same_device(self):
            super().setup(task_names, setting)
            self.scalarizer = _IMTLL(self.num_tasks)
            with torch.no_grad():
                self.scalarizer.log_scale.fill_(self.init)

    @property
    def log_scale(self) -> nn.Parameter:
        if self.scalarizer is None:
            raise RuntimeError("method imtl_l: call setup() before use")
        return self.scalarizer.log_scale

    def combine(self, losses: Tensor) -> Tensor:
        self.log_scale  # noqa: B018 - raises a clear error before setup
        assert self.scalarizer is not None
        self.step_dtype = losses.dtype
        return self.scalarizer(losses)

    def current_weights(self) -> Tensor | None:
        if self.scalarizer is None:
            return None
        return self.reported(torch.exp(self.log_scale.detach()))
