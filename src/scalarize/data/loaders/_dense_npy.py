"""The preprocessed ``.npy`` layout of the dense benchmarks (MTAN's releases of NYUv2 and
Cityscapes, read as MTAN, CAGrad, Nash-MTL, FAMO and LibMTL read them), shared by
:mod:`~scalarize.data.loaders.nyuv2` and :mod:`~scalarize.data.loaders.cityscapes`::

    root/train/<folder>/<index>.npy     index = 0 .. N-1, one file per image and task
    root/val/<folder>/<index>.npy       the evaluation split of the papers (our test split)

Images are ``H x W x 3`` channels-last floats, labels ``H x W`` (class indices, −1 ignored, stored
as floats), depth ``H x W x 1`` (0: no measurement), normals ``H x W x 3`` (0 vectors: none). The
files are read per batch (a map-style Dataset: the data is never all in memory); every file's
header is checked when the benchmark is built (a few seconds for NYUv2's 5,796 files), so that a
missing, truncated or misshapen file is a one-line error naming it before anything trains.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from scalarize.data.benchmark import Benchmark, carve_validation
from scalarize.data.loaders._common import BoundedSplit, DataFileError, MissingDataError, check_int, require
from scalarize.data.task import Task


@dataclass(frozen=True)
class Field:
    """One folder of ``.npy`` files: its name, the task it feeds (``None``: the input image), the
    channels its arrays have (``0``: ``H x W``, no channel axis) and how it is converted."""

    folder: str
    task: str | None
    channels: int
    labels: bool = False


def _index_of(path: Path) -> int | None:
    match = re.fullmatch(r"(\d+)\.npy", path.name)
    return int(match.group(1)) if match else None


def _header(path: Path) -> tuple[int, ...]:
    """The shape of a ``.npy`` file, read from its header; the file's size is checked against it."""
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise MissingDataError(f"{path}: missing") from None
    except (ValueError, OSError, EOFError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataFileError(f"{path}: truncated or not a .npy array ({reason})") from None
    return tuple(array.shape)


def scan_split(folder: Path, fields: Sequence[Field], needs: str) -> tuple[int, tuple[int, int]]:
    """Checks ``folder`` (``root/train`` or ``root/val``): every field's folder holds ``0.npy`` to
    ``N-1.npy``, N being the number of images, each with the expected shape; returns N and the
    image size ``(H, W)``."""
    require(folder, needs, folder=True)
    image_dir = require(folder / fields[0].folder, needs, folder=True)
    indices = sorted(i for i in (_index_of(p) for p in image_dir.iterdir()) if i is not None)
    if not indices:
        raise MissingDataError(f"{image_dir}/: no <index>.npy file ({needs})")
    count = len(indices)
    if indices != list(range(count)):
        gap = next(i for i, j in enumerate(indices) if i != j)
        raise MissingDataError(f"{image_dir / f'{gap}.npy'}: missing (the images are numbered 0..{indices[-1]})")
    size: tuple[int, int] | None = None
    for field in fields:
        directory = require(folder / field.folder, needs, folder=True)
        for index in range(count):
            path = directory / f"{index}.npy"
            if not path.is_file():
                raise MissingDataError(f"{path}: missing ({count} images in {image_dir})")
            shape = _header(path)
            if size is None:
                if len(shape) != 3 or shape[2] != field.channels:
                    raise DataFileError(f"{path}: shape {shape}, expected H x W x {field.channels} (channels last)")
                size = (shape[0], shape[1])
            expected = size + ((field.channels,) if field.channels else ())
            if shape != expected and not (field.labels and shape == size + (1,)):
                raise DataFileError(f"{path}: shape {shape}, expected {expected} like {image_dir / '0.npy'}")
    assert size is not None
    return count, size


class NpyDenseDataset(Dataset):
    """Item ``i``: ``(image [3, H, W] float32, {task: target})`` read from the ``.npy`` files;
    labels become ``[H, W]`` int64, other targets ``[C, H, W]`` float32."""

    def __init__(self, folder: Path, fields: Sequence[Field], count: int) -> None:
        self.folder = folder
        self.fields = list(fields)
        self.count = count

    def __len__(self) -> int:
        return self.count

    def _read(self, field: Field, index: int) -> torch.Tensor:
        path = self.folder / field.folder / f"{index}.npy"
        try:
            array = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise MissingDataError(f"{path}: missing") from None
        except (ValueError, OSError, EOFError) as error:
            raise DataFileError(f"{path}: truncated or not a .npy array ({str(error).splitlines()[0]})") from None
        if field.labels:
            return torch.from_numpy(np.asarray(array).reshape(array.shape[:2]).astype(np.int64))
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, -1, 0), dtype=np.float32))

    def __getitem__(self, index: int):
        if not 0 <= index < self.count:
            raise IndexError(index)
        values = {f.task: self._read(f, index) for f in self.fields}
        image = values.pop(None)
        return image, values


def dense_benchmark(
    name: str,
    root: Path,
    fields: Sequence[Field],
    tasks: Sequence[Task],
    needs: str,
    val_fraction: float,
    seed: int,
    max_per_split: int,
    description: str,
    extras: dict,
    eval_batch: int = 8,
) -> Benchmark:
    """The benchmark of a dataset in this layout: ``train/`` for training, ``val/`` for test; the
    validation split is carved from ``train/`` (``val_fraction > 0``) or is ``val/`` itself
    (``val_fraction = 0``: the papers' protocol, which has no separate validation split)."""
    check_int("max_per_split", max_per_split, 0)
    check_int("eval_batch", eval_batch, 1)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction: expected a number in [0, 1), got {val_fraction!r}")
    names = [t.name for t in tasks]
    splits = {}
    for split, folder in (("train", "train"), ("test", "val")):
        count, size = scan_split(root / folder, fields, needs)
        dataset = NpyDenseDataset(root / folder, fields, count)
        splits[split] = BoundedSplit(dataset, names, max_batch=eval_batch)
        extras[f"{split}_size"] = size
    if extras["train_size"] != extras["test_size"]:
        raise DataFileError(f"{root / 'val'}: images of {extras['test_size']}, but {extras['train_size']} in train/")
    if max_per_split:
        for split, value in splits.items():
            if len(value) > max_per_split:
                order = torch.randperm(len(value), generator=torch.Generator().manual_seed(seed))
                splits[split] = value.subset(order[:max_per_split].sort().values)
    if val_fraction > 0:
        splits["train"], splits["val"] = carve_validation(splits["train"], val_fraction, seed)
    else:
        splits["val"] = splits["test"]
    benchmark = Benchmark(name, "mtl", list(tasks), {name: splits}, description=description)
    benchmark.extras.update(extras)
    return benchmark
