"""Every registered method reports ``current_weights()`` in the dtype of the step it last took:
float64 after a float64 step, float32 after a float32 one, and float64 again (state kept in
another dtype, such as float64 simplex weights or float32 learned log-variances, must not show
through). Parametrised from the registry, so that a new method is held to it too."""

import pytest
import torch
from registered import build, setting_of
from torch import nn

from scalarize.methods import AFTER_STEP, PREFERENCE_INPUT, StepContext, available_methods

TASKS = ["a", "b", "c"]
DTYPES = (torch.float64, torch.float32, torch.float64)


def _method(name):
    method = build(name, num_tasks=len(TASKS))
    method.setup(TASKS, setting_of(method))
    return method


def _context(dtype, step):
    """Three regression tasks on a Linear+ReLU trunk, in ``dtype``."""
    gen = torch.Generator().manual_seed(step)
    torch.manual_seed(step)
    trunk = nn.Linear(4, 6).to(dtype)
    heads = [nn.Linear(6, 1).to(dtype) for _ in TASKS]
    x = torch.randn(16, 4, generator=gen).to(dtype)
    ys = [torch.randn(16, generator=gen).to(dtype) for _ in TASKS]

    def losses():
        z = torch.relu(trunk(x))
        return z, torch.stack([((h(z).squeeze(-1) - y) ** 2).mean() for h, y in zip(heads, ys)])

    z, task_losses = losses()
    return StepContext(
        task_losses,
        features=z,
        shared_params=list(trunk.parameters()),
        task_params=[list(h.parameters()) for h in heads],
        recompute_losses=lambda: losses()[1],
        step=step,
    )


@pytest.mark.parametrize("name", available_methods())
def test_weights_have_the_dtype_of_the_last_step(name):
    method = _method(name)
    for step, dtype in enumerate(DTYPES):
        if PREFERENCE_INPUT in method.needs:
            method.draw_preference()
        context = _context(dtype, step)
        method.backward(context)
        if AFTER_STEP in method.needs:
            method.after_step(context)
        weights = method.current_weights()
        assert weights is None or (weights.dtype == dtype and weights.shape == (len(TASKS),)), (step, weights)


@pytest.mark.parametrize("name", [n for n in available_methods() if hasattr(_method(n), "aggregate")])
def test_aggregate_reports_weights_in_the_gradients_dtype(name):
    gen = torch.Generator().manual_seed(0)
    method = _method(name)
    for dtype in DTYPES:
        gradients = torch.randn(3, 5, generator=gen).to(dtype)
        method.aggregate(gradients, (torch.rand(3, generator=gen) + 0.5).to(dtype))
        weights = method.current_weights()
        assert weights is None or weights.dtype == dtype, weights
