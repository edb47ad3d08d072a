"""SDMGrad: one inner step by hand, torchjd's weights over several steps (warm start), the
independent batches: weights from ξ and ξ', the update from the step's own batch, and max_norm by
hand (the shared update clipped above it, untouched below it, off at 0; heads unclipped)."""

import itertools
import math

import pytest
import torch
from torch import nn
from torchjd.aggregation import SDMGradWeighting

from scalarize.methods import INDEPENDENT_BATCHES, StepContext, build_method


def _method(num_tasks=2, **options):
    method = build_method("sdmgrad", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_one_inner_step_by_hand():
    # G = diag(2, 1): A = diag(4, 1) / s² with s = mean(2, 1) = 1.5; w = (½, ½), λ = 0.3:
    # ∇ = A (w + 0.3/2) = (0.65·4, 0.65)/2.25; w − 10 ∇ = (−11.06, −2.39) → Π_Δ = (0, 1);
    # weights (w + λ/T)/(1 + λ) = (0.15, 1.15)/1.3
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    method = _method(n_iter=1)
    d = method.aggregate(G, torch.ones(2))
    weights = torch.tensor([0.15, 1.15], dtype=torch.float64) / 1.3
    torch.testing.assert_close(method.current_weights(), weights)
    torch.testing.assert_close(d, weights @ G)
    torch.testing.assert_close(method.inner_weights, torch.tensor([0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("max_norm", "factor"),
    # the one inner step above: d = (0.3, 1.15)/1.3, ‖d‖ = √1.4125/1.3 ≈ 0.914
    [(0.0, 1.0), (1.0, 1.0), (0.5, 0.5 * 1.3 / math.sqrt(1.4125))],
)
def test_max_norm_clips_the_shared_update_only(max_norm, factor):
    theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    head = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    losses = torch.stack([2 * theta[0] + 1 + 10 * head[0], theta[1] + 1])  # G = diag(2, 1)
    ctx = StepContext(losses, features=None, shared_params=[theta], task_params=[[head], []])
    method = _method(n_iter=1, max_norm=max_norm)
    method.backward(ctx)
    weights = torch.tensor([0.15, 1.15], dtype=torch.float64) / 1.3
    torch.testing.assert_close(theta.grad, factor * torch.tensor([0.3, 1.15], dtype=torch.float64) / 1.3)
    torch.testing.assert_close(head.grad, torch.tensor([10.0], dtype=torch.float64))  # not clipped
    torch.testing.assert_close(method.current_weights(), weights)  # before the clipping
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(_method(n_iter=1, max_norm=max_norm).aggregate(G, torch.ones(2)), theta.grad)


def test_same_weights_as_torchjd_with_warm_starts():
    gen = torch.Generator().manual_seed(0)
    ours, theirs = _method(3), SDMGradWeighting()
    for _ in range(4):
        a = torch.randn(3, 5, generator=gen, dtype=torch.float64) @ torch.randn(
            5, 3, generator=gen, dtype=torch.float64
        )
        torch.testing.assert_close(ours.solve(a), theirs(a), rtol=1e-7, atol=1e-10)


def test_declares_independent_batches_and_uses_them():
    assert INDEPENDENT_BATCHES in build_method("sdmgrad").needs
    theta = nn.Parameter(torch.zeros(2, dtype=torch.float64))
    own = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)  # ζ
    others = itertools.cycle(
        [
            torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64),  # ξ
            torch.tensor([[1.0, 0.0], [0.0, 3.0]], dtype=torch.float64),
        ]
    )  # ξ'
    ctx = StepContext(
        own @ theta + 1,
        features=None,
        shared_params=[theta],
        task_params=[[], []],
        independent_losses=lambda: next(others) @ theta + 1,
    )
    method = _method(n_iter=1)
    method.backward(ctx)
    reference = _method(n_iter=1)
    weights = reference.solve(torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64))  # J_ξ J_ξ'ᵀ
    torch.testing.assert_close(method.current_weights(), weights)
    torch.testing.assert_close(theta.grad, weights @ own)


def test_inner_steps_with_momentum_by_hand():
    """Small steps that stay inside the simplex: v ← 0.5 v + A(w + λ/T), w ← Π_Δ(w − lr v)."""
    import math

    def project(a, b):
        x = min(max((1.0 + a - b) / 2.0, 0.0), 1.0)
        return [x, 1.0 - x]

    product = [[2.0, 0.5], [0.5, 1.0]]
    s = (math.sqrt(2.0) + 1.0) / 2
    a = [[x / (s * s + 1e-8) for x in row] for row in product]
    w, v, lam, lr = [0.5, 0.5], None, 0.3, 0.1
    for _ in range(3):
        shifted = [wi + lam / 2 for wi in w]
        grad = [sum(a[i][j] * shifted[j] for j in range(2)) for i in range(2)]
        v = grad if v is None else [0.5 * vi + gi for vi, gi in zip(v, grad)]
        w = project(w[0] - lr * v[0], w[1] - lr * v[1])
    assert 0.05 < w[0] < 0.45  # interior: the momentum matters
    method = _method(lr=0.1, n_iter=3)
    weights = method.solve(torch.tensor(product, dtype=torch.float64))
    torch.testing.assert_close(method.inner_weights, torch.tensor(w, dtype=torch.float64))
    torch.testing.assert_close(weights, (torch.tensor(w, dtype=torch.float64) + lam / 2) / (1 + lam))


def test_the_trainer_gives_independent_batches_from_a_stream_of_their_own():
    """SDMGrad asks for independent batches: the trainer draws them from its own sampler, so the
    training stream is untouched, and a resumed run replays them exactly."""
    from scalarize.data import load_benchmark
    from scalarize.methods import build_method
    from scalarize.models import build_model
    from scalarize.train import TrainConfig, Trainer

    bench = load_benchmark("multimnist", train_size=200, test_size=50)
    config = TrainConfig(steps=3, batch_size=20, device="cpu")
    seen = []

    def trainer(name):
        torch.manual_seed(0)
        model = build_model("mlp", bench.input_shape, bench.tasks, width=0.1)
        return Trainer(config, bench, model, build_method(name), progress=False)

    with_independent = trainer("sdmgrad")
    assert with_independent.independent_sampler is not None
    original = with_independent.independent_sampler.next_batch
    with_independent.independent_sampler.next_batch = lambda: seen.append(1) or original()
    before = with_independent.sampler.state_dict()["order"].clone()
    with_independent.train_step()
    assert len(seen) == 2  # two independent batches per step
    plain = trainer("scalarization")
    assert plain.independent_sampler is None
    assert torch.equal(plain.sampler.state_dict()["order"], before)
    assert with_independent.sampler.position == plain.sampler.position + config.batch_size
