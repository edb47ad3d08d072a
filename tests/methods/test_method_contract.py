"""What every registered method promises: registered, documented, validated, lowers the toy model's
loss, keeps all its state in state_dict, and works in a user's own training loop."""

from __future__ import annotations

import io

import pytest
import torch
from registered import ALL, TRAINABLE, build, required_option_names, required_options, setting_of
from torch import nn

from scalarize.methods import (
    AFTER_STEP,
    OWN_OPTIMIZER,
    Method,
    MethodError,
    StepContext,
    available_methods,
    build_method,
)
from scalarize.methods.base import NEEDS

#: Every registered method a plain training loop can train (from the registry: no list to edit).
MTO = TRAINABLE

# Learning rates of the 30-step toy run (MTAdam's steps are Adam-sized). DB-MTL's SGD step grows
# as a task's loss falls (its log-loss gradient is ∇L/L, then scaled up to the largest norm): at
# 0.05 task a's loss falls to ~0.01 by step 18 and bounces, and where step 30 lands in the bounce
# (pass or fail) flips with a 1e-6 relative perturbation of the initial weights, or with the CPU's
# kernels. At 0.02 the 30 steps descend smoothly: loss ratio 0.245 for every perturbation and kernel.
LR = {"mtadam": 0.01, "db_mtl": 0.02}


@pytest.mark.parametrize("name", ALL)
def test_the_tests_can_build_every_registered_method(name):
    """A method with an option it cannot be built without has a value for it in the tests (else
    this fails, naming the option, rather than the method being left out of the contract)."""
    options = required_options(name)
    assert sorted(options) == sorted(required_option_names(name))
    build(name)


def test_only_preference_conditioned_methods_are_left_out_of_the_toy_loop():
    from scalarize.methods import PREFERENCE_INPUT
    from scalarize.methods.registry import method_class

    left_out = set(ALL) - set(MTO)
    assert all(PREFERENCE_INPUT in method_class(name).needs for name in left_out)
    assert {"scalarization", "scheduled_scalarization", "frozen", "uw", "mgda"} <= set(MTO)


