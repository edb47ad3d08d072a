"""Frozen weights: the mean, EMA and last value of a trajectory by hand, read from a list of rows
or from a run recorded in an experiment database, normalised and applied as fixed weights.

Frozen weights: the summary before normalisation, the setting, weights of zero, and every
refusal of a bad source (rows or database) as its exact one-line ``MethodError``; a database's
incomplete or non-finite records are left out, wherever they fall."""

import sqlite3

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
        store.record_evaluation(
            "gradnorm-s0", 0, 2, {}, [(1, "right", 1.5), (1, "left", 0.5), (2, "left", 1.0), (2, "right", 1.0)]
        )
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
    with pytest.raises(
        MethodError, match="method frozen: the run's weights have no objective 'digit'; recorded: left, right"
    ) as error:
        method.setup(["left", "digit"])
    assert "\n" not in str(error.value)


BAD = "method frozen: source must be a list of [step, [weights...]] rows or a path to an experiment directory"


def _error(**options):
    with pytest.raises(MethodError) as error:
        build_method("frozen", **options)
    assert "\n" not in str(error.value)
    return str(error.value)


def test_summary_is_before_normalisation():
    assert build_method("frozen", source=ROWS).summary() == [2.0, 2.0]
    assert build_method("frozen", source=ROWS[:2]).summary() == [2.0, 2.0]
    assert build_method("frozen", source=[[0, [1.0, 2.0]], [1, [3.0, 10.0]]]).summary() == [2.0, 6.0]
    assert build_method("frozen", source=ROWS, reduce="last").summary() == [3.0, 1.0]
    assert build_method("frozen", source=ROWS, reduce="ema", beta=0.0).summary() == [3.0, 1.0]


def test_default_setting_is_mtl_and_a_zero_weight_is_allowed():
    method = build_method("frozen", source=[[0, [0.0, 2.0]]])
    method.setup(["a", "b"])
    assert method.setting == "mtl" and method.sampling_weights() is None
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.0, 1.0]))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ([], BAD),
        (3, BAD),
        (b"rows", BAD),
        ([[0, [1.0, 2.0]], [1, [1.0, 2.0], 3]], f"{BAD}; got the row [1, [1.0, 2.0], 3]"),
        ([5], f"{BAD}; got the row 5"),
        ([[0, 2.0]], f"{BAD}; got the row [0, 2.0]"),
        ([[True, [1.0, 2.0]]], "method frozen: a row's step must be an integer >= 0, got True"),
        ([[-1, [1.0, 2.0]]], "method frozen: a row's step must be an integer >= 0, got -1"),
        ([[1.5, [1.0, 2.0]]], "method frozen: a row's step must be an integer >= 0, got 1.5"),
        ([[0, [1.0, "x"]]], "method frozen: weights must be numbers, got [1.0, 'x']"),
        ([[0, [1.0, None]]], "method frozen: weights must be numbers, got [1.0, None]"),
        ([[0, [1.0, float("inf")]]], "method frozen: weights must be finite, got [1.0, inf]"),
        ([[0, [1.0, 2.0]], [1, [1.0]]], "method frozen: every row must have the same number of weights"),
    ],
)
def test_bad_rows_are_refused(source, message):
    assert _error(source=source) == message


def test_other_refusals():
    assert (
        _error(source=ROWS, run="x") == "method frozen: run names a run of a database source; source is a list of rows"
    )
    assert _error(source=ROWS, start_step=21) == "method frozen: source has no weights at or after step 21"
    assert build_method("frozen", source=ROWS, start_step=20).trajectory == [(20, [3.0, 1.0])]
    method = build_method("frozen", source=ROWS)
    with pytest.raises(MethodError) as error:
        method.setup(["a", "b", "c"])
    assert str(error.value) == "method frozen: source rows have 2 weights, expected 3 (one per task)"
    for rows, summary in (([[0, [-1.0, 2.0]]], "[-1.0, 2.0]"), ([[0, [0.0, 0.0]]], "[0.0, 0.0]")):
        method = build_method("frozen", source=rows)
        with pytest.raises(MethodError) as error:
            method.setup(["a", "b"])
        assert str(error.value) == f"method frozen: the summarised weights must be >= 0 and not all 0, got {summary}"


def _weights_database(path, records):
    path.mkdir(exist_ok=True)
    with sqlite3.connect(path / "scalarize.db") as connection:
        connection.execute("CREATE TABLE weights (run TEXT, step INTEGER, objective TEXT, value REAL)")
        connection.executemany("INSERT INTO weights VALUES (?, ?, ?, ?)", records)
    connection.close()
    return path


def test_incomplete_and_non_finite_records_are_left_out_anywhere(tmp_path):
    records = [
        ("r", 0, "a", 1.0),
        ("r", 0, "b", 3.0),
        ("r", 1, "a", 5.0),  # step 1: no "b" (incomplete)
        ("r", 2, "a", None),
        ("r", 2, "b", 1.0),  # step 2: a NULL (a skipped step)
        ("r", 3, "a", 3.0),
        ("r", 3, "b", 1.0),  # after the bad ones: kept
    ]
    directory = _weights_database(tmp_path / "exp", records)
    method = build_method("frozen", source=str(directory), run="r")
    assert method.trajectory == [(0, [1.0, 3.0]), (3, [3.0, 1.0])]
    assert method.summary() == [2.0, 2.0]


def test_database_refusals(tmp_path):
    directory = _weights_database(tmp_path / "exp", [("r", 0, "a", None), ("r", 0, "b", 1.0)])
    database = str(directory / "scalarize.db")
    assert _error(source=str(directory), run="r") == (
        f"method frozen: run 'r' has no complete finite weight records in {database!r}"
    )
    assert _error(source=str(directory), run="") == (
        "method frozen: run must name the run whose weights to take (source is a database)"
    )
    assert _error(source=str(directory), run=3) == (
        "method frozen: run must name the run whose weights to take (source is a database)"
    )
    empty = _weights_database(tmp_path / "empty", [])
    assert _error(source=str(empty), run="r") == (
        f"method frozen: run 'r' recorded no weights in {str(empty / 'scalarize.db')!r}; runs with weights: none"
    )
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "scalarize.db").write_bytes(b"not a database at all" * 100)
    message = _error(source=str(tmp_path / "broken"), run="r")
    assert message.startswith(
        f"method frozen: cannot read weights from {str(tmp_path / 'broken' / 'scalarize.db')!r}: "
    )
    assert _error(source=str(tmp_path / "none"), run="r") == (
        f"method frozen: source {str(tmp_path / 'none')!r}: no scalarize.db there (not an experiment directory)"
    )
