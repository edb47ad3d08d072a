"""Task kinds of dense prediction and of normalised regression, with the field's metrics.

The three dense kinds are those of NYUv2 and Cityscapes as MTAN (Liu et al., CVPR 2019),
CAGrad (Liu et al., NeurIPS 2021), Nash-MTL (Navon et al., ICML 2022), FAMO (Liu et al., NeurIPS
2023) and LibMTL evaluate them; outputs are ``[B, C, H, W]`` maps:

* ``segmentation``: cross-entropy on ``[B, C, H, W]`` logits against ``[B, H, W]`` class indices,
  pixels labelled ``ignore_index`` (default −1) left out. Metrics from one confusion matrix over
  the whole split: ``miou`` (mean over classes of TP / (TP + FP + FN), classes that neither
  occur nor are predicted left out of the mean) and ``pixel_accuracy`` (correct / valid pixels),
  both fractions, higher is better.
* ``depth``: L1 on the valid pixels (target ≠ ``invalid_value``, default 0: no measurement) of
  ``[B, 1, H, W]``. Metrics over every valid pixel of the split: ``abs_err`` (mean |ŷ − y|) and
  ``rel_err`` (mean |ŷ − y| / y), lower is better.
* ``normals``: cosine loss 1 − cos(ŷ, y) on the valid pixels (target not the zero vector) of
  ``[B, 3, H, W]``; the output need not be unit length (it is normalised here, as MTAN's model
  does in its last layer). Metrics over every valid pixel of the split, from the angle between
  ŷ and y in degrees: ``mean_angle`` and ``median_angle`` (lower is better) and
  ``within_11.25``, ``within_22.5``, ``within_30`` (fraction of pixels with an angle strictly
  below the threshold, higher is better). The median is read from a histogram of 0.005° bins
  (exact to 0.0025°), so a split of any size costs 36,000 counters.

Δm (Maninis et al. 2019) averages over every metric of a dense task, each in its own direction
(:attr:`~scalarize.data.task.TaskKind.delta_metrics`): 2 for segmentation, 2 for depth, 5 for
normals, as the papers above compute it.

Two rules differ from those codes, on purpose: (1) the training loss of a batch is the mean
over its images of each image's mean over its valid pixels (MTAN averages over the batch's
valid pixels at once); the two are equal when every image has as many valid pixels, and a
per-image loss is what stacked populations and domain mixtures need. (2) The metrics are
accumulated over the split's pixels (MTAN and Nash-MTL average per-batch values, LibMTL weights
them by batch size), so that they do not depend on the evaluation batch size. A normal is
invalid when it is the zero vector (MTAN's mask, components summing to 0, also drops unit
normals such as (0.6, −0.8, 0)).

``normalized_regression`` (QM9 as Nash-MTL and FAMO train it): the targets are standardised
(``(y − mean) / std``); the loss is the mean squared error on them; ``mae`` is the mean absolute
error in the original units (``scale`` = std times a unit factor, e.g. 1000 for eV → meV) and is
what Δm uses; ``normalized_mae`` (in standard deviations) is the primary metric, so that a mean
over tasks (model selection, PBT's fitness) weighs every target alike.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from scalarize.data.task import MeanOverSamples, MetricAccumulator, TaskKind, _reduce, _shape, register_task_kind

#: Width of a bin of the angle histogram of :class:`SurfaceNormals` (degrees).
ANGLE_BIN = 0.005
ANGLE_BINS = round(180 / ANGLE_BIN)
NORMAL_THRESHOLDS = (11.25, 22.5, 30.0)


def _per_image_mean(values: Tensor, mask: Tensor) -> Tensor:
    """``[B]``: each image's mean of ``values`` over its ``mask`` (0 for an image with none)."""
    values = values * mask
    sums = values.flatten(1).sum(1)
    counts = mask.flatten(1).sum(1).to(values.dtype)
    return sums / counts.clamp(min=1)


class Segmentation(TaskKind):
    """Semantic segmentation: cross-entropy with an ignore label; mIoU and pixel accuracy from a
    confusion matrix over the whole split (see the module docstring)."""

    name = "segmentation"
    metric_names = ("miou", "pixel_accuracy")
    primary_metric = "miou"
    higher_is_better = True
    metric_directions = {"miou": True, "pixel_accuracy": True}
    delta_metrics = ("miou", "pixel_accuracy")

    def __init__(self, ignore_index: int = -1) -> None:
        if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
            raise ValueError(f"ignore_index must be an integer, got {ignore_index!r}")
        self.ignore_index = ignore_index

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        pixels = F.cross_entropy(output, target, ignore_index=self.ignore_index, reduction="none")
        return _reduce(_per_image_mean(pixels, target != self.ignore_index), reduction)

    def accumulator(self) -> MetricAccumulator:
        return ConfusionMatrix(self.ignore_index)

    def check(self, output: Tensor, target: Tensor) -> str | None:
        if (
            output.dim() != 4
            or target.dim() != 3
            or target.is_floating_point()
            or target.shape != (output.shape[0], *output.shape[2:])
        ):
            return (
                f"a segmentation task needs [N, C, H, W] logits and [N, H, W] integer labels; got output "
                f"{_shape(output)}, target {_shape(target)} ({target.dtype})"
            )
        labels = target[target != self.ignore_index]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= output.shape[1]):
            return (
                f"labels must be in [0, {output.shape[1] - 1}] or {self.ignore_index} (ignored); "
                f"got {int(labels.min())}..{int(labels.max())}"
            )
        return None


