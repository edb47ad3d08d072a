"""The trainer's helpers that runs reach only on some machines: the thread count (its
environment variable and default) and the fused optimizer rebuilt for stacked populations and
the device-side guard."""

import pytest
import torch

from scalarize.train.devices import THREADS_VARIABLE, apply_threads, resolve_threads
from scalarize.train.optim import fused_optimizer


def test_threads_come_from_the_argument_then_the_environment_then_one(monkeypatch):
    monkeypatch.setenv(THREADS_VARIABLE, "3")
    assert resolve_threads(2) == 2
    assert resolve_threads(None) == 3
    monkeypatch.setenv(THREADS_VARIABLE, " 4 ")
    assert resolve_threads(None) == 4
    monkeypatch.delenv(THREADS_VARIABLE)
    assert resolve_threads(None) == 1


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_a_bad_thread_variable_is_refused(monkeypatch, value):
    monkeypatch.setenv(THREADS_VARIABLE, value)
    with pytest.raises(ValueError, match=f"{THREADS_VARIABLE}: must be a positive integer"):
        resolve_threads(None)


def test_apply_threads_sets_torch_s_count(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.delenv(THREADS_VARIABLE, raising=False)
    try:
        assert apply_threads(2) == 2 and torch.get_num_threads() == 2
        assert apply_threads(None) == 1 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def _params():
    return [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]


@pytest.mark.parametrize("kind", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD])
def test_fused_optimizer_keeps_the_parameters_and_settings(kind):
    params = _params()
    original = kind(params, lr=0.01, weight_decay=0.1)
    fused = fused_optimizer(original)
    assert type(fused) is kind and fused is not original
    assert fused.defaults["fused"] is True and fused.defaults["lr"] == 0.01 and fused.defaults["weight_decay"] == 0.1
    assert [p for g in fused.param_groups for p in g["params"]] == params


@pytest.mark.parametrize("kind", [torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD])
def test_the_fused_optimizer_makes_the_same_steps_to_rounding(kind):
    a = _params()
    b = [torch.nn.Parameter(p.detach().clone()) for p in a]
    settings = {"lr": 0.1, "weight_decay": 0.1, **({"momentum": 0.9} if kind is torch.optim.SGD else {})}
    plain, fused = kind(a, **settings), fused_optimizer(kind(b, **settings))
    assert fused.defaults["fused"] is True
    for _ in range(3):
        for params, opt in ((a, plain), (b, fused)):
            opt.zero_grad()
            sum((p**2).sum() for p in params).backward()
            opt.step()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)  # a few ulps after 3 steps


def test_optimizers_without_a_fused_kernel_are_left_alone():
    params = _params()
    rmsprop = torch.optim.RMSprop(params)
    assert fused_optimizer(rmsprop) is rmsprop
    groups = torch.optim.Adam([{"params": params[:1]}, {"params": params[1:], "lr": 0.1}])
    assert fused_optimizer(groups) is groups  # several groups: kept as they are
    integer = torch.optim.SGD(
        [torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(2, dtype=torch.long), requires_grad=False)],
        lr=0.1,
    )
    assert fused_optimizer(integer) is integer  # a non-floating parameter: no fused kernel
