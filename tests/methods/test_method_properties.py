"""The invariants the papers promise, as shared property tests (torchjd's style): one mix-in class
per property, applied to every registered method whose class declares the property in its
``promises`` (``scalarize.methods.base``: PERMUTATION_EQUIVARIANT, NON_CONFLICTING,
SCALE_INVARIANT, SCALE_INVARIANT_DIRECTION). The promise is declared once, on the method; a method
added to the registry with a promise is tested for it with no list to edit here.

A method that promises nothing is not symmetric for a reason its class says: PCGrad, GradVac,
GradDrop and RLW draw random orders or weights; MetaBalance, gradient similarity and MTAdam single
out one task; frozen and scheduled weights are given by position.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from registered import ALL, build, promising
from torch import nn

from scalarize.methods import AFTER_STEP, StepContext
from scalarize.methods.base import (
    NON_CONFLICTING,
    PERMUTATION_EQUIVARIANT,
    PROMISES,
    SCALE_INVARIANT,
    SCALE_INVARIANT_DIRECTION,
)
from scalarize.methods.registry import method_class

#: The conditions under which a method's promise holds exactly (default: its defaults). STCH
#: leaves its warm-up after one epoch, so that its reference point enters; the dual-cone
#: projections hold without torchjd's 1e-4 ridge (it leaves conflicts of ~1e-4), Nash-MTL without
#: its norm clipping.
CONDITIONS: dict[tuple[str, str], dict[str, Any]] = {
    (PERMUTATION_EQUIVARIANT, "stch"): {"warmup_epochs": 1},
    (NON_CONFLICTING, "upgrad"): {"reg_eps": 1e-10},
    (NON_CONFLICTING, "dualproj"): {"reg_eps": 1e-10},
    (NON_CONFLICTING, "nash_mtl"): {"max_norm": 0.0},
    (SCALE_INVARIANT, "nash_mtl"): {"max_norm": 0.0},
}


def _linear_context(gradients, offsets, after=None):
    """Losses L_i = c_i + g_i · θ at θ = 0 (θ also the representation): every per-task gradient,
    on the parameters or on the representation, is g_i; after the step the losses are
    ``after`` (default 0.8 L)."""
    theta = nn.Parameter(torch.zeros(gradients.shape[1], dtype=gradients.dtype))
    z = theta.unsqueeze(0) * 1.0
    losses = torch.stack([c + (g * z[0]).sum() for c, g in zip(offsets, gradients)])
    ctx = StepContext(
        losses,
        features=z,
        shared_params=[theta],
        task_params=[[] for _ in offsets],
        recompute_losses=lambda: 0.8 * losses.detach() if after is None else after,
    )
    return theta, ctx


class _Property:
    """A property test for one method, :attr:`name` (a test class mixes in several properties)."""

    name: ClassVar[str]

    def method(self, promise: str, num_tasks: int = 3):
        """The method built under the conditions of ``promise``."""
        return build(self.name, num_tasks, **CONDITIONS.get((promise, self.name), {}))


class PermutationEquivariance(_Property):
    """Relabelling the tasks permutes the method's weights and leaves its update unchanged, over
    several steps (the method's state follows the tasks)."""

    def _trajectory(self, steps, perm):
        method = self.method(PERMUTATION_EQUIVARIANT)
        method.setup([f"t{i}" for i in perm])
        out = []
        for epoch, (gradients, offsets, after) in enumerate(steps):
            theta, ctx = _linear_context(gradients[perm], offsets[perm], after[perm])
            method.backward(ctx)
            if AFTER_STEP in method.needs:
                method.after_step(ctx)
            method.end_epoch(epoch, offsets[perm].float())
            weights = method.current_weights()
            out.append((theta.grad.clone(), None if weights is None else weights.detach().double().clone()))
        return out

    def test_relabelling_the_tasks_permutes_the_weights_only(self):
        gen = torch.Generator().manual_seed(0)
        steps = []
        for _ in range(3):
            offsets = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
            # losses after the step: each task improves by its own factor (FAMO learns from them)
            after = offsets * (0.5 + 0.4 * torch.rand(3, generator=gen, dtype=torch.float64))
            steps.append((torch.randn(3, 5, generator=gen, dtype=torch.float64), offsets, after))
        perm = torch.tensor([2, 0, 1])
        plain = self._trajectory(steps, torch.arange(3))
        permuted = self._trajectory(steps, perm)
        for (d, w), (d_perm, w_perm) in zip(plain, permuted):
            torch.testing.assert_close(d_perm, d, rtol=1e-6, atol=1e-9)
            if w is not None:
                torch.testing.assert_close(w_perm, w[perm], rtol=1e-6, atol=1e-9)


class NonConflict(_Property):
    """The update conflicts with no task (``g_i · d >= 0``), even under a strong conflict."""

    def test_the_update_is_a_descent_direction_for_every_task(self):
        gen = torch.Generator().manual_seed(1)
        for _ in range(5):
            gradients = torch.randn(3, 6, generator=gen, dtype=torch.float64)
            gradients[1] = -0.8 * gradients[0] + 0.3 * gradients[1]  # a strong conflict
            method = self.method(NON_CONFLICTING)
            method.setup(["a", "b", "c"])
            theta, ctx = _linear_context(gradients, torch.ones(3, dtype=torch.float64))
            method.backward(ctx)
            slopes = gradients @ theta.grad
            assert (slopes >= -1e-8 * gradients.norm() * theta.grad.norm()).all(), slopes
            assert theta.grad.norm() > 0


def _updates_under_loss_scales(prop: _Property, promise: str):
    """The update at the same point with the task losses as they are, then scaled by 50, 1, 0.02."""
    gen = torch.Generator().manual_seed(2)
    gradients = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    offsets = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
    scales = torch.tensor([50.0, 1.0, 0.02], dtype=torch.float64)
    updates = []
    for c in (torch.ones(3, dtype=torch.float64), scales):
        method = prop.method(promise)
        method.setup(["a", "b", "c"])
        theta, ctx = _linear_context(gradients * c[:, None], offsets * c)
        method.backward(ctx)
        updates.append(theta.grad.clone())
    return updates


class ScaleInvariance(_Property):
    """Scaling a task's loss (so its gradient) by ``c > 0`` leaves the update unchanged."""

    def test_a_tasks_loss_scale_does_not_change_the_update(self):
        a, b = _updates_under_loss_scales(self, SCALE_INVARIANT)
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)


