"""Loaders of the paper's datasets from local disk, in their official distribution formats.

Nothing is downloaded. Each loader takes a ``root`` option (default: a folder under
``$SCALARIZE_DATA``); a missing or truncated file is a one-line error naming it
(:class:`MissingDataError` / :class:`DataFileError`, both ``ValueError``, reported by
:func:`scalarize.data.load_benchmark` as a ``BenchmarkError``).

* ``celeba``: MTL, 40 binary face attributes (``$SCALARIZE_DATA/celeba``);
* ``domainnet``: MDL, 6 domains of one 345-class task (``$SCALARIZE_DATA/domainnet``);
* ``cifar_stl``: MDL, CIFAR-10 and STL-10 on their 9 shared classes (``$SCALARIZE_DATA``);
* ``nyuv2``: MTL, segmentation, depth and normals, MTAN's ``.npy`` release (``$SCALARIZE_DATA/nyuv2``);
* ``cityscapes``: MTL, segmentation and depth, MTAN's ``.npy`` release (``$SCALARIZE_DATA/cityscapes``);
* ``qm9``: MTL, 11 molecular properties on graphs, from the ``qm9pack`` package (no root);
* ``census_income``: MTL, binary tasks on Census-Income (KDD) rows (``$SCALARIZE_DATA/census-income-kdd``).
"""

from scalarize.data.loaders._common import DATA_ENV, DataFileError, MissingDataError
from scalarize.data.loaders.celeba import celeba
from scalarize.data.loaders.cifar_stl import cifar_stl
from scalarize.data.loaders.domainnet import domainnet

# What `scalarize benchmarks` shows for them without reading gigabytes from disk:
# (setting, objectives, input, train/val/test) with the default options.
DISK_BENCHMARKS: dict[str, tuple[str, str, str, str]] = {
    "celeba": ("MTL", "tasks: 40 attributes (option attributes)", "3x64x64", "from disk"),
    "domainnet": ("MDL", "domains: clipart, infograph, painting, quickdraw, real, sketch", "3x64x64", "from disk"),
    "cifar_stl": ("MDL", "domains: cifar10, stl10", "3x32x32", "from disk"),
    "nyuv2": ("MTL", "tasks: segmentation, depth, normals", "3x288x384", "from disk (795/654)"),
    "cityscapes": ("MTL", "tasks: segmentation, depth", "3x128x256", "from disk (2975/500)"),
    "qm9": ("MTL", "tasks: 11 molecular properties", "molecular graphs", "110831/10000/10000 (qm9pack)"),
    "table": ("MTL", "tasks: the targets option (binary)", "packed table rows", "from a file or DataFrame"),
    "census_income": (
        "MTL",
        "tasks: group1 | group2 | many (options tasks)",
        "packed table rows",
        "from disk (test half alone: 70/15/15)",
    ),
}

__all__ = [
    "DATA_ENV",
    "DISK_BENCHMARKS",
    "DataFileError",
    "MissingDataError",
    "celeba",
    "cifar_stl",
    "domainnet",
]
