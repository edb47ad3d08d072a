"""What every MTO method promises: registered, documented, validated, lowers the toy model's
loss, keeps all its state in state_dict, and works in a user's own training loop."""

from __future__ import annotations

import io

import pytest
import torch
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

MTO = [
    "uw",
    "imtl_l",
    "dwa",
    "rlw",
    "famo",
    "gradnorm",
    "pcgrad",
    "gradvac",
    "graddrop",
    "mgda",
    "mgda_ub",
    "cagrad",
    "imtl_g",
    "nash_mtl",
    "aligned_mtl",
    "upgrad",
    "gradient_similarity",
    "metabalance",
    "mtadam",
    "stch",
    "gls",
    "db_mtl",
    "excess_mtl",
    "fairgrad",
    "sdmgrad",
    "modo",
    "moco",
    "config",
    "dualproj",
    "frozen",
]

# Learning rates of the 30-step toy run (MTAdam's steps are Adam-sized). DB-MTL's SGD step grows
# as a task's loss falls (its log-loss gradient is ∇L/L, then scaled up to the largest norm): at
# 0.05 task a's loss falls to ~0.01 by step 18 and bounces, and where step 30 lands in the bounce
# (pass or fail) flips with a 1e-6 relative perturbation of the initial weights, or with the CPU's
# kernels. At 0.02 the 30 steps descend smoothly: loss ratio 0.245 for every perturbation and kernel.
LR = {"mtadam": 0.01, "db_mtl": 0.02}
#: Options a method cannot do without (frozen weights need their source).
REQUIRED = {"frozen": {"source": [[0, [0.2, 0.8]], [10, [0.4, 0.6]]]}}


def build(name, **options):
    return build_method(name, **{**REQUIRED.get(name, {}), **options})


@pytest.mark.parametrize("name", MTO)
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
    fresh.setup(["a", "b"])
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
    ("frozen", {"source": "/nonexistent/experiment"}, "method frozen: source '/nonexistent/experiment': no scalarize.db there"),
    ("frozen", {"source": [[0, [0.5, 0.5]]], "reduce": "median"}, "method frozen: reduce must be one of 'mean', 'ema', 'last'"),
    ("frozen", {"source": [[0, [0.5, 0.5]], [1, [1.0]]]}, "method frozen: every row must have the same number of weights"),
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
        method.setup(["a", "b"])


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
    method.setup(["depth", "segmentation"])
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


@pytest.mark.parametrize("name", [*MTO, "scalarization", "scheduled_scalarization"])
def test_setup_creates_its_state_on_the_method_device(name):
    """The trainer may call ``method.to(device)`` before ``setup`` (scalarization's weights once
    stayed on the CPU: found by the benchmarks on a GPU)."""
    options = {"schedule": [(0, [0.5, 0.5]), (10, [0.2, 0.8])]} if name == "scheduled_scalarization" else {}
    method = build(name, **options)
    method.to("meta")
    method.setup(["a", "b"])
    tensors = [*method.parameters(), *method.buffers()]
    assert all(t.device.type == "meta" for t in tensors)


@pytest.mark.parametrize("name", [*MTO, "scalarization", "scheduled_scalarization", "frozen", "cosmos"])
def test_weights_are_none_until_defined_then_one_per_task(name):
    """``current_weights()``: ``None`` before ``setup``; after it, ``None`` or ``[T]``."""
    options = {"scheduled_scalarization": {"schedule": [(0, [0.5, 0.5]), (10, [0.2, 0.8])]},
               "frozen": {"source": [[0, [0.5, 0.5]]]}}.get(name, {})
    method = build(name, **options)
    assert method.current_weights() is None
    method.setup(["a", "b"] if options else ["a", "b", "c"])  # the options name two tasks
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


# -- invariants the papers promise ----------------------------------------------------------

#: Methods that treat tasks symmetrically and draw no random numbers: relabelling the tasks
#: permutes their weights and leaves the update unchanged. (PCGrad, GradVac, GradDrop and RLW
#: draw random orders or weights; MetaBalance, gradient similarity and MTAdam single out one task;
#: frozen weights are given.)
SYMMETRIC = [
    "scalarization", "uw", "imtl_l", "dwa", "famo", "gradnorm", "mgda", "mgda_ub", "cagrad", "imtl_g",
    "nash_mtl", "aligned_mtl", "upgrad", "stch", "gls", "db_mtl", "excess_mtl", "fairgrad", "sdmgrad",
    "modo", "moco", "config", "dualproj",
]
SYMMETRIC_OPTIONS = {"stch": {"warmup_epochs": 1}}


