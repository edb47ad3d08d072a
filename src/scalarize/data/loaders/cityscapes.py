"""Cityscapes (Cordts et al., CVPR 2016) for dense multi-task learning, in the preprocessed layout
of MTAN (Liu et al., CVPR 2019; its 128 x 256 release, ``cityscapes2``) that CAGrad, Nash-MTL,
FAMO and LibMTL read; nothing is downloaded::

    root/train/image/<i>.npy      128 x 256 x 3 (channels last), i = 0 .. 2974
    root/train/label_7/<i>.npy    128 x 256, 7 classes, -1 ignored (also label_2, label_19)
    root/train/depth/<i>.npy      128 x 256 x 1 (MTAN's inverse depth), 0: no measurement
    root/val/...                  the same for the 500 evaluation images

LibMTL's copy renames ``label_7/`` to ``label/``: with ``classes: 7`` and no ``label_7/``, a
``label/`` folder is read instead. ``root`` defaults to ``$SCALARIZE_DATA/cityscapes``. Two
tasks: ``segmentation`` (mIoU, pixel accuracy) and ``depth`` (absolute and relative error). As
for NYUv2 (:mod:`scalarize.data.loaders.nyuv2`), ``val/`` is the test split and, with
``val_fraction: 0`` (default), the validation split too.
"""

from __future__ import annotations

from scalarize.data.benchmark import Benchmark
from scalarize.data.loaders._common import resolve_root
from scalarize.data.loaders._dense_npy import Field, dense_benchmark
from scalarize.data.task import Task

NEEDS = "Cityscapes needs train/ and val/, each with image/, label_<classes>/ (or label/), depth/ of <index>.npy files"
CLASS_COUNTS = (2, 7, 19)
#: The single-task values FAMO computes Δm against (``experiments/cityscapes/utils.py``, ``BASE``,
#: "from CAGrad"), 7 classes. Its relative error (27.77) is in the units of its inverse-depth maps.
PUBLISHED_SINGLE_TASK = {
    "segmentation/miou": 0.7401,
    "segmentation/pixel_accuracy": 0.9316,
    "depth/abs_err": 0.0125,
    "depth/rel_err": 27.77,
}


def cityscapes(
    root: str | None = None, classes: int = 7, val_fraction: float = 0.0, max_per_split: int = 0, seed: int = 0
) -> Benchmark:
    """MTL benchmark: semantic segmentation (``classes``: 2, 7 or 19) and depth on Cityscapes.

    Args:
        root: the folder holding ``train/`` and ``val/``; default ``$SCALARIZE_DATA/cityscapes``.
        classes: which labels: ``label_<classes>/`` (7: the papers' protocol).
        val_fraction, max_per_split, seed, eval_batch: as for ``nyuv2``.
    """
    if classes not in CLASS_COUNTS:
        raise ValueError(f"classes: must be one of {', '.join(map(str, CLASS_COUNTS))}, got {classes!r}")
    path = resolve_root(root, "cityscapes", NEEDS)
    folder = f"label_{classes}"
    if classes == 7 and not (path / "train" / folder).is_dir() and (path / "train" / "label").is_dir():
        folder = "label"
    fields = (Field("image", None, 3), Field(folder, "segmentation", 0, labels=True), Field("depth", "depth", 1))
    tasks = [Task("segmentation", "segmentation", classes), Task("depth", "depth", 1)]
    extras = {"root": str(path), "label_folder": folder}
    if classes == 7:
        extras["published_single_task"] = dict(PUBLISHED_SINGLE_TASK)
    return dense_benchmark(
        "cityscapes",
        path,
        fields,
        tasks,
        NEEDS,
        val_fraction,
        seed,
        max_per_split,
        f"Cityscapes (MTAN's preprocessed release): {classes}-class segmentation and depth",
        extras,
    )
