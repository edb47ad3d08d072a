"""NYUv2 (Silberman et al., ECCV 2012) for dense multi-task learning, in the preprocessed layout of
MTAN (Liu et al., CVPR 2019) that CAGrad, Nash-MTL, FAMO and LibMTL read; nothing is downloaded::

    root/train/image/<i>.npy    288 x 384 x 3 (channels last), i = 0 .. 794
    root/train/label/<i>.npy    288 x 384, 13 classes, -1 ignored
    root/train/depth/<i>.npy    288 x 384 x 1, 0 where there is no measurement
    root/train/normal/<i>.npy   288 x 384 x 3, unit normals (0 vectors: none)
    root/val/...                the same for the 654 evaluation images

``root`` defaults to ``$SCALARIZE_DATA/nyuv2``. Three tasks: ``segmentation`` (13 classes: mIoU,
pixel accuracy), ``depth`` (absolute and relative error) and ``normals`` (mean and median angle
error, within 11.25°, 22.5°, 30°); the kinds and metrics are in :mod:`scalarize.data.dense`.
The papers train on ``train/`` and report on ``val/`` (our test split) without a separate
validation split: ``val_fraction: 0`` (default) evaluates ``val/`` as the validation split too
(model selection then sees the test images, as the papers' "best epoch" does); ``val_fraction >
0`` carves a validation split from ``train/`` instead. Any image size is read, the same for every
file; the published one is 288 x 384. The published single-task values for Δm are in
``PUBLISHED_SINGLE_TASK`` (see ``configs/nyuv2-*.yaml``).
"""

from __future__ import annotations

from scalarize.data.benchmark import Benchmark
from scalarize.data.loaders._common import resolve_root
from scalarize.data.loaders._dense_npy import Field, dense_benchmark
from scalarize.data.task import Task

NEEDS = "NYUv2 needs train/ and val/, each with image/, label/, depth/, normal/ of <index>.npy files, under root"
CLASSES = 13
FIELDS = (
    Field("image", None, 3),
    Field("label", "segmentation", 0, labels=True),
    Field("depth", "depth", 1),
    Field("normal", "normals", 3),
)
#: The single-task values that Nash-MTL and FAMO compute Δm against (SegNet single-task models,
#: from CAGrad; Nash-MTL's ``experiments/nyuv2/utils.py``, ``BASE``), as fractions like our metrics.
PUBLISHED_SINGLE_TASK = {
    "segmentation/miou": 0.3830,
    "segmentation/pixel_accuracy": 0.6376,
    "depth/abs_err": 0.6754,
    "depth/rel_err": 0.2780,
    "normals/mean_angle": 25.01,
    "normals/median_angle": 19.21,
    "normals/within_11.25": 0.3014,
    "normals/within_22.5": 0.5720,
    "normals/within_30": 0.6915,
}


def nyuv2(
    root: str | None = None, val_fraction: float = 0.0, max_per_split: int = 0, seed: int = 0, eval_batch: int = 8
) -> Benchmark:
    """MTL benchmark: semantic segmentation (13 classes), depth and surface normals on NYUv2.

    Args:
        root: the folder holding ``train/`` and ``val/``; default ``$SCALARIZE_DATA/nyuv2``.
        val_fraction: the share of ``train/`` carved out for validation; 0 (default): validate
            on ``val/``, the test split, as the papers do.
        max_per_split: at most this many images per split (a fixed random subset), 0: all.
        seed: the seed of the validation carve and of the subsets.
        eval_batch: the most images per evaluation batch (LibMTL's test batch: 8).
    """
    path = resolve_root(root, "nyuv2", NEEDS)
    tasks = [Task("segmentation", "segmentation", CLASSES), Task("depth", "depth", 1), Task("normals", "normals", 3)]
    return dense_benchmark(
        "nyuv2",
        path,
        FIELDS,
        tasks,
        NEEDS,
        val_fraction,
        seed,
        max_per_split,
        "NYUv2 (MTAN's preprocessed release): 13-class segmentation, depth, surface normals",
        {"root": str(path), "published_single_task": dict(PUBLISHED_SINGLE_TASK)},
        eval_batch,
    )
