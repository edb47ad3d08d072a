"""ConFIG's edge cases: small and tiny gradients (the update scales with them: weights unchanged),
zero, non-finite and no gradients, and a zero gradient among others, by hand."""

import math

import numpy as np
import torch

from scalarize.methods import build_method
from scalarize.methods.con_fig import config_weights


def _method(num_tasks=2):
    method = build_method("config")
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


# g₁ = (1, 0), g₂ = (−1, 1): d̂ = (1, 1 + √2) (test_config.py), d = (1 + √2) d̂ / ‖d̂‖²
G = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.0]], dtype=torch.float64)
D_HAT = torch.tensor([1.0, 1.0 + math.sqrt(2), 0.0], dtype=torch.float64)
D = (1 + math.sqrt(2)) * D_HAT / (D_HAT @ D_HAT)


def test_the_update_scales_with_small_and_tiny_gradients():
    for scale in (0.5, 1e-3, 1e-7, 1e3):
        torch.testing.assert_close(_method().aggregate(G * scale, torch.ones(2)), D * scale)


def test_weights_do_not_depend_on_the_gradients_scale():
    weights = config_weights((G @ G.T).numpy())
    for scale in (0.25, 1e-7):
        np.testing.assert_allclose(config_weights(((G * scale) @ (G * scale).T).numpy()), weights, rtol=1e-9)


def test_zero_and_non_finite_gradients_give_no_update():
    np.testing.assert_array_equal(config_weights(np.zeros((3, 3))), np.zeros(3))
    assert config_weights(np.zeros((3, 3))).shape == (3,)
    bad = np.array([[np.nan, 0.0], [0.0, 4.0]])
    np.testing.assert_array_equal(config_weights(bad), np.zeros(2))
    bad = np.array([[np.inf, 1.0], [1.0, 4.0]])
    np.testing.assert_array_equal(config_weights(bad), np.zeros(2))
    assert config_weights(np.zeros((0, 0))).shape == (0,)
    d = _method(3).aggregate(torch.zeros(3, 4, dtype=torch.float64), torch.ones(3))
    assert (d == 0).all() and d.shape == (4,)


def test_a_zero_gradient_among_others_is_left_out():
    # with g₃ = 0 the update is the two-task one, and g₃'s weight is 0
    rows = torch.cat([G, torch.zeros(1, 3, dtype=torch.float64)])
    method = _method(3)
    torch.testing.assert_close(method.aggregate(rows, torch.ones(3)), D)
    assert float(method.current_weights()[2]) == 0.0


def test_nearly_parallel_gradients_get_equal_weights():
    # u₁ and u₂ 1e-7 apart: U Uᵀ has an eigenvalue ~5e-15 along (1, −1), below the 1e-12 cut-off,
    # so d̂ lies along u₁ + u₂ (no rounding noise amplified by 1e14): equal weights
    G = np.array([[1.0, 0.0], [1.0, 1e-7]])
    np.testing.assert_allclose(config_weights(G @ G.T), [1.0, 1.0], rtol=0, atol=1e-9)