class ConfusionMatrix:
    """A ``[C, C]`` confusion matrix (rows: true class, columns: predicted) over a split."""

    def __init__(self, ignore_index: int = -1) -> None:
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        self.matrix: Tensor | None = None

    def update(self, output: Tensor, target: Tensor) -> None:
        classes = output.shape[1]
        if self.matrix is None:
            self.matrix = torch.zeros(classes, classes, dtype=torch.int64, device=output.device)
        predicted = output.argmax(1)
        valid = (target != self.ignore_index) & (target >= 0) & (target < classes)
        index = target[valid].to(torch.int64) * classes + predicted[valid]
        self.matrix += torch.bincount(index, minlength=classes * classes).view(classes, classes)

    def compute(self) -> dict[str, float]:
        return confusion_metrics(self.matrix)


def confusion_metrics(matrix: Tensor | None) -> dict[str, float]:
    """``miou`` (mean over classes present in the targets or the predictions) and
    ``pixel_accuracy`` of a confusion matrix (rows: true class)."""
    if matrix is None or int(matrix.sum()) == 0:
        return {"miou": math.nan, "pixel_accuracy": math.nan}
    h = matrix.to(torch.float64)
    hits = h.diag()
    union = h.sum(0) + h.sum(1) - hits
    present = union > 0
    return {"miou": float((hits[present] / union[present]).mean()), "pixel_accuracy": float(hits.sum() / h.sum())}


class Depth(TaskKind):
    """Depth estimation: L1 on valid pixels; absolute and relative error over the split (see the
    module docstring)."""

    name = "depth"
    metric_names = ("abs_err", "rel_err")
    primary_metric = "abs_err"
    higher_is_better = False
    metric_directions = {"abs_err": False, "rel_err": False}
    delta_metrics = ("abs_err", "rel_err")

    def __init__(self, invalid_value: float = 0.0) -> None:
        if isinstance(invalid_value, bool) or not isinstance(invalid_value, (int, float)):
            raise ValueError(f"invalid_value must be a number, got {invalid_value!r}")
        self.invalid_value = float(invalid_value)

    def valid(self, target: Tensor) -> Tensor:
        return target != self.invalid_value

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        target = target.to(output.dtype)
        return _reduce(_per_image_mean((output - target).abs(), self.valid(target)), reduction)

    def accumulator(self) -> MetricAccumulator:
        return _DepthErrors(self)

    def check(self, output: Tensor, target: Tensor) -> str | None:
        if output.dim() != 4 or output.shape[1] != 1 or target.shape != output.shape:
            return (
                f"a depth task needs [N, 1, H, W] outputs and targets of the same shape; got output "
                f"{_shape(output)}, target {_shape(target)}"
            )
        return None


class _DepthErrors:
    def __init__(self, kind: Depth) -> None:
        self.kind = kind
        self.reset()

    def reset(self) -> None:
        self.abs = self.rel = self.count = None

    def update(self, output: Tensor, target: Tensor) -> None:
        valid = self.kind.valid(target)
        error = (output.to(torch.float64) - target.to(torch.float64))[valid].abs()
        terms = (error.sum(), (error / target[valid].to(torch.float64).abs()).sum(), valid.sum())
        if self.abs is None:
            self.abs, self.rel, self.count = terms
        else:
            self.abs, self.rel, self.count = self.abs + terms[0], self.rel + terms[1], self.count + terms[2]

    def compute(self) -> dict[str, float]:
        if self.count is None or int(self.count) == 0:
            return {"abs_err": math.nan, "rel_err": math.nan}
        count = float(self.count)
        return {"abs_err": float(self.abs) / count, "rel_err": float(self.rel) / count}


def angles_degrees(output: Tensor, target: Tensor) -> Tensor:
    """``[B, H, W]`` angle in degrees between the 3-vectors of ``output`` and ``target``
    (``[B, 3, H, W]``), as ``atan2(|a × b|, a · b)``: accurate near 0° and 180°, where ``acos``
    of the cosine is not."""
    a, b = output.to(torch.float64), target.to(torch.float64)
    cross = torch.linalg.vector_norm(torch.cross(a, b, dim=1), dim=1)
    return torch.rad2deg(torch.atan2(cross, (a * b).sum(1)))


