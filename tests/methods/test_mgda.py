"""MGDA and MGDA-UB: the closed-form min-norm point of two gradients, weights on the simplex,
and MGDA-UB's weights from the representation's gradients.

MGDA and MGDA-UB options pinned by hand: every normalisation against the exact two-task closed
form on rescaled gradients (independent of the code under test), the Gramian form of the
normalisations equal to the row form, MGDA-UB's normalisations, the Frank–Wolfe solver's
options (defaults, ε stop, iteration cap) and the one-line option errors."""

import math

import pytest
import torch
from torch import nn

from scalarize.methods import MethodError, StepContext, build_method
from scalarize.methods.mgda import normalise_gramian, normalise_rows


def _method(name="mgda", num_tasks=2, **options):
    method = build_method(name, **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def _closed_form(g1, g2):
    alpha = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    alpha = min(max(alpha, 0.0), 1.0)
    return torch.tensor([alpha, 1 - alpha])


def test_two_gradients_by_hand(gradient_context):
    # g1 = (1, 0), g2 = (0, 2): α₁ = ((g2−g1)·g2)/‖g1−g2‖² = 4/5; d = (0.8, 0.4), and d·g1 = d·g2.
    method = _method()
    ctx = gradient_context(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([0.8, 0.4]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))


def test_matches_the_closed_form_on_random_pairs_and_clips():
    method = _method()
    gen = torch.Generator().manual_seed(0)
    pairs = [torch.randn(2, 5, generator=gen, dtype=torch.float64) for _ in range(20)]
    pairs.append(torch.tensor([[1.0, 0.0], [2.0, 0.1]], dtype=torch.float64))  # α clipped to 1
    for G in pairs:
        expected = _closed_form(G[0], G[1]).to(G)
        torch.testing.assert_close(method.aggregate(G, torch.ones(2)), expected @ G)
    assert float(method.current_weights()[0]) == 1.0


def test_weights_on_the_simplex_and_minimal_norm():
    method = _method(num_tasks=4)
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(4, 6, generator=gen, dtype=torch.float64)
    d = method.aggregate(G, torch.ones(4))
    w = method.current_weights()
    assert (w >= 0).all() and abs(float(w.sum()) - 1) < 1e-12
    # no random point of the hull has a smaller norm (Dirichlet(1) = normalised exponentials)
    e = -torch.log(torch.rand(2000, 4, generator=gen, dtype=torch.float64))
    candidates = e / e.sum(dim=1, keepdim=True)
    assert (candidates @ G).norm(dim=1).min() >= d.norm() - 1e-12


def test_l2_normalisation_finds_alpha_on_unit_gradients():
    method = _method(normalization="l2")
    G = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    method.aggregate(G, torch.ones(2))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 0.5]))


def test_mgda_ub_uses_the_representation_gradients():
    # z = θ (a [1, 2] representation); ∇_z L1 = (1, 0), ∇_z L2 = (0, 2) → α = (0.8, 0.2)
    theta = nn.Parameter(torch.tensor([1.0, 1.0]))
    z = theta.unsqueeze(0) * 1.0
    losses = torch.stack([z[0, 0] + 1, 2 * z[0, 1] + 1])
    ctx = StepContext(losses, features=z, shared_params=[theta], task_params=[[], []])
    method = _method("mgda_ub")
    method.backward(ctx)
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.8, 0.2]))
    torch.testing.assert_close(theta.grad, torch.tensor([0.8, 0.4]))


def _exact_min_norm(gram):
    """Brute force over every active set: for each subset S, the min-norm point of the affine
    hull of {g_i, i ∈ S} (the bordered KKT system); the feasible one (weights ≥ 0) of least
    norm is the optimum, which lies in the relative interior of some face."""
    import itertools

    import numpy as np

    size, best = gram.shape[0], None
    for r in range(1, size + 1):
        for subset in itertools.combinations(range(size), r):
            idx = list(subset)
            system = np.zeros((r + 1, r + 1))
            system[:r, :r] = gram[np.ix_(idx, idx)]
            system[:r, r] = system[r, :r] = 1.0
            rhs = np.zeros(r + 1)
            rhs[r] = 1.0
            try:
                solution = np.linalg.solve(system, rhs)
            except np.linalg.LinAlgError:
                solution = np.linalg.lstsq(system, rhs, rcond=None)[0]
            if np.abs(system @ solution - rhs).max() > 1e-10 or solution[:r].min() < -1e-12:
                continue
            alpha = np.zeros(size)
            alpha[idx] = np.clip(solution[:r], 0, None)
            alpha /= alpha.sum()
            value = alpha @ gram @ alpha
            if best is None or value < best[0] - 1e-15:
                best = (value, alpha)
    return best[1]


