"""Aioli: the domain mixture from an online estimate of the linear mixing law (MDL only).

Chen, Hu, Ré et al., "Aioli: A Unified Optimization Framework for Language Model Data Mixing",
ICLR 2025 (official code HazyResearch/aioli, ``trainer/aioli_trainer.py``).

The linear dynamic mixing law says that training on the mixture ``p`` for a while lowers domain
i's loss by ``Σ_j A_ij p_j``. Aioli estimates the interaction matrix ``A`` in every round
(LearnParams) and then moves the mixture by exponentiated gradient on the estimated gain:

* probes: for each domain j (``lp_rounds`` times over the D domains), train ``lp_steps`` steps on
  the mixture ``q^j`` (``one_hot_factor`` f on j, ``(1 − f)/(D − 1)`` on each other domain) and add
  every domain's loss decrease to column j: ``G[:, j] += L_before − L_after``; then
  ``G /= lp_rounds`` and, when ``f < 1``, solve ``Q A_iᵀ = G_iᵀ`` per row (row r of ``Q`` is
  ``q^r``), so that ``G_ij = Σ_l q^j_l A_il``;
* ``normalize``: if ``min A < 0`` subtract it, then divide by the sum of the entries;
* ``ema`` γ: ``Ā = (1 − γ) A + γ Ā`` (the first round ``Ā = A``), and ``p ∝ exp(η Σ_i Ā_ij)``
  (from uniform each round, as the authors' code does when it smooths); with ``ema: 0`` instead
  ``p ∝ p · exp(η Σ_i A_ij)`` (the paper's exponentiated-gradient step, accumulated);
* train the rest of the round on ``p``.

Hyperparameters (defaults from the authors' scripts, ``scripts/*/aioli/run.sh``, the settings of
the paper's runs): ``eta`` η = 0.2, ``lp_rounds`` = 4, ``lp_steps`` = 4, ``one_hot_factor`` f =
0.625, ``update_steps`` = 250 (the round's length in steps, probes included), ``ema`` γ = 0.1,
``normalize`` = True.

At scalarize's granularity, and what differs:

* The trainer reads the mixture only at the start of an evaluation segment (``train.eval_every``
  steps), so a probe cannot resample the batch: a probe step trains the batch drawn from ``p``
  with the loss ``Σ_l q^j_l L_l`` (the expected loss of a batch drawn from ``q^j``), and its
  decrease is measured on the same batch right after the step (``after_step``,
  ``recompute_losses``) instead of on the validation set: ``G[:, j]`` sums the ``lp_steps``
  one-step decreases. A domain absent from a probe's batch adds nothing to its row.
* The probes are the last steps of each round, not the first: the cycle
  probe → update → train is the same, the update then falls on the round's last step, and with
  ``train.eval_every`` = ``update_steps`` (or a divisor of it) the new mixture reaches the sampler
  at the very next segment. The first round trains on the uniform mixture before its probes, as
  the authors' runs do with ``prior_steps`` = ``update_steps`` = 250.
* The probes visit the domains in order (the authors' code draws a permutation per sweep).
* Outside the trainer (no batch fractions) a non-probe step weights the loss by ``p``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import torch
from torch import Tensor

from scalarize.methods._common import check_int, check_real, same_device
from scalarize.methods.base import AFTER_STEP, LOSSES, Method, MethodError, Setting
from scalarize.methods.context import StepContext
from scalarize.methods.doremi import mdl_only
from scalarize.methods.registry import register


@register
class Aioli(Method):
    """Domain mixture moved by exponentiated gradient on an online estimate of the mixing law."""

    name = "aioli"
    #: The settings it runs in: MDL only (it sets the sampling ratios).
    settings: ClassVar[frozenset[str]] = frozenset({"mdl"})
    needs = frozenset({LOSSES, AFTER_STEP})

    def __init__(
        self,
        eta: float = 0.2,
        lp_rounds: int = 4,
        lp_steps: int = 4,
        one_hot_factor: float = 0.625,
        update_steps: int = 250,
        ema: float = 0.1,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        self.eta = check_real(self.name, "eta", eta, low=0)
        self.lp_rounds = check_int(self.name, "lp_rounds", lp_rounds, low=1)
        self.lp_steps = check_int(self.name, "lp_steps", lp_steps, low=1)
        self.one_hot_factor = check_real(self.name, "one_hot_factor", one_hot_factor, low=0, high=1)
        self.update_steps = check_int(self.name, "update_steps", update_steps, low=1)
        self.ema = check_real(self.name, "ema", ema, low=0, high=1, high_open=True)
        if not isinstance(normalize, bool):
            raise MethodError(f"method aioli: normalize must be true or false, got {normalize!r}")
        self.normalize = normalize
        for key in ("weights", "gains", "smoothed"):
            self.register_buffer(key, torch.zeros(0))
        self.register_buffer("smoothed_ready", torch.zeros((), dtype=torch.bool))  # Ā holds a round
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("before", torch.zeros(0), persistent=False)  # a probe's losses, within its step
        self._probe: int | None = None  # the domain this step probes (set in backward)

    def setup(self, task_names: Sequence[str], setting: Setting = "mtl") -> None:
        mdl_only(self.name, setting)
        with same_device(self):
            super().setup(task_names, setting)
            d = self.num_tasks
            if d < 2:
                raise MethodError("method aioli: needs at least two domains")
            if self.one_hot_factor <= 1 / d:
                raise MethodError(
                    f"method aioli: one_hot_factor must be > 1/{d} (the probes' mixtures must differ), "
                    f"got {self.one_hot_factor}"
                )
            if d * self.lp_rounds * self.lp_steps > self.update_steps:
                raise MethodError(
                    f"method aioli: update_steps ({self.update_steps}) must hold the probes, "
                    f"domains × lp_rounds × lp_steps = {d * self.lp_rounds * self.lp_steps}"
                )
            self.weights = torch.full((d,), 1.0 / d)
            self.gains = torch.zeros(d, d)
            self.smoothed = torch.zeros(d, d)
            self.before = torch.zeros(d)
            self.smoothed_ready = torch.zeros((), dtype=torch.bool)
            self.steps = torch.zeros((), dtype=torch.long)

    # -- the round's schedule ------------------------------------------------------------------
    @property
    def probe_steps(self) -> int:
        return self.num_tasks * self.lp_rounds * self.lp_steps

    def probed_domain(self, step: int) -> int | None:
        """The domain step ``step`` (of the method's count) probes, ``None`` for a training step."""
        position = step % self.update_steps - (self.update_steps - self.probe_steps)
        return None if position < 0 else (position // self.lp_steps) % self.num_tasks

    def probe_mixture(self, domain: int) -> Tensor:
        """``q^j``: ``one_hot_factor`` on ``domain``, the rest spread evenly over the others."""
        q = torch.full((self.num_tasks,), (1 - self.one_hot_factor) / (self.num_tasks - 1), device=self.weights.device)
        q[domain] = self.one_hot_factor
        return q

    # -- one step ------------------------------------------------------------------------------
    def backward(self, context: StepContext) -> None:
        losses = context.losses
        self.step_dtype = losses.dtype
        step = int(self.steps)
        if step % self.update_steps == 0 and step > 0 and bool(self.gains.any()):
            self.end_round()  # the round's last probe step was skipped (not finite): its update, late
        self._probe = self.probed_domain(step)
        self.steps += 1
        if self._probe is not None:
            shares = self.probe_mixture(self._probe)
            self.before = losses.detach().to(self.weights)
        else:
            shares = self.weights if context.batch_fractions is None else context.batch_fractions
        context.backward((shares.to(losses) * losses).sum())

    def after_step(self, context: StepContext) -> None:
        if self._probe is None:
            return
        after = context.recompute_losses().detach().to(self.weights)
        present = torch.ones_like(after, dtype=torch.bool)
        if context.batch_fractions is not None:
            present = context.batch_fractions.to(after.device) > 0
        self.record(self._probe, self.before, after, present)
        self._probe = None
        if int(self.steps) % self.update_steps == 0:
            self.end_round()

    def record(self, domain: int, before: Tensor, after: Tensor, present: Tensor) -> None:
        """Adds a probe step's loss decreases to column ``domain`` of the gains."""
        decrease = torch.where(
            present & torch.isfinite(after) & torch.isfinite(before), before - after, torch.zeros_like(after)
        )
        self.gains[:, domain] += decrease

    def end_round(self) -> None:
        """The round's interaction matrix, then the new mixture; the gains start again."""
        interaction = self.interaction(self.gains / self.lp_rounds)
        if self.ema > 0:
            ready = bool(self.smoothed_ready)
            self.smoothed = (1 - self.ema) * interaction + self.ema * self.smoothed if ready else interaction
            self.smoothed_ready = torch.ones_like(self.smoothed_ready)
            logits = self.eta * self.smoothed.sum(dim=0)
        else:
            logits = torch.log(self.weights) + self.eta * interaction.sum(dim=0)
        self.weights = torch.softmax(logits, dim=0)
        self.gains = torch.zeros_like(self.gains)

    def interaction(self, gains: Tensor) -> Tensor:
        """``A`` from the probes' gains (unmixed when ``one_hot_factor < 1``), normalised."""
        matrix = gains
        if self.one_hot_factor < 1:
            mixtures = torch.stack([self.probe_mixture(j) for j in range(self.num_tasks)]).to(gains)
            matrix = torch.linalg.solve(mixtures, gains.T).T  # row i: Q a_i = g_i
        if self.normalize:
            low = matrix.min()
            if low < 0:
                matrix = matrix - low
            total = matrix.sum()
            matrix = matrix / total if total > 0 else torch.zeros_like(matrix)
        return matrix

    # -- what the trainer reads ----------------------------------------------------------------
    def sampling_weights(self) -> Tensor | None:
        return self.weights.clone() if self.num_tasks else None

    def current_weights(self) -> Tensor | None:
        return self.reported(self.weights)
