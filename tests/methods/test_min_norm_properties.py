"""The exact min-norm solver on the Gramians many tasks give: rank-deficient, duplicated,
nearly duplicated, shifted and badly scaled, up to T = 120 (Hypothesis).

Optimality of ``α = argmin_{α ∈ Δ} αᵀGα`` is checked by its KKT conditions, which are necessary
and sufficient for this convex problem: ``α ≥ 0``, ``Σα = 1``, ``(Gα)_j ≥ αᵀGα`` for every j
and equality on the support, each within 1e-9 of ``max_i ‖g_i‖²``. The same test runs under
every OpenBLAS kernel in CI (``.ci/run``): an AVX-512 kernel once made the previous solver stop
at ‖d‖² = 39 where the optimum was 0.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scalarize.methods._min_norm import kkt_violation, min_norm_weights

KINDS = ("plain", "shifted", "near-duplicates", "duplicates", "scaled", "one-side", "zero-rows")
TOLERANCE = 1e-9


def gradient_rows(kind: str, num_tasks: int, rank: int, seed: int) -> np.ndarray:
    """``num_tasks`` gradients of rank at most ``rank`` (plus one for ``shifted``), in 16 + rank
    dimensions, shaped by ``kind``."""
    rng = np.random.default_rng(seed)
    dim = rank + 16
    rows = rng.standard_normal((num_tasks, rank)) @ rng.standard_normal((rank, dim))
    half = num_tasks // 2
    if kind == "shifted":  # far from the origin: a large common part, small differences
        rows = rows + 10.0 * rng.standard_normal(dim)
    elif kind == "near-duplicates":
        rows[:half] = rows[rng.integers(0, num_tasks, half)] + 1e-7 * rng.standard_normal((half, dim))
    elif kind == "duplicates":
        rows[:half] = rows[rng.integers(0, num_tasks, half)]
    elif kind == "scaled":  # norms spread over 1e-6 … 1e6
        rows = rows * 10.0 ** rng.uniform(-6, 6, size=(num_tasks, 1))
    elif kind == "one-side":  # every gradient in one orthant: the origin is outside the hull
        rows = np.abs(rows) + 0.1
    elif kind == "zero-rows":
        rows[: max(1, half // 2)] = 0.0
    return rows


def relative_kkt(gram: np.ndarray, alpha: np.ndarray) -> float:
    return kkt_violation(gram, alpha) / float(np.max(np.diag(gram)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(KINDS),
    num_tasks=st.integers(3, 120),
    rank=st.integers(1, 10),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_kkt_conditions_hold_on_hard_gramians(kind, num_tasks, rank, seed):
    rows = gradient_rows(kind, num_tasks, rank, seed)
    gram = rows @ rows.T
    alpha = min_norm_weights(gram)
    assert alpha.shape == (num_tasks,)
    assert alpha.min() >= 0.0 and abs(alpha.sum() - 1.0) <= 1e-12
    assert relative_kkt(gram, alpha) <= TOLERANCE


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("num_tasks", [60, 120])
def test_the_kkt_conditions_hold_at_the_largest_sizes(kind, num_tasks):
    """The sizes the issue's independent check found failing, every kind, ranks 1, 5 and 10."""
    for rank in (1, 5, 10):
        rows = gradient_rows(kind, num_tasks, rank, seed=num_tasks + rank)
        gram = rows @ rows.T
        assert relative_kkt(gram, min_norm_weights(gram)) <= TOLERANCE


def test_the_violation_measures_both_conditions_by_hand():
    """``kkt_violation`` on G = diag(1, 4): the optimum (0.8, 0.2) scores 0; the vertex (1, 0)
    misses the lower bound of the second gradient, ‖d‖² − (Gα)_2 = 1 − 0 = 1; (0.5, 0.5) misses
    equality on its support, |(Gα)_j − αᵀGα| = |0.5 − 1.25| = 0.75 (and 2 − 1.25 = 0.75)."""
    gram = np.diag([1.0, 4.0])
    assert kkt_violation(gram, np.array([0.8, 0.2])) == pytest.approx(0.0, abs=1e-15)
    assert kkt_violation(gram, np.array([1.0, 0.0])) == pytest.approx(1.0)
    assert kkt_violation(gram, np.array([0.5, 0.5])) == pytest.approx(0.75)


def test_near_duplicates_are_not_forced_to_share():
    """Two gradients 1e-6 apart (relative) on the optimal face cannot both take half of a weight
    when that moves d off the optimum: sharing is kept only where the KKT conditions hold."""
    rows = np.array([[1.0, 0.0, 0.0], [1.0, 1e-6, 0.0], [-1.0, 0.5, 0.0]])
    gram = rows @ rows.T
    assert relative_kkt(gram, min_norm_weights(gram)) <= 1e-12


def test_the_bounded_variable_solver_takes_over_when_nnls_hits_its_bound(monkeypatch):
    import scipy.optimize

    def out_of_iterations(*args, **kwargs):
        raise RuntimeError("Maximum number of iterations reached.")

    rows = gradient_rows("shifted", 40, 5, seed=7)
    gram = rows @ rows.T
    expected = min_norm_weights(gram)
    monkeypatch.setattr(scipy.optimize, "nnls", out_of_iterations)
    alpha = min_norm_weights(gram)
    assert relative_kkt(gram, alpha) <= TOLERANCE
    np.testing.assert_allclose(alpha @ rows, expected @ rows, atol=1e-9 * np.abs(rows).max())