def _rows(kind, num_tasks, rng):
    import numpy as np

    if kind == "random":
        return rng.normal(size=(num_tasks, 12))
    if kind == "zero-weights":  # gradients around a common direction: the optimum drops some
        return rng.normal(size=(num_tasks, 12)) + 2.0
    if kind == "rank-deficient":
        return rng.normal(size=(num_tasks, 2)) @ rng.normal(size=(2, 12))
    if kind == "rank-one":  # all on one line through the origin, both signs
        return rng.normal(size=(num_tasks, 1)) @ rng.normal(size=(1, 12))
    if kind == "identical":
        return np.tile(rng.normal(size=(1, 12)), (num_tasks, 1))
    rows = rng.normal(size=(num_tasks, 12)) + 1.0  # "duplicates": two equal gradients
    rows[-1] = rows[0]
    return rows


KINDS = ["random", "zero-weights", "rank-deficient", "rank-one", "identical", "duplicates"]


@pytest.mark.parametrize(
    ("num_tasks", "kind"),
    [(t, k) for t in (3, 4, 6) for k in KINDS] + [(10, k) for k in ("random", "zero-weights", "rank-deficient")],
)
def test_exact_against_a_brute_force_solve_over_every_active_set(num_tasks, kind):
    import numpy as np

    from scalarize.methods._min_norm import min_norm_weights

    rng = np.random.default_rng(100 * num_tasks + len(kind))
    for _ in range(3 if num_tasks < 10 else 1):
        rows = _rows(kind, num_tasks, rng)
        gram = rows @ rows.T
        ours, exact = min_norm_weights(gram), _exact_min_norm(gram)
        assert ours.min() >= 0 and abs(ours.sum() - 1) < 1e-12
        scale = np.linalg.norm(rows, axis=1).max()
        # the direction is unique (α need not be, for dependent gradients)
        assert np.linalg.norm((ours - exact) @ rows) <= 1e-9 * scale
        # KKT: every gradient's product with d is ≥ ‖d‖², with equality on the support
        d = ours @ rows
        assert (rows @ d >= d @ d - 1e-9 * scale**2).all()
        assert np.abs((rows @ d - d @ d)[ours > 0]).max() <= 1e-9 * scale**2
        if kind in ("random", "zero-weights"):  # unique α: exact zeros where the optimum has them
            np.testing.assert_allclose(ours, exact, atol=1e-9)
            assert ((ours == 0) == (exact <= 1e-12)).all()


def test_zero_weights_are_exactly_zero_and_identical_gradients_share():
    import numpy as np

    from scalarize.methods._min_norm import min_norm_weights

    # g3 = (2, 2) lies beyond the segment [g1, g2] = [(1, 0), (0, 1)]: the optimum (½, ½, 0)
    rows = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])
    alpha = min_norm_weights(rows @ rows.T)
    np.testing.assert_allclose(alpha, [0.5, 0.5, 0.0], rtol=0, atol=1e-15)
    assert alpha[2] == 0.0
    same = np.tile([[3.0, -1.0]], (4, 1))
    np.testing.assert_allclose(min_norm_weights(same @ same.T), np.full(4, 0.25))
    np.testing.assert_allclose(min_norm_weights(np.zeros((3, 3))), np.full(3, 1 / 3))


@pytest.mark.parametrize("num_tasks", [20, 40, 60])
def test_exact_at_many_tasks_satisfies_kkt(num_tasks):
    import numpy as np

    from scalarize.methods._min_norm import min_norm_weights

    rng = np.random.default_rng(num_tasks)
    for rows in (rng.normal(size=(num_tasks, 50)) + 0.3, rng.normal(size=(num_tasks, 5)) @ rng.normal(size=(5, 50))):
        alpha = min_norm_weights(rows @ rows.T)
        d = alpha @ rows
        scale = np.linalg.norm(rows, axis=1).max() ** 2
        assert alpha.min() >= 0 and abs(alpha.sum() - 1) < 1e-12
        assert (rows @ d >= d @ d - 1e-9 * scale).all()
        assert np.abs((rows @ d - d @ d)[alpha > 0]).max() <= 1e-9 * scale


