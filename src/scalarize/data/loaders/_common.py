"""Helpers shared by the loaders of datasets on disk: errors, roots, options, images, subsets."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from scalarize.data.benchmark import DatasetSplit
from scalarize.data.errors import DataFileError, MissingDataError

DATA_ENV = "SCALARIZE_DATA"


class BoundedSplit(DatasetSplit):
    """A :class:`DatasetSplit` whose evaluation batches hold at most ``max_batch`` items: the
    run core evaluates in batches of 1,024, too many for 288x384 maps through a ResNet-50 or for
    1,024 complete molecular graphs."""

    def __init__(
        self, dataset, task_names=(), collate=None, device=None, max_batch: int = 256, workers: int | None = None
    ) -> None:
        super().__init__(dataset, task_names, collate, device, workers)
        self.max_batch = max_batch

    def batches(self, size: int):
        return super().batches(min(size, self.max_batch))

    def subset(self, index: torch.Tensor) -> BoundedSplit:
        return BoundedSplit(
            torch.utils.data.Subset(self.dataset, index.tolist()),
            self.task_names,
            self.collate,
            self._device,
            self.max_batch,
            self.workers,
        )

    def to(self, device, workers: int | None = None) -> BoundedSplit:
        return BoundedSplit(
            self.dataset,
            self.task_names,
            self.collate,
            device,
            self.max_batch,
            self.workers if workers is None else workers,
        )


def resolve_root(root: str | os.PathLike | None, subfolder: str, needs: str) -> Path:
    """The dataset's root: ``root`` when given, else ``$SCALARIZE_DATA/<subfolder>``."""
    if root is None or root == "":
        base = os.environ.get(DATA_ENV)
        if not base:
            target = f"${DATA_ENV}/{subfolder}" if subfolder else f"${DATA_ENV}"
            raise MissingDataError(
                f"root: not set (give benchmark.options.root, or set ${DATA_ENV} so that the root is {target}; {needs})"
            )
        path = Path(base).expanduser() / subfolder
    elif isinstance(root, (str, os.PathLike)):
        path = Path(root).expanduser()
    else:
        raise ValueError(f"root: expected a folder path, got {root!r}")
    path = path.resolve()
    if not path.is_dir():
        raise MissingDataError(f"{path}: root folder missing ({needs})")
    return path


def require(path: Path, needs: str, folder: bool = False) -> Path:
    """``path`` if it exists (as a folder when ``folder``), else a one-line :class:`MissingDataError`."""
    if not (path.is_dir() if folder else path.is_file()):
        raise MissingDataError(f"{path}{'/' if folder else ''}: missing ({needs})")
    return path


def read_lines(path: Path) -> list[str]:
    """The lines of a text file; a binary or undecodable file is a one-line :class:`DataFileError`."""
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DataFileError(f"{path}: not a text file (byte {error.start} is not UTF-8)") from None


def files_digest(paths: Iterable[Path]) -> str:
    """A digest of the files' names, sizes and modification times (the cache key of their contents).

    A listed file that is not there raises :class:`MissingDataError` naming it.
    """
    digest, lines = hashlib.sha256(), []
    for path in paths:
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            raise MissingDataError(f"{path}: missing (listed in the dataset's index files)") from None
        lines.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
        if len(lines) == 4096:  # hashed in pieces: the memory held does not grow with the dataset
            digest.update("".join(lines).encode())
            lines.clear()
    digest.update("".join(lines).encode())
    return digest.hexdigest()[:24]


def check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return value


def check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"{name}: expected a number in (0, 1), got {value!r}")
    return float(value)


def choose_names(option: str, value: object, allowed: Sequence[str]) -> list[str]:
    """A list of names (or one comma-separated string) checked against ``allowed``; order kept."""
    if value is None:
        return list(allowed)
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{option}: expected a non-empty list of names; allowed: {', '.join(allowed)}")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ValueError(f"{option}: unknown name {unknown[0]!r}; allowed: {', '.join(allowed)}")
    duplicated = sorted({v for v in value if list(value).count(v) > 1})
    if duplicated:
        raise ValueError(f"{option}: {duplicated[0]!r} is given twice")
    return list(value)


def carve_indices(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, val) positions in ``range(n)``, exactly as :func:`~scalarize.data.carve_validation`."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    n_val = max(1, round(fraction * n))
    return order[n_val:].sort().values.numpy(), order[:n_val].sort().values.numpy()


def subsample(index: np.ndarray, maximum: int, seed: int) -> np.ndarray:
    """At most ``maximum`` of ``index`` (all when ``maximum`` is 0), a fixed random subset, sorted."""
    if maximum <= 0 or len(index) <= maximum:
        return np.asarray(index)
    chosen = np.random.default_rng(seed).choice(len(index), size=maximum, replace=False)
    return np.asarray(index)[np.sort(chosen)]


def resize_uint8(images: np.ndarray, size: int, chunk: int = 2048) -> np.ndarray:
    """Bilinear resize with antialiasing of uint8 ``[N, C, H, W]`` images to ``[N, C, size, size]``."""
    if images.shape[-2:] == (size, size):
        return np.ascontiguousarray(images)
    out = np.empty((len(images), images.shape[1], size, size), dtype=np.uint8)
    for start in range(0, len(images), chunk):
        batch = torch.as_tensor(np.ascontiguousarray(images[start : start + chunk]), dtype=torch.float32)
        resized = F.interpolate(batch, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out[start : start + chunk] = resized.round_().clamp_(0, 255).to(torch.uint8).numpy()
    return out


def to_float(images: np.ndarray) -> torch.Tensor:
    """uint8 ``[N, C, H, W]`` to float32 in [0, 1]."""
    return torch.as_tensor(images).to(torch.float32).div_(255.0)
