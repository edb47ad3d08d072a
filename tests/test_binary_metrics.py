"""The binary kind's metrics (exact AUC, GAUC, logloss), its NaN masks and their directions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from scalarize.data.auc import auc, gauc, logloss
from scalarize.data.task import Task


def test_auc_by_hand_with_ties() -> None:
    # positives 0.8, 0.4; negatives 0.4, 0.1: pairs (0.8>0.4)=1, (0.8>0.1)=1, (0.4=0.4)=1/2, (0.4>0.1)=1
    assert auc(np.array([0.8, 0.4, 0.4, 0.1]), np.array([1, 1, 0, 0])) == pytest.approx(3.5 / 4)
    assert auc(np.array([1.0, 1.0, 1.0]), np.array([1, 0, 0])) == 0.5  # all tied
    assert auc(np.array([0.1, 0.9]), np.array([1, 0])) == 0.0
    assert auc(np.array([0.1, 0.9]), np.array([0, 1])) == 1.0
    assert math.isnan(auc(np.array([0.1, 0.9]), np.array([1, 1])))  # one class: undefined


def test_auc_matches_sklearn() -> None:
    sklearn = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for n in (10, 1000, 20000):
        scores = rng.integers(0, 7, n).astype(np.float64)  # many ties
        labels = rng.random(n) < 0.3
        assert auc(scores, labels) == pytest.approx(sklearn.roc_auc_score(labels, scores), abs=1e-12)
        scores = rng.normal(size=n)
        assert auc(scores, labels) == pytest.approx(sklearn.roc_auc_score(labels, scores), abs=1e-12)


def test_gauc_weights_groups_by_impressions() -> None:
    scores = np.array([0.9, 0.1, 0.2, 0.8, 0.5, 0.3, 0.7, 0.6])
    labels = np.array([1, 0, 1, 0, 0, 1, 1, 1])
    groups = np.array([5, 5, 2, 2, 2, 9, 9, 9])  # group 9: positives only, left out
    by_group = {5: auc(scores[:2], labels[:2]), 2: auc(scores[2:5], labels[2:5])}
    assert by_group == {5: 1.0, 2: 0.0}
    assert gauc(scores, labels, groups) == pytest.approx((2 * 1.0 + 3 * 0.0) / 5)


def test_logloss_is_stable() -> None:
    assert logloss(np.array([0.0]), np.array([1])) == pytest.approx(math.log(2))
    assert logloss(np.array([1000.0, -1000.0]), np.array([1, 0])) == pytest.approx(0.0)


def test_binary_task_masks_nan_labels() -> None:
    task = Task("cvr", "binary", 1)
    logits = torch.tensor([[2.0], [-1.0], [0.5], [3.0]])
    labels = torch.tensor([1.0, float("nan"), 0.0, float("nan")])
    per_sample = task.loss(logits, labels, reduction="none")
    assert per_sample[1] == 0 and per_sample[3] == 0 and torch.isfinite(per_sample).all()
    assert task.loss(logits, labels) == pytest.approx(float(per_sample.sum() / 4))
    logits.requires_grad_(True)
    task.loss(logits, labels).backward()
    assert logits.grad is not None and logits.grad[1] == 0 and torch.isfinite(logits.grad).all()
    accumulator = task.accumulator()
    accumulator.update(logits.detach(), labels)
    values = accumulator.compute()
    assert values["auc"] == 1.0 and values["accuracy"] == 0.5  # 2.0 -> 1 right, 0.5 -> 0 wrong
    assert values["logloss"] == pytest.approx(logloss(np.array([2.0, 0.5]), np.array([1, 0])))
    assert "gauc" not in values


def test_binary_task_with_groups_reports_gauc() -> None:
    task = Task("click", "binary", 1, primary_metric="gauc")
    target = torch.tensor([[1.0, 0], [0.0, 0], [1.0, 1], [0.0, 1], [float("nan"), 1]])
    output = torch.tensor([0.9, 0.1, 0.2, 0.8, 5.0])
    task.check(output.unsqueeze(1), target)
    task.check_kind(output.unsqueeze(1), target)
    accumulator = task.accumulator()
    accumulator.update(output[:2], target[:2])
    accumulator.update(output[2:], target[2:])
    assert accumulator.compute()["gauc"] == pytest.approx(0.5)
    assert task.loss(output, target, reduction="none").shape == (5,)


def test_metric_directions() -> None:
    assert Task("a", "binary", 1, primary_metric="logloss").higher_is_better is False
    assert Task("a", "binary", 1, primary_metric="auc").higher_is_better is True
    assert Task("a", "binary", 1).primary_metric == "accuracy"
    assert Task("a", "regression", 1, primary_metric="mse").higher_is_better is False