def _linear_context(gradients, offsets, after=None):
    """Losses L_i = c_i + g_i · θ at θ = 0 (θ also the representation): every per-task gradient,
    on the parameters or on the representation, is g_i; after the step the losses are
    ``after`` (default 0.8 L)."""
    theta = nn.Parameter(torch.zeros(gradients.shape[1], dtype=gradients.dtype))
    z = theta.unsqueeze(0) * 1.0
    losses = torch.stack([c + (g * z[0]).sum() for c, g in zip(offsets, gradients)])
    ctx = StepContext(losses, features=z, shared_params=[theta], task_params=[[] for _ in offsets],
                      recompute_losses=lambda: 0.8 * losses.detach() if after is None else after)
    return theta, ctx


def _trajectory(name, steps, perm):
    method = build(name, **SYMMETRIC_OPTIONS.get(name, {}))
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


@pytest.mark.parametrize("name", SYMMETRIC)
def test_relabelling_the_tasks_permutes_the_weights_only(name):
    gen = torch.Generator().manual_seed(0)
    steps = []
    for _ in range(3):
        offsets = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
        # losses after the step: each task improves by its own factor (FAMO learns from them)
        after = offsets * (0.5 + 0.4 * torch.rand(3, generator=gen, dtype=torch.float64))
        steps.append((torch.randn(3, 5, generator=gen, dtype=torch.float64), offsets, after))
    perm = torch.tensor([2, 0, 1])
    plain = _trajectory(name, steps, torch.arange(3))
    permuted = _trajectory(name, steps, perm)
    for (d, w), (d_perm, w_perm) in zip(plain, permuted):
        torch.testing.assert_close(d_perm, d, rtol=1e-6, atol=1e-9)
        if w is not None:
            torch.testing.assert_close(w_perm, w[perm], rtol=1e-6, atol=1e-9)


#: Methods whose update conflicts with no task (g_i · d ≥ 0 for linearly independent gradients);
#: the dual-cone projections without torchjd's 1e-4 ridge (it leaves conflicts of ~1e-4),
#: Nash-MTL without its norm clipping.
NO_CONFLICT = {
    "mgda": {}, "mgda_ub": {}, "upgrad": {"reg_eps": 1e-10}, "dualproj": {"reg_eps": 1e-10},
    "config": {}, "nash_mtl": {"max_norm": 0.0}, "fairgrad": {},
}


@pytest.mark.parametrize("name", sorted(NO_CONFLICT))
def test_the_update_is_a_descent_direction_for_every_task(name):
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        gradients = torch.randn(3, 6, generator=gen, dtype=torch.float64)
        gradients[1] = -0.8 * gradients[0] + 0.3 * gradients[1]  # a strong conflict
        method = build(name, **NO_CONFLICT[name])
        method.setup(["a", "b", "c"])
        theta, ctx = _linear_context(gradients, torch.ones(3, dtype=torch.float64))
        method.backward(ctx)
        slopes = gradients @ theta.grad
        assert (slopes >= -1e-8 * gradients.norm() * theta.grad.norm()).all(), slopes
        assert theta.grad.norm() > 0


#: Methods whose update direction (or update) does not depend on the scale of a task's loss, as
#: their papers claim: scaling L_i (so g_i) by c_i leaves it unchanged.
SCALE_FREE = {"nash_mtl": "update", "db_mtl": "update", "gls": "direction", "config": "direction", "imtl_g": "direction"}


@pytest.mark.parametrize("name", sorted(SCALE_FREE))
def test_a_tasks_loss_scale_does_not_change_the_update(name):
    gen = torch.Generator().manual_seed(2)
    gradients = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    offsets = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
    scales = torch.tensor([50.0, 1.0, 0.02], dtype=torch.float64)
    updates = []
    for c in (torch.ones(3, dtype=torch.float64), scales):
        method = build(name, **({"max_norm": 0.0} if name == "nash_mtl" else {}))
        method.setup(["a", "b", "c"])
        theta, ctx = _linear_context(gradients * c[:, None], offsets * c)
        method.backward(ctx)
        updates.append(theta.grad.clone())
    a, b = updates
    if SCALE_FREE[name] == "direction":
        a, b = a / a.norm(), b / b.norm()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-9)
