"""MGDA and MGDA-UB options pinned by hand: every normalisation against the exact two-task closed
form on rescaled gradients (independent of the code under test), the Gramian form of the
normalisations equal to the row form, MGDA-UB's normalisations, the Frank–Wolfe solver's
options (defaults, ε stop, iteration cap) and the one-line option errors."""

import math

import pytest
import torch

from scalarize.methods import MethodError, build_method
from scalarize.methods.mgda import normalise_gramian, normalise_rows

NORMALIZATIONS = ["none", "l2", "loss", "loss+"]


def _method(name="mgda", num_tasks=2, **options):
    method = build_method(name, **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def _scaled(rows, losses, normalization):
    """Sener & Koltun's rescaled gradients, written out row by row in plain Python."""
    out = []
    for row, loss in zip(rows.tolist(), losses.tolist()):
        norm = math.sqrt(sum(x * x for x in row))
        factor = {"none": 1.0, "l2": norm, "loss": abs(loss), "loss+": abs(loss) * norm}[normalization]
        out.append([x / factor for x in row])
    return out


def _closed_form(g1, g2):
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
    expected = _closed_form(*_scaled(ROWS, LOSSES, normalization))
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
    expected = torch.tensor(_closed_form(*_scaled(ROWS, LOSSES, normalization)), dtype=torch.float64)
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
