"""Smaller behaviours of several methods by hand: the interval in range errors, checkpoints taken
before the first step, RLW's sum normalisation, gradient similarity's main task and modes on
small gradients, and the scheduled scalarization's refusals."""

import io
import math

import pytest
import torch
from registered import setting_of
from test_method_contract import MTO, build

from scalarize.methods import MethodError, build_method
from scalarize.methods._common import check_real


def test_range_errors_name_open_ends_of_one_sided_intervals():
    with pytest.raises(MethodError) as error:
        check_real("m", "k", 2.0, high=1)
    assert str(error.value) == "method m: k must be in (-inf, 1], got 2.0"
    with pytest.raises(MethodError) as error:
        check_real("m", "k", 1.0, high=1, high_open=True)
    assert str(error.value) == "method m: k must be in (-inf, 1), got 1.0"
    with pytest.raises(MethodError) as error:
        check_real("m", "k", -2.5, low=-2, low_open=False)
    assert str(error.value) == "method m: k must be in [-2, inf), got -2.5"
    assert check_real("m", "k", -1e300) == -1e300


@pytest.mark.parametrize("name", MTO)
def test_a_checkpoint_taken_before_the_first_step_loads(name):
    method = build(name)
    method.setup(["a", "b"], setting_of(method))
    buffer = io.BytesIO()
    torch.save(method.state_dict(), buffer)
    buffer.seek(0)
    fresh = build(name)
    fresh.setup(["a", "b"], setting_of(fresh))
    fresh.load_state_dict(torch.load(buffer, weights_only=False), strict=True)
    for key, value in method.state_dict().items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(fresh.state_dict()[key], value)


@pytest.mark.parametrize("distribution", ["uniform", "dirichlet"])
def test_rlw_sum_normalisation_by_hand(distribution):
    method = build_method("rlw", distribution=distribution, normalization="sum", seed=3)
    method.setup(["a", "b", "c"], setting_of(method))
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        u = torch.rand(3, generator=gen, dtype=torch.float64)
        raw = u if distribution == "uniform" else -torch.log1p(-u)
        expected = (raw / raw.sum()).float()
        losses = torch.tensor([1.0, 2.0, 4.0])
        value = method.combine(losses)
        torch.testing.assert_close(method.current_weights(), expected)
        assert math.isclose(float(value), float(expected @ losses), rel_tol=1e-6)


def _similarity(**options):
    method = build_method("gradient_similarity", **options)
    method.setup(["a", "b", "c"], setting_of(method))
    return method


# small gradients (norms 0.1 and less): cosines do not depend on lengths
SMALL = torch.tensor([[0.06, 0.08], [0.0, 0.05], [-0.03, 0.0]], dtype=torch.float64)


def test_weighted_mode_on_small_gradients_by_hand():
    method = _similarity()
    method.aggregate(SMALL, torch.ones(3))
    # cos(g_b, g_a) = 0.8, cos(g_c, g_a) = −0.6 → 0
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 0.8, 0.0], dtype=torch.float64))


def test_main_task_and_binary_mode_by_hand():
    method = _similarity(main_task="b", mode="binary")
    d = method.aggregate(SMALL.float(), torch.ones(3))
    # main b: cos(a, b) = 0.8 > 0 → 1; cos(c, b) = 0 → 0 (not > 0)
    weights = method.current_weights()
    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights, torch.tensor([1.0, 1.0, 0.0]))
    torch.testing.assert_close(d, torch.tensor([0.06, 0.13]))


def test_main_task_must_be_a_name():
    with pytest.raises(MethodError) as error:
        build_method("gradient_similarity", main_task=1)
    assert str(error.value) == "method gradient_similarity: main_task must be a task name, got 1"
    method = build_method("gradient_similarity", main_task="z")
    with pytest.raises(MethodError) as error:
        method.setup(["a", "b"], setting_of(method))
    assert str(error.value) == "method gradient_similarity: main_task 'z' is not a task; tasks: a, b"
    assert build_method("gradient_similarity").main_index == 0


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ([], "method scheduled_scalarization: schedule must not be empty"),
        ([(1, [1.0, 1.0])], "method scheduled_scalarization: schedule steps must start at 0 and increase"),
        (
            [(0, [1.0, 1.0]), (5, [1.0, 2.0]), (3, [2.0, 1.0])],
            "method scheduled_scalarization: schedule steps must start at 0 and increase",
        ),
    ],
)
def test_scheduled_refusals(schedule, message):
    with pytest.raises(MethodError) as error:
        build_method("scheduled_scalarization", schedule=schedule)
    assert str(error.value) == message


def test_scheduled_starts_with_its_first_weights():
    method = build_method("scheduled_scalarization", schedule=[(0, [3.0, 1.0]), (10, [1.0, 1.0])])
    method.setup(["a", "b"], setting_of(method))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.75, 0.25]))


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "weights: expected 2 values (one per task), got 1"),
        ([1.0, -1.0], "weights: weights must be >= 0, got [1.0, -1.0]"),
        ([0.0, 0.0], "weights: weights must not all be zero"),
        ([1.0, float("inf")], "weights: every weight must be a finite number, got [1.0, inf]"),
    ],
)
def test_scalarization_weight_errors_name_the_key(weights, message):
    method = build_method("scalarization", weights=weights)
    with pytest.raises(MethodError) as error:
        method.setup(["a", "b"], setting_of(method))
    assert str(error.value) == message


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_graddrop_draws_in_the_gradients_dtype_by_hand(dtype):
    """GradDrop: P = ½(1 + Σg/Σ|g|) per coordinate; u ~ U(0, 1) from the seeded generator, in the
    gradients' dtype; keep g_i > 0 where P > u, g_i < 0 where P < u."""
    G = torch.tensor([[1.0, -2.0, 0.5, 3.0], [-0.5, 1.0, 0.5, -1.0], [0.25, 1.0, -2.0, -1.0]], dtype=dtype)
    method = build_method("graddrop", seed=11)
    method.setup(["a", "b", "c"], setting_of(method))
    gen = torch.Generator().manual_seed(11)
    for _ in range(3):
        purity = 0.5 * (1 + G.sum(0) / G.abs().sum(0))
        u = torch.rand(4, generator=gen, dtype=dtype)
        keep = ((purity > u) & (G > 0)) | ((purity < u) & (G < 0))
        torch.testing.assert_close(method.aggregate(G, torch.ones(3)), (keep.to(dtype) * G).sum(0))
