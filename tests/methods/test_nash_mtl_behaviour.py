"""Nash-MTL's max_norm by hand (clipped above it, untouched at or below it, off at 0), zero
gradients, and the scale_heads option's check."""

import math

import pytest
import torch

from scalarize.methods import MethodError, build_method

# orthogonal g₁ = (3, 0), g₂ = (0, 4): α_i = 1/‖g_i‖, d = (1, 1), ‖d‖ = √2
G = torch.tensor([[3.0, 0.0], [0.0, 4.0]], dtype=torch.float64)


def _method(**options):
    method = build_method("nash_mtl", **options)
    method.setup(["a", "b"])
    return method


@pytest.mark.parametrize(
    ("max_norm", "factor"),
    [(1.0, 1 / math.sqrt(2)), (0.5, 0.5 / math.sqrt(2)), (2.0, 1.0), (0.0, 1.0), (math.sqrt(2), 1.0)],
)
def test_max_norm_by_hand(max_norm, factor):
    method = _method(max_norm=max_norm)
    d = method.aggregate(G, torch.ones(2))
    torch.testing.assert_close(d, factor * torch.tensor([1.0, 1.0], dtype=torch.float64))
    torch.testing.assert_close(method.current_weights(), factor * torch.tensor([1 / 3, 1 / 4], dtype=torch.float64))
    torch.testing.assert_close(method.alpha, torch.tensor([1 / 3, 1 / 4], dtype=torch.float64))  # unclipped


def test_zero_gradients_give_no_update():
    method = _method()
    d = method.aggregate(torch.zeros(2, 3, dtype=torch.float64), torch.ones(2))
    assert (d == 0).all() and d.shape == (3,)


@pytest.mark.parametrize("value", [1, "yes", None])
def test_scale_heads_is_a_boolean(value):
    with pytest.raises(MethodError) as error:
        build_method("nash_mtl", scale_heads=value)
    assert str(error.value) == f"method nash_mtl: scale_heads must be true or false, got {value!r}"
