"""The dense task kinds and normalized regression: losses and metrics on hand-computed cases, and
Δm over every metric of a task (scalarize.data.dense, scalarize.train.evaluate)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scalarize.data import Task
from scalarize.data.dense import ANGLE_BIN, angles_degrees, confusion_metrics
from scalarize.pareto import delta_m
from scalarize.train.evaluate import check_single_task, reference_values


def _logits(predicted: list[int], classes: int) -> torch.Tensor:
    """[1, C, 1, N] logits whose argmax along C is ``predicted``."""
    return (5.0 * F.one_hot(torch.tensor(predicted), classes).T.float()).view(1, classes, 1, -1)


def test_segmentation_confusion_matrix_by_hand():
    task = Task("seg", "segmentation", 3)
    target = torch.tensor([[[0, 0, 1, 1, 2, 2, -1]]])
    output = _logits([0, 1, 1, 1, 2, 0, 2], 3)
    acc = task.accumulator()
    acc.update(output, target)
    # rows = true class: [1 1 0], [0 2 0], [1 0 1]; IoU 1/3, 2/3, 1/2; the -1 pixel is ignored
    assert acc.compute()["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert acc.compute()["pixel_accuracy"] == pytest.approx(4 / 6)
    assert acc.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_segmentation_split_into_batches_and_absent_classes():
    task = Task("seg", "segmentation", 4)  # class 3: never a target nor predicted: left out of the mean
    target = torch.tensor([[[0, 0, 1, 1, 2, 2, -1]]])
    output = _logits([0, 1, 1, 1, 2, 0, 2], 4)
    whole, parts = task.accumulator(), task.accumulator()
    whole.update(output, target)
    parts.update(output[..., :3], target[..., :3])
    parts.update(output[..., 3:], target[..., 3:])
    assert parts.compute() == whole.compute()
    assert whole.compute()["miou"] == pytest.approx(0.5)
    assert math.isnan(confusion_metrics(torch.zeros(3, 3, dtype=torch.long))["miou"])


def test_segmentation_loss_ignores_and_averages_per_image():
    task = Task("seg", "segmentation", 3)
    torch.manual_seed(0)
    output = torch.randn(2, 3, 2, 2)
    target = torch.tensor([[[0, 1], [2, -1]], [[-1, -1], [-1, 1]]])
    per_image = task.loss(output, target, reduction="none")
    first = F.cross_entropy(output[:1], target[:1], ignore_index=-1)  # mean over its 3 valid pixels
    second = F.cross_entropy(output[1:], target[1:], ignore_index=-1)  # its one valid pixel
    assert torch.allclose(per_image, torch.stack([first, second]))
    assert torch.allclose(task.loss(output, target), (first + second) / 2)


def test_segmentation_checks_shapes_and_labels():
    task = Task("seg", "segmentation", 3)
    with pytest.raises(ValueError, match=r"\[N, C, H, W\] logits and \[N, H, W\] integer labels"):
        task.check(torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2))
    with pytest.raises(ValueError, match=r"labels must be in \[0, 2\] or -1"):
        task.check(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 3], [1, -1]]]))
    task.check(torch.zeros(1, 3, 2, 2), torch.tensor([[[0, 2], [1, -1]]]))


def test_depth_by_hand():
    task = Task("depth", "depth", 1)
    output = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    target = torch.tensor([[[[2.0, 0.0], [1.0, 4.0]]]])  # 0: no measurement
    acc = task.accumulator()
    acc.update(output, target)
    metrics = acc.compute()
    assert metrics["abs_err"] == pytest.approx((1 + 2 + 0) / 3)
    assert metrics["rel_err"] == pytest.approx((1 / 2 + 2 / 1 + 0) / 3)
    assert task.loss(output, target).item() == pytest.approx(1.0)
    # a second image with one valid pixel: the batch loss is the mean of the images' means
    output2 = torch.cat([output, torch.full_like(output, 5.0)])
    target2 = torch.cat([target, torch.tensor([[[[0.0, 0.0], [0.0, 2.0]]]])])
    assert task.loss(output2, target2, reduction="none").tolist() == pytest.approx([1.0, 3.0])
    acc.reset()
    acc.update(output2, target2)
    assert acc.compute()["abs_err"] == pytest.approx((1 + 2 + 0 + 3) / 4)  # over the split's pixels


def test_normal_angles_by_hand():
    task = Task("normals", "normals", 3)
    up = (0.0, 0.0, 1.0)
    ten = (2 * math.sin(math.radians(10)), 0.0, 2 * math.cos(math.radians(10)))  # not unit length
    outputs = [up, (1.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), ten, (1.0, 1.0, 1.0)]
    targets = [up, up, up, up, up, (0.0, 0.0, 0.0)]  # the last pixel has no normal
    output = torch.tensor(outputs).T.reshape(1, 3, 1, 6)
    target = torch.tensor(targets).T.reshape(1, 3, 1, 6)
    assert angles_degrees(output, target)[0, 0, :5].tolist() == pytest.approx([0, 45, 90, 90, 10], abs=1e-5)
    acc = task.accumulator()
    acc.update(output, target)
    metrics = acc.compute()
    assert metrics["mean_angle"] == pytest.approx((0 + 45 + 90 + 90 + 10) / 5)
    assert metrics["median_angle"] == pytest.approx(45, abs=ANGLE_BIN / 2)
    assert metrics["within_11.25"] == pytest.approx(2 / 5)
    assert metrics["within_22.5"] == pytest.approx(2 / 5)
    assert metrics["within_30"] == pytest.approx(2 / 5)
    cosines = torch.tensor([1, math.cos(math.pi / 4), 0, 0, math.cos(math.radians(10))])
    assert task.loss(output, target).item() == pytest.approx(float((1 - cosines).mean()), abs=1e-6)
    acc.reset()  # an even count: the mean of the two middle values
    acc.update(output[..., :4], target[..., :4])
    assert acc.compute()["median_angle"] == pytest.approx((45 + 90) / 2, abs=ANGLE_BIN / 2)


def test_normal_median_matches_numpy_over_batches():
    torch.manual_seed(1)
    task = Task("normals", "normals", 3)
    acc = task.accumulator()
    angles = []
    for _ in range(3):
        output, target = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
        acc.update(output, target)
        angles.append(angles_degrees(output, target).flatten())
    expected = torch.cat(angles).numpy()
    metrics = acc.compute()
    assert metrics["median_angle"] == pytest.approx(float(np.median(expected)), abs=ANGLE_BIN)
    assert metrics["mean_angle"] == pytest.approx(float(expected.mean()))
    assert metrics["within_30"] == pytest.approx(float((expected < 30).mean()))


def test_normalized_regression_by_hand():
    task = Task("mu", "normalized_regression", 1, options={"scale": 2.0, "unit": "D"})
    output, target = torch.tensor([[1.0], [3.0]]), torch.tensor([[0.0], [1.0]])
    acc = task.accumulator()
    acc.update(output, target)
    assert acc.compute() == pytest.approx({"normalized_mae": 1.5, "mae": 3.0})
    assert task.loss(output, target).item() == pytest.approx(2.5)
    assert task.primary_metric == "normalized_mae" and task.delta_metrics() == [("mae", False)]
    with pytest.raises(ValueError, match="scale must be a positive number"):
        Task("mu", "normalized_regression", 1, options={"scale": 0})


def test_delta_metrics_every_metric_in_its_direction():
    seg, depth, normals = Task("s", "segmentation", 13), Task("d", "depth", 1), Task("n", "normals", 3)
    assert seg.delta_metrics() == [("miou", True), ("pixel_accuracy", True)]
    assert depth.delta_metrics() == [("abs_err", False), ("rel_err", False)]
    assert [up for _, up in normals.delta_metrics()] == [False, False, True, True, True]
    # a task whose primary metric is set to one the kind does not list: that metric alone
    assert Task("s", "segmentation", 3, primary_metric="loss", higher_is_better=False).delta_metrics() == [
        ("loss", False)
    ]
    # NYUv2's published single-task vector against itself and a hand-computed change
    metrics = [("s/" + m, up) for m, up in seg.delta_metrics()] + [("d/" + m, up) for m, up in depth.delta_metrics()]
    stl = {"s/miou": 0.40, "s/pixel_accuracy": 0.60, "d/abs_err": 0.50, "d/rel_err": 0.25}
    values = reference_values(metrics, {}, stl)
    assert delta_m(values, values, [up for _, up in metrics]) == 0
    better = [0.44, 0.60, 0.45, 0.30]  # +10 %, 0, +10 % (lower error), -20 % (higher error)
    assert delta_m(better, values, [up for _, up in metrics]) == pytest.approx(100 * (0.1 + 0 + 0.1 - 0.2) / 4)


def test_single_task_values_are_checked():
    metrics = [("s/miou", True), ("d/abs_err", False)]
    check_single_task({"s/miou": 0.4, "d/abs_err": 0.5}, metrics)
    with pytest.raises(ValueError, match=r"single_task: no value for d/abs_err"):
        check_single_task({"s/miou": 0.4}, metrics)
    with pytest.raises(ValueError, match=r"single_task.s/accuracy: not a Δm metric of this benchmark; allowed: s/miou"):
        check_single_task({"s/miou": 0.4, "d/abs_err": 0.5, "s/accuracy": 0.9}, metrics)
    with pytest.raises(ValueError, match=r"single_task.d/abs_err: must be a positive finite number"):
        check_single_task({"s/miou": 0.4, "d/abs_err": 0.0}, metrics)
    # from single-task runs: each metric from its objective's run
    assert reference_values(metrics, {"s": {"s/miou": 0.3}, "d": {"d/abs_err": 0.7}}) == [0.3, 0.7]
    assert reference_values(metrics, {"s": {"s/miou": 0.3}}) is None