def test_the_default_solver_is_the_exact_one_and_frank_wolfe_is_not():
    """A solver that stops early (Frank–Wolfe at its defaults, or after one iteration) misses
    the exact weights at T = 5; the default does not."""
    import numpy as np

    rng = np.random.default_rng(3)
    rows = torch.from_numpy(rng.normal(size=(5, 12)) + 0.5)
    exact = torch.from_numpy(_exact_min_norm((rows @ rows.T).numpy()))
    default = _method(num_tasks=5)
    default.aggregate(rows, torch.ones(5))
    torch.testing.assert_close(default.current_weights(), exact, atol=1e-9, rtol=0)
    fw = _method(num_tasks=5, solver="frank_wolfe")
    fw.aggregate(rows, torch.ones(5))
    assert (fw.current_weights() - exact).abs().max() > 1e-4
    one = _method(num_tasks=5, solver="frank_wolfe", max_iters=1)
    one.aggregate(rows, torch.ones(5))
    assert (one.current_weights() - exact).abs().max() > 1e-2
    # Frank–Wolfe converges (slowly) when allowed to: far closer with a tight ε and many steps
    tight = _method(num_tasks=5, solver="frank_wolfe", epsilon=1e-12, max_iters=20_000)
    tight.aggregate(rows, torch.ones(5))
    assert (tight.current_weights() - exact).abs().max() < (fw.current_weights() - exact).abs().max()


def test_frank_wolfe_one_step_by_hand():
    # G = diag(1, 4, 9): α⁰ = ⅓; Gα = (⅓, 4/3, 3) → t = 0; a = ⅓, b = 14/9, c = 1;
    # γ = (b − a)/(b + c − 2a) = (11/9)/(17/9) = 11/17; α¹ = (6/17)·⅓ + 11/17 e₀.
    import numpy as np

    from scalarize.methods._min_norm import frank_wolfe

    alpha = frank_wolfe(np.diag([1.0, 4.0, 9.0]), epsilon=1e-3, max_iters=1)
    np.testing.assert_allclose(alpha, [2 / 17 + 11 / 17, 2 / 17, 2 / 17], rtol=1e-12)


def test_solver_options_are_checked():
    from scalarize.methods import MethodError

    with pytest.raises(MethodError, match="method mgda: epsilon is an option of solver 'frank_wolfe' only"):
        build_method("mgda", epsilon=1e-6)
    with pytest.raises(MethodError, match="method mgda_ub: solver must be one of 'exact', 'frank_wolfe', got 'qp'"):
        build_method("mgda_ub", solver="qp")
    with pytest.raises(MethodError, match="method mgda: max_iters must be >= 1, got 0"):
        build_method("mgda", solver="frank_wolfe", max_iters=0)


@pytest.mark.parametrize("num_tasks", [2, 3, 10, 40])
@pytest.mark.parametrize("kind", ["random", "rank-deficient", "identical"])
def test_the_numpy_frank_wolfe_is_torchjds_iteration(num_tasks, kind):
    """``solver="frank_wolfe"``: the same iterates as torchjd's MGDAWeighting (written in tensor
    operations), to rounding."""
    import numpy as np
    from torchjd.aggregation import MGDAWeighting

    from scalarize.methods._min_norm import MinNormWeighting, frank_wolfe

    rng = np.random.default_rng(num_tasks)
    rows = {
        "random": rng.normal(size=(num_tasks, 30)) + 0.3,
        "rank-deficient": rng.normal(size=(num_tasks, 2)) @ rng.normal(size=(2, 30)),
        "identical": np.tile(rng.normal(size=(1, 30)), (num_tasks, 1)),
    }[kind]
    gram = rows @ rows.T
    for epsilon, max_iters in [(1e-3, 100), (1e-6, 250), (0.5, 3)]:
        theirs = MGDAWeighting(epsilon=epsilon, max_iters=max_iters)(torch.from_numpy(gram)).numpy()
        ours = frank_wolfe(gram, epsilon, max_iters)
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    for weighting in (MinNormWeighting(), MinNormWeighting("frank_wolfe")):
        weights = weighting(torch.from_numpy(gram).float())
        assert weights.dtype == torch.float32 and abs(float(weights.sum()) - 1) < 1e-6


