"""Small pins of the run record (train/record.py) that the engines' tests do not observe: weights as
a list or a tensor, a missing validation loss, the record before any evaluation, the peak memory
and what ``finish`` reports by default."""

from __future__ import annotations

import math

import pytest
import torch

from scalarize.train.record import RunRecord, objective_score

VALS = [{"a/loss": 0.8, "b/loss": 0.2}, {"a/loss": 0.3, "b/loss": 0.6}]


@pytest.mark.parametrize("weights", [[3.0, 1.0], (3.0, 1.0), torch.tensor([3.0, 1.0])])
def test_weights_as_a_list_a_tuple_or_a_tensor_score_alike(weights):
    score = objective_score(VALS[0], ["a", "b"], weights)
    assert type(score) is float and score == pytest.approx(-(0.75 * 0.8 + 0.25 * 0.2))
    record = RunRecord("r", ["a", "b"], [("a/accuracy", True)])
    record.log_weights(1, weights)
    for step, val in enumerate(VALS, start=1):
        record.evaluated(step, [1.0, 1.0], val, {}, weights)
    assert record.best["evaluation"] == 1 and type(record.best["score"]) is float
    assert record.best["score"] == pytest.approx(-(0.75 * 0.3 + 0.25 * 0.6))


def test_a_missing_or_non_finite_loss_scores_minus_infinity_unless_its_weight_is_zero():
    assert objective_score({"a/loss": 0.5}, ["a", "b"]) == -math.inf
    assert objective_score({"a/loss": 0.5, "b/loss": math.nan}, ["a", "b"], [1.0, 1.0]) == -math.inf
    assert objective_score({"a/loss": 0.5}, ["a", "b"], [1.0, 0.0]) == pytest.approx(-0.5)


def test_the_record_before_any_evaluation_and_by_default():
    record = RunRecord("r", ["a", "b"], [("a/accuracy", True)])
    result = record.result("diverged", 0)
    assert (result.best_evaluation, result.best_step, result.val, result.test) == (-1, 0, {}, {})
    assert result.objectives == ["a", "b"] and result.seconds == 0.0
    assert record.finish("completed", 3).seconds == 0.0


def test_the_step_memory_is_the_peak_over_the_steps():
    record = RunRecord("r", ["a"], [("a/accuracy", True)])
    assert record.step_memory is None
    for peak in (5, 9, 3):
        record.measure_memory(peak)
    assert record.step_memory == 9 and record.costs(3)["step_memory_bytes"] == 9.0