class SurfaceNormals(TaskKind):
    """Surface normals: cosine loss; mean and median angle error and the fractions of pixels within
    11.25°, 22.5° and 30° (see the module docstring)."""

    name = "normals"
    metric_names = ("mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30")
    primary_metric = "mean_angle"
    higher_is_better = False
    metric_directions = {
        "mean_angle": False,
        "median_angle": False,
        "within_11.25": True,
        "within_22.5": True,
        "within_30": True,
    }
    delta_metrics = metric_names

    @staticmethod
    def valid(target: Tensor) -> Tensor:
        return (target != 0).any(1)

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        cosine = F.cosine_similarity(output, target.to(output.dtype), dim=1, eps=1e-8)
        return _reduce(_per_image_mean(1 - cosine, self.valid(target)), reduction)

    def accumulator(self) -> MetricAccumulator:
        return AngleErrors()

    def check(self, output: Tensor, target: Tensor) -> str | None:
        if output.dim() != 4 or output.shape[1] != 3 or target.shape != output.shape:
            return (
                f"a normals task needs [N, 3, H, W] outputs and targets of the same shape; got output "
                f"{_shape(output)}, target {_shape(target)}"
            )
        return None


class AngleErrors:
    """Sums, threshold counts and a histogram of per-pixel angle errors over a split."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.histogram: Tensor | None = None
        self.total = None
        self.within: list = []

    def update(self, output: Tensor, target: Tensor) -> None:
        angles = angles_degrees(output, target)[SurfaceNormals.valid(target)]
        bins = (angles / ANGLE_BIN).floor().clamp_(0, ANGLE_BINS - 1).to(torch.int64)
        histogram = torch.bincount(bins, minlength=ANGLE_BINS)
        within = [(angles < t).sum() for t in NORMAL_THRESHOLDS]
        if self.histogram is None:
            self.histogram, self.total, self.within = histogram, angles.sum(), within
        else:
            self.histogram += histogram
            self.total = self.total + angles.sum()
            self.within = [a + b for a, b in zip(self.within, within)]

    def compute(self) -> dict[str, float]:
        names = SurfaceNormals.metric_names
        if self.histogram is None or int(self.histogram.sum()) == 0:
            return {name: math.nan for name in names}
        count = int(self.histogram.sum())
        values = [float(self.total) / count, histogram_median(self.histogram, ANGLE_BIN)]
        values += [float(w) / count for w in self.within]
        return dict(zip(names, values))


def histogram_median(histogram: Tensor, width: float) -> float:
    """The median of the values counted in ``histogram`` (bin i holds [i·width, (i+1)·width)),
    each value taken at its bin's centre: the middle value (odd count) or the mean of the two
    middle values (even count)."""
    cumulative = histogram.cumsum(0)
    count = int(cumulative[-1])

    def kth(k: int) -> float:  # the k-th smallest value (1-based), at its bin's centre
        index = int(torch.searchsorted(cumulative, torch.tensor(k, dtype=cumulative.dtype, device=cumulative.device)))
        return (index + 0.5) * width

    if count % 2:
        return kth(count // 2 + 1)
    return 0.5 * (kth(count // 2) + kth(count // 2 + 1))


class NormalizedRegression(TaskKind):
    """Regression on standardised targets: MSE loss; MAE in the original units (``scale``) for Δm
    and MAE in standard deviations as the primary metric (see the module docstring)."""

    name = "normalized_regression"
    metric_names = ("normalized_mae", "mae")
    primary_metric = "normalized_mae"
    higher_is_better = False
    metric_directions = {"normalized_mae": False, "mae": False}
    delta_metrics = ("mae",)

    def __init__(self, scale: float = 1.0, unit: str = "") -> None:
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0 or not math.isfinite(scale):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.scale = float(scale)
        self.unit = str(unit)

    @staticmethod
    def _per_sample(output: Tensor, target: Tensor) -> Tensor:
        return (output - target.to(output.dtype)).pow(2).flatten(1).mean(1)

    def loss(self, output: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
        return _reduce(self._per_sample(output, target), reduction)

    def accumulator(self) -> MetricAccumulator:
        def per_sample(output: Tensor, target: Tensor) -> dict[str, Tensor]:
            error = (output.to(torch.float64) - target.to(torch.float64)).abs().flatten(1).mean(1)
            return {"normalized_mae": error, "mae": error * self.scale}

        return MeanOverSamples(per_sample)

    def check(self, output: Tensor, target: Tensor) -> str | None:
        if target.shape != output.shape:
            return (
                f"the target's shape {_shape(target)} differs from the head's output {_shape(output)} "
                "(e.g. [N, 1] for one property)"
            )
        return None


for _kind in (Segmentation, Depth, SurfaceNormals, NormalizedRegression):
    register_task_kind(_kind)