class ScaleInvariantDirection(_Property):
    """Scaling a task's loss by ``c > 0`` leaves the update's direction unchanged."""

    def test_a_tasks_loss_scale_does_not_change_the_direction(self):
        a, b = _updates_under_loss_scales(self, SCALE_INVARIANT_DIRECTION)
        torch.testing.assert_close(a / a.norm(), b / b.norm(), rtol=1e-5, atol=1e-9)


#: The mix-in that tests each promise.
PROPERTIES = {
    PERMUTATION_EQUIVARIANT: PermutationEquivariance,
    NON_CONFLICTING: NonConflict,
    SCALE_INVARIANT: ScaleInvariance,
    SCALE_INVARIANT_DIRECTION: ScaleInvariantDirection,
}


def test_every_promise_has_its_property_test_and_every_method_promises_known_ones():
    assert set(PROPERTIES) == PROMISES
    for name in ALL:
        assert method_class(name).promises <= PROMISES, name


def test_the_promises_cover_the_methods_whose_papers_make_them():
    """A floor, so that a promise dropped by mistake shows (new methods add to it by declaring)."""
    assert len(promising(PERMUTATION_EQUIVARIANT)) >= 23
    non_conflicting = {"mgda", "mgda_ub", "upgrad", "dualproj", "config", "nash_mtl", "fairgrad"}
    assert non_conflicting <= set(promising(NON_CONFLICTING))
    assert {"nash_mtl", "db_mtl"} <= set(promising(SCALE_INVARIANT))
    assert {"gls", "config", "imtl_g"} <= set(promising(SCALE_INVARIANT_DIRECTION))
    assert not set(promising(PERMUTATION_EQUIVARIANT)) & {
        "pcgrad",
        "gradvac",
        "graddrop",
        "rlw",
        "frozen",
        "scheduled_scalarization",
    }


# One test class per method that promises anything, made of the mix-ins of its promises.
for _name in ALL:
    _promises = sorted(method_class(_name).promises)
    if _promises:
        _cls = type(f"Test_{_name}", tuple(PROPERTIES[p] for p in _promises), {"name": _name})
        _cls.__module__ = __name__
        globals()[_cls.__name__] = _cls
del _name, _promises, _cls
