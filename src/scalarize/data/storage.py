"""Where a split's images live: uint8 rows in storage, read per batch, in any process.

An :class:`ImageStore` gives uint8 ``[C, H, W]`` images by row, in the run's process or in a
loader worker (a store holds no open file across a ``fork``'s pickling, only paths):

* :class:`CachedImages`: the decoded cache, a plain ``.npy`` file of uint8 ``[N, C, H, W]``,
  read with ``pread`` per row (one read per run of consecutive rows). The bytes go through the
  operating system's file cache, never through a memory map: the process's resident memory does
  not grow with the dataset (a mapped file's touched pages would count in it).
* :class:`JpegImages`: the original JPEG files, decoded (and resized) per row with PIL.
* :class:`ArrayImages`: a uint8 array already in memory (or a read-only memory map, e.g.
  STL-10's binary files).

The decoded cache is written once per dataset and options (:func:`decoded_images`): threads
decode chunks of rows and write each chunk where it belongs, uncompressed, so writing runs at the
disk's speed, not at a compressor's, and the memory held is a few chunks whatever the size of the
dataset. An entry is a folder written under a temporary name and renamed when complete, so a
killed build never leaves a half-written entry behind.

Where a loader puts a benchmark's images (:func:`choose_storage`, the ``storage`` option):

* ``memory``: float32 tensors in memory, the fastest when they fit (an index lookup per batch);
* ``cache``: streamed from the decoded cache (decode once; each batch is a few reads);
* ``jpeg``: decoded per batch from the original files by the loader workers (no cache; each
  epoch decodes again: about 100x the work of reading the cache);
* ``auto`` (the default): ``memory`` when the float32 images fit the memory budget
  (``$SCALARIZE_MEMORY_BUDGET``, default 1 GiB: a run holding that much stays near 1.35 GiB of
  resident memory), else ``cache``, else ``jpeg`` when the cache's disk has no room for the
  decoded images.

The same pixels reach the model whatever the storage: a streamed batch is converted on the device
exactly as the in-memory tensors were converted once (``uint8 -> float32``, then ``/ 255``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from scalarize.data.cache import cache_dir
from scalarize.data.errors import DataFileError, MissingDataError

STORAGES = ("auto", "memory", "cache", "jpeg")
MEMORY_BUDGET_ENV = "SCALARIZE_MEMORY_BUDGET"
DEFAULT_MEMORY_BUDGET = 1 << 30
#: Rows decoded and written per task while building the cache (a few MiB at 224 px).
CHUNK_ROWS = 128
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


# ---------------------------------------------------------------- stores


class ImageStore:
    """uint8 images ``[C, H, W]`` (:attr:`shape`) by row; see the module docstring."""

    shape: tuple[int, ...]

    def __len__(self) -> int:
        raise NotImplementedError

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        """Writes the images at ``rows`` into ``out`` (uint8 ``[len(rows), *shape]``)."""
        raise NotImplementedError

    @property
    def nbytes(self) -> int:
        return len(self) * math.prod(self.shape)

    def read(self, rows: np.ndarray) -> np.ndarray:
        out = np.empty((len(rows), *self.shape), dtype=np.uint8)
        self.read_into(np.asarray(rows, dtype=np.int64), out)
        return out


class ArrayImages(ImageStore):
    """Images in a uint8 array ``[N, C, H, W]`` (in memory, or a read-only memory map)."""

    def __init__(self, array: np.ndarray) -> None:
        if array.dtype != np.uint8 or array.ndim < 2:
            raise ValueError(f"images: expected a uint8 array [N, C, H, W], got {array.dtype} {array.shape}")
        self.array = array
        self.shape = tuple(array.shape[1:])

    def __len__(self) -> int:
        return len(self.array)

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        np.take(self.array, rows, axis=0, out=out)


class CachedImages(ImageStore):
    """The decoded cache: a ``.npy`` file of uint8 ``[N, C, H, W]`` read with ``pread``."""

    def __init__(self, path: Path, length: int, shape: tuple[int, ...], offset: int) -> None:
        self.path, self.length, self.shape, self.offset = Path(path), length, tuple(shape), offset
        self._fd: int | None = None
        self._pid = -1

    @classmethod
    def open(cls, path: Path) -> CachedImages:
        """The store of a complete cache file; a missing, foreign or truncated file is a
        one-line :class:`DataFileError`."""
        length, shape, offset = _npy_layout(path)
        return cls(path, length, shape, offset)

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": -1}

    def __del__(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            try:
                os.close(self._fd)
            except OSError:
                pass

    def _descriptor(self) -> int:
        if self._fd is None or self._pid != os.getpid():
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                raise MissingDataError(
                    f"{self.path}: missing (the decoded cache was removed while in use; load the benchmark again)"
                ) from None
            self._pid = os.getpid()
        return self._fd

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        if len(rows) == 0:
            return
        fd, item = self._descriptor(), math.prod(self.shape)
        flat = out.reshape(len(rows), item)
        # one read per run of consecutive rows (a whole evaluation batch is one read)
        starts = np.flatnonzero(np.diff(rows) != 1) + 1
        for begin, end in zip([0, *starts.tolist()], [*starts.tolist(), len(rows)]):
            view = memoryview(flat[begin:end]).cast("B")
            position, done = self.offset + int(rows[begin]) * item, 0
            while done < len(view):
                count = os.preadv(fd, [view[done:]], position + done)
                if count <= 0:
                    raise DataFileError(
                        f"{self.path}: truncated (the decoded cache ends before row {int(rows[begin]) + done // item}); "
                        f"delete {self.path.parent} to decode again"
                    )
                done += count


class JpegImages(ImageStore):
    """The original image files, decoded per row with PIL and resized to ``size`` x ``size``
    (``size=0``: native size, which must be :attr:`shape`)."""

    def __init__(self, paths: Sequence[str | Path], size: int, shape: tuple[int, ...]) -> None:
        self.paths, self.size, self.shape = list(paths), size, tuple(shape)

    def __len__(self) -> int:
        return len(self.paths)

    def read_into(self, rows: np.ndarray, out: np.ndarray) -> None:
        for slot, row in enumerate(rows.tolist()):
            out[slot] = decode_image(self.paths[row], self.size, self.shape, self.paths[0])


def decode_image(
    path: str | Path, size: int, shape: tuple[int, ...] | None = None, like: str | Path | None = None
) -> np.ndarray:
    """The image at ``path`` as uint8 ``[3, H, W]`` (``size`` x ``size`` when ``size`` > 0).

    JPEGs are decoded at a reduced scale when that still covers ``size`` (PIL's draft mode), then
    resized bilinearly. A missing file, one PIL cannot read, or (with ``shape``) an image of
    another size is a one-line :class:`DataFileError` naming the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            if size:
                image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
            image = image.convert("RGB")
            if size:
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except FileNotFoundError:
        raise MissingDataError(f"{path}: missing (listed in the dataset's index files)") from None
    except (OSError, SyntaxError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataFileError(
            f"{path}: truncated or not an image ({reason}); replace the file, or remove its line from the index files"
        ) from None
    array = array.transpose(2, 0, 1)
    if shape is not None and array.shape != tuple(shape):
        shown = f" like {Path(like).name}" if like is not None else ""
        raise DataFileError(
            f"{path}: {array.shape[2]}x{array.shape[1]} image, expected {shape[2]}x{shape[1]}{shown} (use the resize option)"
        )
    return array


# ---------------------------------------------------------------- the decoded cache


@dataclass
class ImageSource:
    """What one cache file holds: ``count`` images of ``shape``, and how to make rows
    ``[start, stop)`` into ``out`` (``fill(start, stop, out)``; called from several threads)."""

    count: int
    shape: tuple[int, ...]
    fill: Callable[[int, int, np.ndarray], None]


def jpeg_source(paths: Sequence[str | Path], size: int) -> ImageSource:
    """The images of ``paths`` decoded and resized to ``size`` (0: native, the first file's size)."""
    paths = list(paths)
    shape = (3, size, size) if size else (tuple(decode_image(paths[0], 0).shape) if paths else (3, 0, 0))
    store = JpegImages(paths, size, shape)
    return ImageSource(len(paths), shape, lambda start, stop, out: store.read_into(np.arange(start, stop), out))


def cache_folder(name: str, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-{digest}"


def open_decoded(name: str, key: dict, splits: Sequence[str]) -> dict[str, CachedImages] | None:
    """The complete cache entry of (name, key) with these splits, or ``None``."""
    folder = cache_folder(name, key)
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("key") != json.loads(json.dumps(key)):
            return None
        return {split: CachedImages.open(folder / f"{split}.npy") for split in splits}
    except (OSError, ValueError):
        return None


def decoded_images(
    name: str, key: dict, sources: dict[str, ImageSource], threads: int | None = None
) -> dict[str, CachedImages]:
    """The stores of ``sources``' images, decoded once per (name, key) into the cache.

    A complete entry is reused; an incomplete or corrupt one is rebuilt. The entry's
    ``meta.json`` records how the build went (seconds decoding and writing, bytes written).
    """
    found = open_decoded(name, key, list(sources))
    if found is not None:
        return found
    folder = cache_folder(name, key)
    shutil.rmtree(folder, ignore_errors=True)  # incomplete or corrupt
    tmp = folder.with_name(f"{folder.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        started = time.perf_counter()
        stats = {"decode_seconds": 0.0, "write_seconds": 0.0, "bytes": 0}
        for split, source in sources.items():
            _write_npy(tmp / f"{split}.npy", source, stats, threads)
        stats["wall_seconds"] = time.perf_counter() - started
        shapes = {split: [source.count, *source.shape] for split, source in sources.items()}
        (tmp / "meta.json").write_text(json.dumps({"key": key, "shapes": shapes, "build": stats}, indent=1))
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same entry first: use it
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = open_decoded(name, key, list(sources))
    if found is None:
        raise DataFileError(
            f"{folder}: the decoded cache could not be written (is the disk full?); check $SCALARIZE_CACHE"
        )
    return found


def _write_npy(path: Path, source: ImageSource, stats: dict, threads: int | None) -> None:
    shape = (source.count, *source.shape)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint8)), "fortran_order": False, "shape": shape}
    with open(path, "wb") as file:
        np.lib.format.write_array_header_1_0(file, header)
        offset = file.tell()
        file.truncate(offset + math.prod(shape))
    item = math.prod(source.shape)
    lock = threading.Lock()
    fd = os.open(path, os.O_WRONLY)

    def work(start: int, stop: int) -> None:
        buffer = np.empty((stop - start, *source.shape), dtype=np.uint8)
        began = time.perf_counter()
        source.fill(start, stop, buffer)
        decoded = time.perf_counter()
        view, done = memoryview(buffer.reshape(-1)).cast("B"), 0
        while done < len(view):
            done += os.pwrite(fd, view[done:], offset + start * item + done)
        with lock:
            stats["decode_seconds"] += decoded - began
            stats["write_seconds"] += time.perf_counter() - decoded
            stats["bytes"] += len(view)

    chunks = [(start, min(start + CHUNK_ROWS, source.count)) for start in range(0, source.count, CHUNK_ROWS)]
    threads = threads or min(8, os.cpu_count() or 1)
    try:
        if threads == 1 or len(chunks) <= 1:
            for start, stop in chunks:
                work(start, stop)
        else:
            with ThreadPoolExecutor(threads) as pool:
                for future in [pool.submit(work, start, stop) for start, stop in chunks]:
                    future.result()
    finally:
        os.close(fd)


def _npy_layout(path: Path) -> tuple[int, tuple[int, ...], int]:
    """(rows, image shape, data offset) of a uint8 ``.npy`` file whose size matches its header."""
    try:
        with open(path, "rb") as file:
            version = np.lib.format.read_magic(file)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(file)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(file)
            offset = file.tell()
    except FileNotFoundError:
        raise MissingDataError(f"{path}: missing (the decoded cache)") from None
    except (OSError, ValueError) as error:
        raise DataFileError(
            f"{path}: not a decoded image cache ({error}); delete {path.parent} to decode again"
        ) from None
    if dtype != np.uint8 or fortran or len(shape) < 2:
        raise DataFileError(f"{path}: not a decoded image cache (expected uint8 [N, C, H, W]); delete {path.parent}")
    expected = offset + math.prod(shape)
    if os.path.getsize(path) != expected:
        raise DataFileError(
            f"{path}: truncated (expected {expected} bytes, got {os.path.getsize(path)}); delete {path.parent} to decode again"
        )
    return shape[0], tuple(shape[1:]), offset


# ---------------------------------------------------------------- the choice


def memory_budget() -> int:
    """The most bytes of float32 images a benchmark holds in memory: ``$SCALARIZE_MEMORY_BUDGET``
    (bytes, or with a unit: ``512MiB``, ``2G``, ``0`` to always stream), default 1 GiB."""
    raw = os.environ.get(MEMORY_BUDGET_ENV, "").strip()
    if not raw:
        return DEFAULT_MEMORY_BUDGET
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", raw, flags=re.IGNORECASE)
    if not match:
        raise ValueError(f"{MEMORY_BUDGET_ENV}: expected bytes, e.g. 1073741824, 512MiB or 2GiB; got {raw!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def choose_storage(
    requested: str, images: int, shape: Sequence[int], *, allowed: Sequence[str] = STORAGES, cached: bool = False
) -> str:
    """The storage of ``images`` images of ``shape`` (see the module docstring).

    ``cached``: the decoded cache already holds them (then ``auto`` never picks ``jpeg``).
    """
    if requested not in allowed:
        raise ValueError(f"storage: expected one of {', '.join(allowed)}; got {requested!r}")
    if requested != "auto":
        return requested
    pixels = images * math.prod(shape)
    if 4 * pixels <= memory_budget():
        return "memory"
    if cached or "jpeg" not in allowed:
        return "cache"
    free = shutil.disk_usage(cache_dir()).free
    return "cache" if pixels * 1.05 < free else "jpeg"


def to_float_tensor(store: ImageStore, rows: np.ndarray | None = None, chunk_bytes: int = 32 << 20) -> torch.Tensor:
    """The images at ``rows`` (default all) as float32 in [0, 1], ``[N, C, H, W]``, read chunk by
    chunk (the memory held is the float32 result and one uint8 chunk of ``chunk_bytes``)."""
    rows = np.arange(len(store)) if rows is None else np.asarray(rows, dtype=np.int64)
    out = torch.empty((len(rows), *store.shape), dtype=torch.float32)
    chunk = max(1, chunk_bytes // max(1, math.prod(store.shape)))
    for start in range(0, len(rows), chunk):
        part = store.read(rows[start : start + chunk])
        out[start : start + len(part)] = torch.from_numpy(part).to(torch.float32).div_(255.0)
    return out