def test_the_docs_methods_table_lists_every_registered_method_once():
    """The table of methods in docs/methods.md (`config name | method | paper | torchjd`) has one
    row per registered method, no more, so that the docs follow the registry."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "docs" / "methods.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("| config name | method"))
    rows = []
    for line in readme[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line.split("|")[1].strip().strip("`"))
    assert sorted(rows) == ALL


@pytest.mark.parametrize("name", ALL)
def test_registered_documented_and_declares_needs(name):
    assert name in available_methods()
    method = build(name)
    assert isinstance(method, Method) and method.name == name
    assert method.needs <= NEEDS
    doc = type(method).__doc__ or ""
    module_doc = __import__(type(method).__module__, fromlist=["_"]).__doc__ or ""
    assert doc.strip() and "Hyperparameters" in module_doc
    assert any(str(year) in module_doc for year in range(2012, 2027)), "cites its paper"


@pytest.mark.parametrize("name", MTO)
def test_lowers_the_toy_loss(name, toy):
    torch.manual_seed(0)
    run = toy(build(name), lr=LR.get(name, 0.05))
    with torch.no_grad():
        before = run.losses()[1]
    run.train(30)
    with torch.no_grad():
        after = run.losses()[1]
    assert torch.isfinite(after).all()
    assert after.sum() < 0.9 * before.sum(), (before, after)
    weights = run.method.current_weights()
    if weights is not None:
        assert weights.shape == (2,) and torch.isfinite(weights).all()


@pytest.mark.parametrize("name", MTO)
def test_state_dict_round_trip_continues_identically(name, toy):
    torch.manual_seed(1)
    first = toy(build(name), lr=LR.get(name, 0.05))
    first.train(12)  # two epochs end (DWA's history fills)
    buffer = io.BytesIO()
    torch.save(first.method.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(name)
    fresh.setup(["a", "b"], setting_of(fresh))
    fresh.load_state_dict(torch.load(buffer))
    second = first.clone(fresh)
    for _ in range(3):
        first.step()
        second.step()
    for p, q in zip(first.model.parameters(), second.model.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    w1, w2 = first.method.current_weights(), second.method.current_weights()
    assert (w1 is None) == (w2 is None)
    if w1 is not None:
        torch.testing.assert_close(w1, w2, rtol=0, atol=0)


INVALID = [
    ("uw", {"form": "huber"}, "method uw: form must be one of"),
    ("imtl_l", {"init": float("nan")}, "method imtl_l: init must be a finite number"),
    ("dwa", {"temperature": 0}, r"method dwa: temperature must be in \(0, inf\), got 0"),
    ("rlw", {"distribution": "beta"}, "method rlw: distribution must be one of"),
    ("rlw", {"normalization": "sum"}, "method rlw: normalization 'sum' needs non-negative draws"),
    ("rlw", {"seed": -1}, "method rlw: seed must be >= 0, got -1"),
    ("famo", {"lr": -1}, r"method famo: lr must be in \[0, inf\), got -1"),
    ("famo", {"betas": (0.9,)}, "method famo: betas must be two numbers"),
    ("gradnorm", {"alpha": -0.5}, r"method gradnorm: alpha must be in \[0, inf\), got -0.5"),
    ("pcgrad", {"seed": "x"}, "method pcgrad: seed must be an integer, got 'x'"),
    ("gradvac", {"beta": 1.5}, r"method gradvac: beta must be in \[0, 1\], got 1.5"),
    ("graddrop", {"leak": 2}, r"method graddrop: leak must be in \[0, 1\], got 2"),
    ("mgda", {"normalization": "l1"}, "method mgda: normalization must be one of"),
    ("mgda_ub", {"solver": "frank_wolfe", "max_iters": 0}, "method mgda_ub: max_iters must be >= 1, got 0"),
    ("mgda", {"epsilon": 1e-6}, "method mgda: epsilon is an option of solver 'frank_wolfe' only"),
    ("cagrad", {"c": 2}, r"method cagrad: c must be in \[0, 1\), got 2"),
    ("cagrad", {"rescale": 3}, "method cagrad: rescale must be one of 0, 1, 2, got 3"),
    ("nash_mtl", {"max_norm": -1}, r"method nash_mtl: max_norm must be in \[0, inf\), got -1"),
    ("aligned_mtl", {"scale_mode": "max"}, "method aligned_mtl: scale_mode must be one of"),
    ("upgrad", {"reg_eps": 0}, r"method upgrad: reg_eps must be in \(0, inf\), got 0"),
    ("gradient_similarity", {"mode": "soft"}, "method gradient_similarity: mode must be one of"),
    ("metabalance", {"relax_factor": 1.2}, r"method metabalance: relax_factor must be in \[0, 1\]"),
    ("mtadam", {"betas": (0.9, 0.999)}, "method mtadam: betas must be three numbers"),
    ("mtadam", {"betas": (0.9, 0.999, 1.0)}, r"method mtadam: betas\[2\] must be in \[0, 1\)"),
    ("famo", {"max_norm": -1}, r"method famo: max_norm must be in \[0, inf\), got -1"),
    ("nash_mtl", {"scale_heads": "yes"}, "method nash_mtl: scale_heads must be true or false, got 'yes'"),
    ("stch", {"mu": 0}, r"method stch: mu must be in \(0, inf\), got 0"),
    ("stch", {"warmup_epochs": -1}, "method stch: warmup_epochs must be >= 0, got -1"),
    ("db_mtl", {"beta": 1}, r"method db_mtl: beta must be in \[0, 1\), got 1"),
    ("excess_mtl", {"robust_step_size": 0}, r"method excess_mtl: robust_step_size must be in \(0, inf\), got 0"),
    ("excess_mtl", {"warmup_steps": 0}, "method excess_mtl: warmup_steps must be >= 1, got 0"),
    ("fairgrad", {"alpha": -1}, r"method fairgrad: alpha must be in \[0, inf\), got -1"),
    ("sdmgrad", {"lam": -0.1}, r"method sdmgrad: lam must be in \[0, inf\), got -0.1"),
    ("sdmgrad", {"n_iter": 0}, "method sdmgrad: n_iter must be >= 1, got 0"),
    ("modo", {"gamma": 0}, r"method modo: gamma must be in \(0, inf\), got 0"),
    ("moco", {"beta": 0}, r"method moco: beta must be in \(0, 1\], got 0"),
    ("moco", {"rho": -1}, r"method moco: rho must be in \[0, inf\), got -1"),
    ("dualproj", {"reg_eps": 0}, r"method dualproj: reg_eps must be in \(0, inf\), got 0"),
    (
        "frozen",
        {"source": "/nonexistent/experiment"},
        "method frozen: source '/nonexistent/experiment': no scalarize.db there",
    ),
    (
        "frozen",
        {"source": [[0, [0.5, 0.5]]], "reduce": "median"},
        "method frozen: reduce must be one of 'mean', 'ema', 'last'",
    ),
    (
        "frozen",
        {"source": [[0, [0.5, 0.5]], [1, [1.0]]]},
        "method frozen: every row must have the same number of weights",
    ),
    ("frozen", {"source": [[-1, [0.5, 0.5]]]}, "method frozen: a row's step must be an integer >= 0, got -1"),
    ("frozen", {"source": [[0, [0.5, 0.5]]], "run": "x"}, "method frozen: run names a run of a database source"),
    ("frozen", {"source": 3}, r"method frozen: source must be a list of \[step, \[weights...\]\] rows"),
]


@pytest.mark.parametrize(("name", "options", "message"), INVALID)
def test_bad_hyperparameters_are_one_line_errors(name, options, message):
    with pytest.raises(MethodError, match=message) as error:
        build_method(name, **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("gradient_similarity", {"main_task": "c"}, "main_task 'c' is not a task; tasks: a, b"),
        ("metabalance", {"main_task": "c"}, "main_task 'c' is not a task; tasks: a, b"),
        ("famo", {"min_losses": [0.0, 0.0, 0.0]}, "min_losses must be one number or 2"),
        ("mtadam", {"weights": [1.0]}, "expected 2 values"),
        ("frozen", {"source": [[0, [0.2, 0.3, 0.5]]]}, "source rows have 3 weights, expected 2"),
        ("frozen", {"source": [[0, [-0.2, 0.3]]]}, "the summarised weights must be >= 0"),
    ],
)
def test_bad_options_against_the_tasks_fail_at_setup(name, options, message):
    method = build_method(name, **options)
    with pytest.raises(MethodError, match=message):
        method.setup(["a", "b"], setting_of(method))


def test_unknown_option_is_a_method_error():
    with pytest.raises(MethodError, match="method 'cagrad'"):
        build_method("cagrad", radius=0.5)


@pytest.mark.parametrize("name", ["pcgrad", "famo", "gradnorm", "mgda_ub", "mtadam"])
def test_usable_in_a_plain_user_loop(name):
    """No trainer: the user builds the context, calls backward, steps their optimizer."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(3, 6), nn.ReLU())
    heads = nn.ModuleList([nn.Linear(6, 1), nn.Linear(6, 1)])
    x, y1, y2 = torch.randn(32, 3), torch.randn(32), torch.randn(32)
    method = build_method(name)
    method.setup(["depth", "segmentation"], setting_of(method))
    params = [*trunk.parameters(), *heads.parameters(), *method.parameters()]
    if OWN_OPTIMIZER in method.needs:
        opt = method.build_optimizer(params, lr=0.01)
    else:
        opt = torch.optim.SGD(params, lr=0.05)

    def forward():
        features = trunk(x)
        losses = torch.stack(
            [
                ((heads[0](features).squeeze(-1) - y1) ** 2).mean(),
                ((heads[1](features).squeeze(-1) - y2) ** 2).mean(),
            ]
        )
        return features, losses

    start = forward()[1].detach()
    for step in range(20):
        features, losses = forward()
        ctx = StepContext(
            losses,
            features=features,
            shared_params=list(trunk.parameters()),
            task_params=[list(heads[0].parameters()), list(heads[1].parameters())],
            recompute_losses=lambda: forward()[1],
            step=step,
        )
        opt.zero_grad()
        method.backward(ctx)
        opt.step()
        if AFTER_STEP in method.needs:
            method.after_step(ctx)
    assert forward()[1].sum() < start.sum()


