"""DoReMi-style group-DRO reweighting of the domain mixture (multi-domain learning only).

Xie, Pham, Dong, Du, Liu, Lu, Liang, Le, Ma & Yu, "DoReMi: Optimizing Data Mixtures Speeds Up
Language Model Pretraining", NeurIPS 2023 (Algorithm 1; official code sangmichaelxie/doremi).

With domain weights ``α`` (uniform at first), every training step takes each domain's loss on the
batch, ``L_d``, and its reference loss ``r_d``, and makes one exponentiated-gradient ascent step on
the clipped excess loss, smoothed toward uniform:

    λ_d = max(L_d − r_d, 0)                      (a domain absent from the batch keeps its last λ_d)
    α'  = softmax(log α + η λ)
    α   = (1 − c) α' + c / D

``α`` is the domain mixture the trainer samples from (:meth:`sampling_weights`): a batch drawn from
it is trained on with its plain mean (MDL's scalarization, ``Σ_d n_d / B · L_d``). Outside the
trainer (no batch fractions in the context) the loss is weighted by ``α`` instead, as DoReMi's
proxy model is.

Hyperparameters: ``step_size`` η (default 1, the paper's), ``smoothing`` c (default 1e-3, the
paper's), ``reference_losses`` (default None: estimated online; else one number per domain, e.g.
the final losses of single-domain runs or of a run on the uniform mixture), ``reference_decay`` β
(default 0.9) and ``mixture`` (``current``, default, or ``average``).

Differences from DoReMi proper, and why:

* DoReMi trains a reference model on the reference mixture first, and its excess loss is per
  token, ``max(ℓ_θ(x) − ℓ_ref(x), 0)``, averaged over a domain's tokens. Here the reference is one
  loss per domain, so the clipping is per domain. Given ``reference_losses`` are used as they are;
  without them each domain's reference is estimated online as the running minimum of an EMA
  (decay β) of the domain's batch losses: the best the run has reached on the domain, so that
  the excess is what the domain has lost since (or has not yet gained back), which is where
  group DRO puts weight. (An EMA alone lags above a falling loss and would clip to 0.)
* DoReMi samples the proxy's batches from the reference mixture and weights the loss by ``α``; its
  output is the average of ``α`` over training, used by a second, final run. This method is the
  online variant: ``α`` is the sampling ratio of the run itself. The trainer reads it at the start
  of every evaluation segment (``train.eval_every`` steps), not at every step; ``α`` itself is
  updated every step. ``mixture: average`` samples from the running average of ``α`` (DoReMi's
  output mixture) instead of the current ``α``.
* A domain absent from the batch keeps its last clipped excess loss, as the authors' code does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from scalarize.methods._common import check_choice, check_real, same_device
from scalarize.methods.base import Method, MethodError, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.registry import register

MIXTURES = ("current", "average")


def mdl_only(name: str, setting: Setting) -> None:
    """The one-line error of a mixture method set up outside multi-domain learning."""
    if setting != "mdl":
        raise MethodError(
            f"method {name}: sets the sampling ratios of multi-domain learning (a benchmark with "
            f"domains); this benchmark has tasks (setting {setting})"
        )


@register
class DoReMi(Method):
    """Domain mixture from exponentiated-gradient ascent on each domain's excess loss."""

    name = "doremi"
    #: The settings it runs in: MDL only (it sets the sampling ratios).
    settings: ClassVar[frozenset[str]] = frozenset({"mdl"})

    def __init__(
        self,
        step_size: float = 1.0,
        smoothing: float = 1e-3,
        reference_losses: Sequence[float] | None = None,
        reference_decay: float = 0.9,
        mixture: str = "current",
    ) -> None:
        super().__init__()
        self.step_size = check_real(self.name, "step_size", step_size, low=0)
        self.smoothing = check_real(self.name, "smoothing", smoothing, low=0, high=1)
        self.reference_decay = check_real(self.name, "reference_decay", reference_decay, low=0, high=1, high_open=True)
        self.mixture = check_choice(self.name, "mixture", mixture, MIXTURES)
        self._reference = None if reference_losses is None else list(reference_losses)
        for key in ("weights", "weight_sum", "scores", "smoothed", "reference", "seen"):
            self.register_buffer(key, torch.zeros(0))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        mdl_only(self.name, setting)
        with same_device(self):
            super().setup(task_names, setting)
            d = self.num_tasks
            self.weights = torch.full((d,), 1.0 / d)
            self.weight_sum = torch.zeros(d)
            self.scores = torch.zeros(d)
            self.smoothed = torch.zeros(d)
            self.seen = torch.zeros(d)
            self.reference = self._given_reference(d)
            self.updates = torch.zeros((), dtype=torch.long)

    def _given_reference(self, d: int) -> Tensor:
        if self._reference is None:
            return torch.full((d,), float("inf"))
        try:
            reference = torch.as_tensor(self._reference, dtype=torch.get_default_dtype()).flatten()
        except (TypeError, ValueError, RuntimeError):
            reference = torch.full((d + 1,), float("nan"))
        if reference.numel() != d or not torch.isfinite(reference).all():
            raise MethodError(
                f"method doremi: reference_losses must be {d} finite numbers (one per domain), got {self._reference!r}"
            )
        return reference

    def backward(self, context: StepContext) -> None:
        losses = context.losses
        self.step_dtype = losses.dtype
        fractions = context.batch_fractions
        shares = self.weights if fractions is None else fractions
        context.backward((shares.to(losses) * losses).sum())
        present = (
            torch.ones_like(self.weights, dtype=torch.bool)
            if fractions is None
            else fractions.to(self.weights.device) > 0
        )
        self.update(losses.detach().to(self.weights), present)

    def update(self, losses: Tensor, present: Tensor) -> None:
        """One DoReMi step from the batch's domain losses (``present``: the domains it holds)."""
        present = present & torch.isfinite(losses)
        if self._reference is None:
            self._estimate_reference(losses, present)
        excess = (losses - self.reference).clamp(min=0)
        self.scores = torch.where(present, excess, self.scores)
        logits = torch.log(self.weights) + self.step_size * self.scores
        new = torch.softmax(logits, dim=0)
        self.weights = (1 - self.smoothing) * new + self.smoothing / self.num_tasks
        self.weight_sum = self.weight_sum + self.weights
        self.updates += 1

    def _estimate_reference(self, losses: Tensor, present: Tensor) -> None:
        """Reference = running minimum of an EMA of each domain's batch losses."""
        beta = self.reference_decay
        first = self.seen == 0
        smoothed = torch.where(first, losses, beta * self.smoothed + (1 - beta) * losses)
        self.smoothed = torch.where(present, smoothed, self.smoothed)
        self.seen = torch.where(present, torch.ones_like(self.seen), self.seen)
        self.reference = torch.where(present, torch.minimum(self.reference, self.smoothed), self.reference)

    def domain_weights(self) -> Tensor:
        """The mixture to sample from: the current ``α``, or its average over the updates."""
        if self.mixture == "average" and int(self.updates) > 0:
            return self.weight_sum / self.weight_sum.sum()
        return self.weights

    def sampling_weights(self) -> Tensor | None:
        return self.domain_weights().clone() if self.num_tasks else None

    def current_weights(self) -> Tensor | None:
        return self.reported(self.domain_weights())
