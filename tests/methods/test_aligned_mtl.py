"""Aligned-MTL: orthogonal gradients of different norms are aligned to equal norms."""

import math

import torch

from scalarize.methods import build_method


def _method(**options):
    method = build_method("aligned_mtl", **options)
    method.setup(["a", "b"])
    return method


def test_orthogonal_gradients_by_hand():
    # G Gᵀ = diag(4, 1): V = I, Λ^{-1/2} = diag(½, 1), λ_min = 1 → B = diag(½, 1);
    # weights B·(½, ½) = (¼, ½) → d = ¼ (2, 0) + ½ (0, 1) = (½, ½): both aligned gradients
    # have norm √λ_min = 1.
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    method = _method()
    torch.testing.assert_close(method.aggregate(G, torch.ones(2)), torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.25, 0.5]))
    # "rmse" scales by the mean eigenvalue 2.5 instead
    d = _method(scale_mode="rmse").aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, math.sqrt(2.5) * torch.tensor([0.5, 0.5]))


def test_aligned_gradients_are_orthogonal_with_equal_norms():
    # B = √λ_min V Λ^{-1/2} Vᵀ built by hand; the aligned gradients are the rows of B G.
    G = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    method = build_method("aligned_mtl")
    method.setup(["a", "b", "c"])
    d = method.aggregate(G, torch.ones(3))
    lam, V = torch.linalg.eigh(G @ G.T)
    B = lam.min().sqrt() * V @ torch.diag(lam.rsqrt()) @ V.T
    aligned = B @ G  # rows: the aligned task gradients
    torch.testing.assert_close(aligned @ aligned.T, lam.min() * torch.eye(3, dtype=G.dtype))
    torch.testing.assert_close(d, aligned.mean(dim=0))