@pytest.mark.parametrize("normalization", ["loss", "loss+"])
def test_loss_normalisations_by_hand(normalization):
    # g1 = (2, 0), g2 = (0, 1), L = (4, 1). "loss": rows g_i/L_i = (½, 0), (0, 1): α₁ = 1/(¼ + 1)
    # = 0.8; "loss+": g_i/(L_i ‖g_i‖) = (¼, 0), (0, 1): α₁ = 1/(1/16 + 1) = 16/17. α is then
    # applied to the raw gradients.
    G = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    method = _method(normalization=normalization)
    d = method.aggregate(G, torch.tensor([4.0, 1.0]))
    a = 0.8 if normalization == "loss" else 16 / 17
    torch.testing.assert_close(method.current_weights(), torch.tensor([a, 1 - a], dtype=torch.float64))
    torch.testing.assert_close(d, torch.tensor([2 * a, 1 - a], dtype=torch.float64))


NORMALIZATIONS = ["none", "l2", "loss", "loss+"]


def _scaled(rows, losses, normalization):
    """Sener & Koltun's rescaled gradients, written out row by row in plain Python."""
    out = []
    for row, loss in zip(rows.tolist(), losses.tolist()):
        norm = math.sqrt(sum(x * x for x in row))
        factor = {"none": 1.0, "l2": norm, "loss": abs(loss), "loss+": abs(loss) * norm}[normalization]
        out.append([x / factor for x in row])
    return out


def _closed_form_plain(g1, g2):
    """α₁ = clip(((g₂ − g₁)·g₂) / ‖g₁ − g₂‖², 0, 1) in plain Python."""
    diff = [b - a for a, b in zip(g1, g2)]
    alpha = sum(d * b for d, b in zip(diff, g2)) / sum(d * d for d in diff)
    alpha = min(max(alpha, 0.0), 1.0)
    return [alpha, 1.0 - alpha]


# three-dimensional gradients (T = 2 ≠ n = 3), with different lengths and losses, one negative
ROWS = torch.tensor([[3.0, 0.0, 4.0], [0.0, 1.0, 0.5]], dtype=torch.float64)


LOSSES = torch.tensor([2.0, -0.25], dtype=torch.float64)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_each_normalisation_gives_the_closed_form_of_its_rescaled_gradients(normalization):
    expected = _closed_form_plain(*_scaled(ROWS, LOSSES, normalization))
    method = _method(normalization=normalization)
    d = method.aggregate(ROWS, LOSSES)
    torch.testing.assert_close(method.current_weights(), torch.tensor(expected, dtype=torch.float64))
    # α is applied to the raw gradients
    torch.testing.assert_close(d, torch.tensor(expected, dtype=torch.float64) @ ROWS)


def test_the_normalisations_give_four_different_weightings():
    weights = set()
    for normalization in NORMALIZATIONS:
        method = _method(normalization=normalization)
        method.aggregate(ROWS, LOSSES)
        weights.add(round(float(method.current_weights()[0]), 6))
    assert len(weights) == 4


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_normalised_rows_by_hand_keep_dtype_and_shape(normalization):
    rows = ROWS.float()
    out = normalise_rows(rows, LOSSES, normalization)  # float64 losses do not promote the rows
    assert out.dtype == torch.float32 and out.shape == (2, 3)
    torch.testing.assert_close(out, torch.tensor(_scaled(ROWS, LOSSES, normalization), dtype=torch.float32))


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_normalisations_stay_on_the_rows_device(normalization):
    # the meta device: a scale made on another device (the host) would fail to combine
    rows = torch.empty(3, 5, device="meta")
    losses = torch.empty(3, device="meta")
    out = normalise_rows(rows, losses, normalization)
    assert out.device.type == "meta" and out.shape == (3, 5)
    gram = normalise_gramian(torch.empty(3, 3, device="meta"), losses, normalization)
    assert gram.device.type == "meta" and gram.shape == (3, 3)


@pytest.mark.parametrize("size", [1.0, 0.05])  # gradients longer and shorter than 1
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_gramian_normalisation_is_the_gramian_of_the_normalised_rows(normalization, size):
    gen = torch.Generator().manual_seed(0)
    rows = torch.randn(4, 7, generator=gen, dtype=torch.float64) * size
    rows[2] = 0.0  # a zero gradient: no division by zero, its row and column stay 0
    losses = torch.tensor([0.5, -2.0, 1.0, 3.0], dtype=torch.float64)
    scaled = torch.tensor(_scaled(rows[[0, 1, 3]], losses[[0, 1, 3]], normalization), dtype=torch.float64)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    keep = torch.tensor([0, 1, 3])
    expected[keep.unsqueeze(1), keep.unsqueeze(0)] = scaled @ scaled.T
    torch.testing.assert_close(normalise_gramian(rows @ rows.T, losses, normalization), expected)
    normalised = normalise_rows(rows, losses, normalization)
    assert torch.isfinite(normalised).all() and (normalised[2] == 0).all()
    torch.testing.assert_close(normalised @ normalised.T, expected)


