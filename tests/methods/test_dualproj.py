"""DualProj: the mean when nothing conflicts, a projection by hand, and no conflict with any
task afterwards."""

import torch

from scalarize.methods import build_method


def _method(num_tasks=2, **options):
    method = build_method("dualproj", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_non_conflicting_mean_is_kept():
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # mean (0, ½): g₁·m = 0, g₂·m = ½
    torch.testing.assert_close(_method().aggregate(G, torch.ones(2)), G.mean(dim=0), atol=1e-3, rtol=0)


def test_projection_by_hand():
    # g₁ = (1, 0), g₂ = (−2, 1): mean (−½, ½) conflicts with g₁; its projection onto
    # {x₁ ≥ 0, −2x₁ + x₂ ≥ 0} is (0, ½), i.e. v = (1, ½)·… : d = (0, ½) (up to the 1e-4 ridge)
    G = torch.tensor([[1.0, 0.0], [-2.0, 1.0]], dtype=torch.float64)
    d = _method().aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, torch.tensor([0.0, 0.5], dtype=torch.float64), atol=1e-3, rtol=0)


def test_the_update_conflicts_with_no_task():
    """Up to the ridge ``reg_eps · I`` added to the trace-normalised Gramian (torchjd's 1e-4
    leaves conflicts of a few 1e-4 relative; a tiny ridge leaves none)."""
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        G = torch.randn(4, 6, generator=gen, dtype=torch.float64)
        d = _method(4).aggregate(G, torch.ones(4))
        assert (G @ d >= -1e-3 * G.norm() * d.norm()).all()
        d = _method(4, reg_eps=1e-10).aggregate(G, torch.ones(4))
        assert (G @ d >= -1e-8 * G.norm() * d.norm()).all()
