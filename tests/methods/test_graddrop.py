"""GradDrop: each coordinate keeps one sign, chosen with probability equal to its purity; the
same rule as torchjd's GradDrop with the method's own generator."""

import torch
from torchjd.aggregation import GradDrop as TorchJDGradDrop

from scalarize.methods import build_method


def _method(num_tasks=2, **options):
    method = build_method("graddrop", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_gradients_of_one_sign_are_summed_unchanged():
    method = _method(seed=0)
    G = torch.tensor([[1.0, -2.0, 0.5], [3.0, -1.0, 0.0]])
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), G.sum(dim=0))


def test_the_smallest_problems():
    """One task and one shared coordinate: its gradient, whatever its sign; no shared coordinate:
    an empty direction."""
    method = _method(num_tasks=1, seed=0)
    for value in (2.0, -3.0):
        torch.testing.assert_close(method.aggregate(torch.tensor([[value]]), torch.ones(1)), torch.tensor([value]))
    assert _method(seed=0).aggregate(torch.zeros(2, 0), torch.ones(2)).shape == (0,)


def test_each_coordinate_keeps_one_sign():
    method = _method(3, seed=1)
    G = torch.randn(3, 50, generator=torch.Generator().manual_seed(2))
    d = method.aggregate(G, torch.ones(3))
    positive = G.clamp(min=0).sum(dim=0)
    negative = G.clamp(max=0).sum(dim=0)
    assert torch.all(torch.isclose(d, positive) | torch.isclose(d, negative))


def test_the_positive_sign_is_kept_with_probability_equal_to_its_purity():
    # g = (3, −1): P = ½ (1 + 2/4) = 0.75
    method = _method(seed=0)
    G = torch.tensor([[3.0], [-1.0]])
    kept_positive = sum(float(method.aggregate(G, torch.ones(2))) > 0 for _ in range(2000))
    assert abs(kept_positive / 2000 - 0.75) < 0.04


def test_leak_one_is_the_plain_sum():
    method = _method(3, leak=1.0, seed=0)
    G = torch.randn(3, 10)
    torch.testing.assert_close(method.aggregate(G, torch.ones(3)), G.sum(dim=0))


def test_same_as_torchjd():
    G = torch.randn(3, 40, generator=torch.Generator().manual_seed(0))
    ours = _method(3, seed=7).aggregate(G, torch.ones(3))
    torch.manual_seed(7)
    torch.testing.assert_close(ours, TorchJDGradDrop()(G))