@pytest.mark.parametrize("normalization", ["l2", "loss", "loss+"])
def test_half_precision_rows_stay_half_precision(normalization):
    rows = torch.tensor([[3.0, 4.0], [0.0, 2.0]], dtype=torch.bfloat16)
    out = normalise_rows(rows, torch.tensor([2.0, 1.0]), normalization)
    assert out.dtype == torch.bfloat16
    gram = normalise_gramian((rows @ rows.T), torch.tensor([2.0, 1.0]), normalization)
    assert gram.dtype == torch.bfloat16


def test_gramian_normalisation_keeps_float32():
    gram = torch.tensor([[4.0, 1.0], [1.0, 9.0]])
    out = normalise_gramian(gram, torch.tensor([1.0, 2.0], dtype=torch.float64), "loss+")
    assert out.dtype == torch.float32
    # D G D with D = 1/(|L| ‖g‖) = (1/2, 1/6)
    torch.testing.assert_close(out, torch.tensor([[1.0, 1 / 12], [1 / 12, 0.25]]))


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_mgda_ub_normalisations_by_hand(normalization):
    """MGDA-UB: the representation z = θ (a [1, 3] batch), L_i = r_i · z + c_i, so ∇_z L_i = r_i."""
    from torch import nn

    from scalarize.methods import StepContext

    theta = nn.Parameter(torch.ones(3, dtype=torch.float64))
    z = theta.unsqueeze(0) * 1.0
    offsets = LOSSES - ROWS.sum(dim=1)  # the losses at θ = 1 are LOSSES
    losses = torch.stack([(z[0] * ROWS[i]).sum() + offsets[i] for i in range(2)])
    ctx = StepContext(losses, features=z, shared_params=[theta], task_params=[[], []])
    method = _method("mgda_ub", normalization=normalization)
    method.backward(ctx)
    expected = torch.tensor(_closed_form_plain(*_scaled(ROWS, LOSSES, normalization)), dtype=torch.float64)
    torch.testing.assert_close(method.current_weights(), expected)
    torch.testing.assert_close(theta.grad, expected @ ROWS)
    # the row form of the weights (used without the trainer's Gramian) agrees
    torch.testing.assert_close(method.weights(ROWS, LOSSES), expected)


def test_solver_defaults_and_frank_wolfe_defaults():
    exact = build_method("mgda")
    assert exact.normalization == "none" and exact.weighting.solver == "exact"
    assert repr(exact.weighting) == "MinNormWeighting(solver='exact')"
    fw = build_method("mgda", solver="frank_wolfe")
    assert fw.weighting.solver == "frank_wolfe"
    assert fw.weighting.epsilon == 1e-3 and fw.weighting.max_iters == 100
    assert repr(fw.weighting) == "MinNormWeighting(solver='frank_wolfe', epsilon=0.001, max_iters=100)"
    fw = build_method("mgda_ub", solver="frank_wolfe", epsilon=0.25, max_iters=7, normalization="l2")
    assert (fw.weighting.epsilon, fw.weighting.max_iters, fw.normalization) == (0.25, 7, "l2")


def _fw_by_hand(gram, steps):
    """Frank–Wolfe from the uniform point, written on the gradients' Gramian in plain Python."""
    size = len(gram)
    alpha = [1.0 / size] * size
    gammas = []
    for _ in range(steps):
        g_alpha = [sum(gram[i][j] * alpha[j] for j in range(size)) for i in range(size)]
        t = min(range(size), key=lambda i: g_alpha[i])
        a, b, c = g_alpha[t], sum(alpha[i] * g_alpha[i] for i in range(size)), gram[t][t]
        gamma = 1.0 if c <= a else 0.0 if b <= a else (b - a) / (b + c - 2 * a)
        alpha = [(1 - gamma) * x for x in alpha]
        alpha[t] += gamma
        gammas.append(gamma)
    return alpha, gammas


ROWS3 = torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)