@pytest.mark.parametrize("name", ALL)
def test_setup_creates_its_state_on_the_method_device(name):
    """The trainer may call ``method.to(device)`` before ``setup`` (scalarization's weights once
    stayed on the CPU: found by the benchmarks on a GPU)."""
    method = build(name)
    method.to("meta")
    method.setup(["a", "b"], setting_of(method))
    tensors = [*method.parameters(), *method.buffers()]
    assert all(t.device.type == "meta" for t in tensors)


@pytest.mark.parametrize("name", ALL)
def test_weights_are_none_until_defined_then_one_per_task(name):
    """``current_weights()``: ``None`` before ``setup``; after it, ``None`` or ``[T]``."""
    method = build(name, num_tasks=3)
    assert method.current_weights() is None
    method.setup(["a", "b", "c"], setting_of(method))
    weights = method.current_weights()
    assert weights is None or weights.shape == (len(method.task_names),)


@pytest.mark.parametrize("name", MTO)
def test_mdl_setting_with_no_task_specific_parameters(name):
    """MDL: one head shared by all domains, so the context has no task parameters."""
    torch.manual_seed(0)
    trunk = nn.Linear(3, 4)
    x = torch.randn(8, 3)
    z = trunk(x)
    losses = torch.stack([(z**2).mean() + 0.1, ((z - 1) ** 2).mean() + 0.1])
    ctx = StepContext(
        losses,
        features=z,
        shared_params=list(trunk.parameters()),
        task_params=[],
        recompute_losses=lambda: losses.detach() * 0.9,
    )
    method = build(name)
    method.setup(["d1", "d2"], "mdl")
    method.backward(ctx)
    if AFTER_STEP in method.needs:
        method.after_step(ctx)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trunk.parameters())
