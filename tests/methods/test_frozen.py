"""Frozen weights: the mean, EMA and last value of a trajectory by hand, read from a list of rows
or from a run recorded in an experiment database, normalised and applied as fixed weights."""

import pytest
import torch

from scalarize.methods import MethodError, build_method

ROWS = [[0, [1.0, 3.0]], [20, [3.0, 1.0]], [10, [2.0, 2.0]]]  # unsorted on purpose


def _method(tasks=("a", "b"), **options):
    method = build_method("frozen", **{"source": ROWS, **options})
    method.setup(list(tasks))
    return method


def test_mean_by_hand():
    # mean (2, 2) → normalised (½, ½)
    torch.testing.assert_close(_method().current_weights(), torch.tensor([0.5, 0.5]))
    # from step 10 on: (2.5, 1.5) → (0.625, 0.375)
    torch.testing.assert_close(_method(start_step=10).current_weights(), torch.tensor([0.625, 0.375]))


def test_ema_and_last_by_hand():
    # rows sorted by step: (1, 3), (2, 2), (3, 1); β = 0.5: e = (1, 3) → (1.5, 2.5) → (2.25, 1.75)
    torch.testing.assert_close(_method(reduce="ema", beta=0.5).current_weights(), torch.tensor([2.25, 1.75]) / 4)
    # β = 0.9 (default): (1, 3) → (1.1, 2.9) → (1.29, 2.71)
    torch.testing.assert_close(_method(reduce="ema").current_weights(), torch.tensor([1.29, 2.71]) / 4)
    torch.testing.assert_close(_method(reduce="last").current_weights(), torch.tensor([0.75, 0.25]))


def test_fixed_weights_scalarize_the_losses(gradient_context):
    method = _method(reduce="last")
    losses = torch.tensor([2.0, 4.0])
    assert abs(method.combine(losses).item() - (0.75 * 2 + 0.25 * 4)) < 1e-6
    ctx = gradient_context(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([0.75, 0.25]))


def test_mdl_weights_are_sampling_ratios():
    method = build_method("frozen", source=ROWS, reduce="last")
    method.setup(["d1", "d2"], "mdl")
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([0.75, 0.25]))


def _database(tmp_path):
    from scalarize.store import Store

    with Store(tmp_path) as store:
        # objectives recorded in another order than the tasks'; GradNorm-like weights summing to 2
        store.record_evaluation("gradnorm-s0", 0, 2, {}, [(1, "right", 1.5), (1, "left", 0.5), (2, "left", 1.0), (2, "right", 1.0)])
        store.record_evaluation("gradnorm-s0", 1, 4, {}, [(3, "left", 1.5), (3, "right", 0.5)])
        store.record_evaluation("other", 0, 1, {}, [(1, "left", 9.0), (1, "right", 1.0)])
    return tmp_path


def test_reads_a_runs_weights_from_an_experiment_database(tmp_path):
    directory = _database(tmp_path)
    method = build_method("frozen", source=str(directory), run="gradnorm-s0")
    method.setup(["left", "right"])
    # mean of (0.5, 1.5), (1, 1), (1.5, 0.5) = (1, 1) → (½, ½)
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.5, 0.5]))
    method = build_method("frozen", source=str(directory / "scalarize.db"), run="gradnorm-s0", reduce="last")
    method.setup(["right", "left"])  # matched by name
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.25, 0.75]))


def test_database_errors_are_one_line(tmp_path):
    directory = _database(tmp_path)
    with pytest.raises(MethodError, match="run 'missing' recorded no weights .* runs with weights: gradnorm-s0, other"):
        build_method("frozen", source=str(directory), run="missing")
    with pytest.raises(MethodError, match="method frozen: run must name the run"):
        build_method("frozen", source=str(directory))
    method = build_method("frozen", source=str(directory), run="other")
    with pytest.raises(MethodError, match="method frozen: the run's weights have no objective 'digit'; recorded: left, right") as error:
        method.setup(["left", "digit"])
    assert "\n" not in str(error.value)