def test_frank_wolfe_iteration_count_by_hand():
    gram = (ROWS3 @ ROWS3.T).tolist()
    expected = {}
    for steps in (1, 2, 3, 5):
        alpha, gammas = _fw_by_hand(gram, steps)
        assert min(gammas) > 1e-3  # the default ε does not stop these first steps
        method = _method(num_tasks=3, solver="frank_wolfe", max_iters=steps)
        method.aggregate(ROWS3, torch.ones(3))
        torch.testing.assert_close(method.current_weights(), torch.tensor(alpha, dtype=torch.float64))
        expected[steps] = alpha
    assert expected[1] != expected[2] != expected[3]


def test_frank_wolfe_stops_at_the_first_step_below_epsilon():
    gram = (ROWS3 @ ROWS3.T).tolist()
    _, gammas = _fw_by_hand(gram, 6)
    # ε between the 2nd and 3rd step sizes stops after the first step smaller than it
    first_small = next(i for i, g in enumerate(gammas) if g < gammas[1])
    epsilon = gammas[1] * 0.999 if first_small > 1 else None
    assert epsilon is not None
    stop = next(i for i, g in enumerate(gammas) if g < epsilon) + 1
    alpha, _ = _fw_by_hand(gram, stop)
    method = _method(num_tasks=3, solver="frank_wolfe", epsilon=epsilon, max_iters=100)
    method.aggregate(ROWS3, torch.ones(3))
    torch.testing.assert_close(method.current_weights(), torch.tensor(alpha, dtype=torch.float64))
    longer, _ = _fw_by_hand(gram, stop + 1)
    assert max(abs(x - y) for x, y in zip(alpha, longer)) > 1e-6  # so stopping there shows


def test_exact_two_task_solver_ignores_frank_wolfe_and_is_exact_in_one_go():
    # the exact solver at T = 3 on orthogonal gradients: α ∝ 1/‖g_i‖² = (36, 9, 4)/49
    method = _method(num_tasks=3)
    method.aggregate(ROWS3, torch.ones(3))
    torch.testing.assert_close(method.current_weights(), torch.tensor([36, 9, 4], dtype=torch.float64) / 49)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"normalization": "L2"}, "method mgda: normalization must be one of 'none', 'l2', 'loss', 'loss+', got 'L2'"),
        ({"solver": "cvx"}, "method mgda: solver must be one of 'exact', 'frank_wolfe', got 'cvx'"),
        ({"max_iters": 5}, "method mgda: max_iters is an option of solver 'frank_wolfe' only, got solver 'exact'"),
        ({"epsilon": 0.1}, "method mgda: epsilon is an option of solver 'frank_wolfe' only, got solver 'exact'"),
        ({"solver": "frank_wolfe", "epsilon": 0.0}, "method mgda: epsilon must be in (0, inf), got 0.0"),
        ({"solver": "frank_wolfe", "epsilon": -1e-3}, "method mgda: epsilon must be in (0, inf), got -0.001"),
        ({"solver": "frank_wolfe", "max_iters": 0}, "method mgda: max_iters must be >= 1, got 0"),
        ({"solver": "frank_wolfe", "max_iters": 2.5}, "method mgda: max_iters must be an integer, got 2.5"),
    ],
)
def test_invalid_options_are_one_line_errors(options, message):
    with pytest.raises(MethodError) as error:
        build_method("mgda", **options)
    assert str(error.value) == message


def test_smallest_valid_frank_wolfe_options_are_accepted():
    method = build_method("mgda", solver="frank_wolfe", epsilon=1e-300, max_iters=1)
    assert method.weighting.epsilon == 1e-300 and method.weighting.max_iters == 1


def test_min_norm_weighting_defaults_and_refusal():
    from scalarize.methods._min_norm import MinNormWeighting

    fw = MinNormWeighting("frank_wolfe")
    assert (fw.epsilon, fw.max_iters) == (1e-3, 100)  # torchjd's MGDAWeighting defaults
    assert MinNormWeighting().solver == "exact"
    with pytest.raises(ValueError) as error:
        MinNormWeighting("qp")
    assert str(error.value) == "solver must be one of ('exact', 'frank_wolfe'), got 'qp'"
    # weights come back in the Gramian's dtype
    gram = torch.tensor([[1.0, 0.0], [0.0, 4.0]])
    weights = MinNormWeighting()(gram)
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor([0.8, 0.2]))
