"""Every method follows the dtype of what it is given, step after step: the update of a gradient
method has the gradients' dtype (float64, then float32, then float64 again: state kept in one
dtype must not leak into the next step's), and a loss-space method's combined loss has the
losses' dtype (bfloat16 too, as under autocast; promoted to the dtype of a method's own
learnable parameters, UW's and IMTL-L's float32 scales)."""

import pytest
import torch
from registered import build, setting_of
from test_method_contract import MTO

from scalarize.methods import Method

TASKS = ["a", "b", "c"]
#: Methods whose learnable float32 parameters enter the combined loss (with their gradient).
PROMOTING = {"uw", "imtl_l"}


#: Options that make the steps below exercise the whole rule (STCH leaves its warm-up after one
#: epoch, so that its reference point enters the combined loss).
OPTIONS = {"stch": {"warmup_epochs": 1}}


def _method(name):
    method = build(name, num_tasks=len(TASKS), **OPTIONS.get(name, {}))
    method.setup(TASKS, setting_of(method))
    return method


GRADIENT_METHODS = [n for n in MTO if hasattr(_method(n), "aggregate")]
LOSS_METHODS = [n for n in MTO if type(_method(n)).combine is not Method.combine]


def test_the_split_covers_the_expected_methods():
    assert {"mgda", "pcgrad", "excess_mtl", "metabalance", "db_mtl", "moco"} <= set(GRADIENT_METHODS)
    assert {"uw", "dwa", "famo", "stch", "gls", "frozen"} <= set(LOSS_METHODS)


@pytest.mark.parametrize("name", GRADIENT_METHODS)
def test_the_update_has_the_gradients_dtype(name):
    gen = torch.Generator().manual_seed(0)
    method = _method(name)
    for dtype in (torch.float64, torch.float32, torch.float64, torch.float32):
        gradients = torch.randn(3, 5, generator=gen).to(dtype)
        losses = (torch.rand(3, generator=gen) + 0.5).to(dtype)
        d = method.aggregate(gradients, losses)
        assert d.dtype == dtype and d.shape == (5,) and torch.isfinite(d).all()
    # float64 losses (kept for logging, say) do not promote float32 gradients' update
    d = method.aggregate(torch.randn(3, 5, generator=gen), torch.rand(3, generator=gen, dtype=torch.float64) + 0.5)
    assert d.dtype == torch.float32


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_the_combined_loss_has_the_losses_dtype(name):
    gen = torch.Generator().manual_seed(0)
    method = _method(name)
    for epoch, dtype in enumerate((torch.float64, torch.float32, torch.bfloat16, torch.float64)):
        losses = (torch.rand(3, generator=gen) + 0.5).to(dtype).requires_grad_()
        value = method.combine(losses)
        expected = torch.promote_types(dtype, torch.float32) if name in PROMOTING else dtype
        assert value.dtype == expected and value.shape == () and torch.isfinite(value)
        value.backward()
        assert torch.isfinite(losses.grad).all()
        method.end_epoch(epoch, losses.detach().to(dtype))
