"""Benchmarks: train/val/test splits with several tasks on one input (MTL) or several domains
sharing one label space (MDL).

A split is one of:

* tensors held in memory (:class:`Split`): batches are index lookups, the fastest path for data
  that fits;
* uint8 images in storage (:class:`ImageSplit`: the decoded cache, the original JPEG files, or
  an array; :mod:`scalarize.data.storage`), with targets in memory: batches are read per batch
  and converted to float32 in [0, 1] on the device;
* a map-style ``torch.utils.data.Dataset`` (:class:`DatasetSplit`): items are read and collated
  per batch.

All answer the same three questions: how many samples (``len``), the batch at these indices
(:meth:`Split.batch`), and the batches in order (:meth:`Split.batches`, for evaluation). The last
two read from storage in two steps, so that loader workers can do the first
(:mod:`scalarize.data.workers`): ``read(index)`` (on the CPU, in any process) and
``finish(inputs, targets)`` (to the device, in the run's process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, default_collate, get_worker_info

from scalarize.data.storage import ImageStore
from scalarize.data.task import Task
from scalarize.data.workers import default_workers, ordered_batches, shared_uint8

SPLITS = ("train", "val", "test")
Targets = dict[str, Tensor]


def _move(value: Any, device: torch.device | None) -> Any:
    if device is None:
        return value
    if isinstance(value, Tensor):
        return value.to(device, non_blocking=value.is_pinned())
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    if hasattr(value, "to"):  # e.g. a torch_geometric Batch
        return value.to(device)
    return value


@dataclass
class Split:
    """One split of one input distribution held as tensors: inputs ``[N, ...]`` and one target
    per task."""

    inputs: Tensor
    targets: Targets

    def __post_init__(self) -> None:
        for name, target in self.targets.items():
            if len(target) != len(self.inputs):
                raise ValueError(f"target {name!r} has {len(target)} rows but inputs have {len(self.inputs)}")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def device(self) -> torch.device:
        return self.inputs.device

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.inputs.shape[1:])

    def batch(self, index: Tensor) -> tuple[Tensor, Targets]:
        """Inputs and targets at ``index`` (any shape: ``[B]``, or ``[P, B]`` for P members)."""
        index = index.to(self.inputs.device)
        return self.inputs[index], {k: v[index] for k, v in self.targets.items()}

    def batches(self, size: int) -> Iterator[tuple[Tensor, Targets]]:
        """Consecutive batches of at most ``size`` samples, in order."""
        for start in range(0, len(self), size):
            yield self.inputs[start : start + size], {k: v[start : start + size] for k, v in self.targets.items()}

    def subset(self, index: Tensor) -> Split:
        return Split(self.inputs[index], {k: v[index] for k, v in self.targets.items()})

    def to(self, device: torch.device | str) -> Split:
        return Split(self.inputs.to(device), {k: v.to(device) for k, v in self.targets.items()})


class DatasetSplit:
    """A split read from a map-style ``Dataset`` whose item ``i`` is ``(input, targets)``.

    ``targets`` is a ``{task: target}`` mapping, or a single target when the benchmark has one
    task (``task_names`` then names it). Items are collated per batch (``collate``, default
    ``torch.utils.data.default_collate``) and moved to :attr:`device`.
    """

    def __init__(
        self,
        dataset: Dataset,
        task_names: Sequence[str] = (),
        collate: Callable[[list], Any] | None = None,
        device: torch.device | str | None = None,
        workers: int | None = None,
    ) -> None:
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise ValueError(
                f"a split needs a map-style Dataset (with __len__ and __getitem__), got {type(dataset).__name__}"
            )
        self.dataset = dataset
        self.task_names = list(task_names)
        self.collate = collate or default_collate
        self._device = torch.device(device) if device is not None else None
        #: Loader worker processes that read the items (0: read in the run's process); default
        #: :func:`scalarize.data.workers.default_workers`.
        self.workers = _workers(workers)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def device(self) -> torch.device:
        return self._device or torch.device("cpu")

    def _item(self, i: int) -> tuple[Any, Mapping[str, Any]]:
        item = self.dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(f"dataset item {i}: expected (input, targets), got {type(item).__name__}")
        inputs, targets = item
        if not isinstance(targets, Mapping):
            if len(self.task_names) != 1:
                raise ValueError(f"dataset item {i}: targets must be a {{task: target}} mapping with several tasks")
            targets = {self.task_names[0]: targets}
        return inputs, targets

    def _collate(self, indices: list[int]) -> tuple[Any, Targets]:
        items = [self._item(i) for i in indices]
        inputs = self.collate([x for x, _ in items])
        targets = {name: default_collate([t[name] for _, t in items]) for name in items[0][1]}
        return inputs, targets

    def read(self, index: Tensor) -> tuple[Any, Targets]:
        """The items at ``index`` (any shape) collated on the CPU, in any process."""
        inputs, targets = self._collate(index.reshape(-1).tolist())
        lead = tuple(index.shape)
        if len(lead) > 1 and isinstance(inputs, Tensor):
            inputs = inputs.reshape(*lead, *inputs.shape[1:])
            targets = {k: v.reshape(*lead, *v.shape[1:]) for k, v in targets.items()}
        return inputs, targets

    def finish(self, inputs: Any, targets: Targets) -> tuple[Any, Targets]:
        """``read``'s batch moved to :attr:`device`."""
        return _move(inputs, self._device), _move(targets, self._device)

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One input's shape, as the collated batch holds it (an item's numpy array becomes a
        tensor there); ``()`` for inputs that do not collate into one tensor (graphs)."""
        inputs, _ = self._item(0)
        if isinstance(inputs, Tensor):
            return tuple(inputs.shape)
        if isinstance(inputs, np.ndarray):
            return tuple(inputs.shape)
        try:
            batch = self.collate([inputs])
        except Exception:  # noqa: BLE001 - a collate for other items: no shape
            return ()
        return tuple(batch.shape[1:]) if isinstance(batch, Tensor) else ()

    def batch(self, index: Tensor) -> tuple[Any, Targets]:
        return self.finish(*self.read(index))

    def batches(self, size: int) -> Iterator[tuple[Any, Targets]]:
        """Consecutive batches of at most ``size`` items, in order (read by the loader workers
        when there are several batches to read)."""
        return ordered_batches(self, size)

    def subset(self, index: Tensor) -> DatasetSplit:
        return DatasetSplit(
            torch.utils.data.Subset(self.dataset, index.tolist()),
            self.task_names,
            self.collate,
            self._device,
            self.workers,
        )

    def to(self, device: torch.device | str, workers: int | None = None) -> DatasetSplit:
        return DatasetSplit(
            self.dataset, self.task_names, self.collate, device, self.workers if workers is None else workers
        )


class ImageSplit:
    """uint8 images in storage (:class:`~scalarize.data.storage.ImageStore`: the decoded cache,
    JPEG files, an array) and one target per task in memory.

    ``rows`` maps the split's samples to the store's rows (a subset, e.g. the validation part
    carved from a training list; default all). A batch is read from the store as uint8
    (``read``, on the CPU, in a loader worker when streamed), then moved to :attr:`device` and
    converted there to float32 in [0, 1] (``finish``): ``uint8 -> float32``, then ``/ 255``,
    the same operations, so the same values, as the in-memory tensors of a :class:`Split`.
    """

    def __init__(
        self,
        images: ImageStore,
        targets: Targets,
        rows: np.ndarray | None = None,
        device: torch.device | str | None = None,
        workers: int | None = None,
    ) -> None:
        self.images = images
        self.rows = np.arange(len(images), dtype=np.int64) if rows is None else np.asarray(rows, dtype=np.int64)
        self.targets = {k: torch.as_tensor(v).cpu() for k, v in targets.items()}
        for name, target in self.targets.items():
            if len(target) != len(self.rows):
                raise ValueError(f"target {name!r} has {len(target)} rows but the split has {len(self.rows)} images")
        self._device = torch.device(device) if device is not None else None
        #: Loader worker processes that read the images (0: read in the run's process); default
        #: :func:`scalarize.data.workers.default_workers`.
        self.workers = _workers(workers)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def device(self) -> torch.device:
        return self._device or torch.device("cpu")

    @property
    def sample_shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape)

    def read(self, index: Tensor) -> tuple[Tensor, Targets]:
        """uint8 images ``[*index.shape, C, H, W]`` and targets at ``index``, on the CPU (in a
        loader worker, the images are written straight into shared memory)."""
        index = torch.as_tensor(index).cpu()
        flat = index.reshape(-1)
        shape = (*index.shape, *self.images.shape)
        if get_worker_info() is not None:  # the result goes to the run's process: share, not copy
            inputs = shared_uint8(shape)
        else:
            inputs = torch.empty(shape, dtype=torch.uint8)
        self.images.read_into(self.rows[flat.numpy()], inputs.numpy().reshape(len(flat), *self.images.shape))
        targets = {k: v[flat].reshape(*index.shape, *v.shape[1:]) for k, v in self.targets.items()}
        return inputs, targets

    def finish(self, inputs: Tensor, targets: Targets) -> tuple[Tensor, Targets]:
        """``read``'s batch on :attr:`device`, the images as float32 in [0, 1]."""
        inputs = _move(inputs, self._device)
        return inputs.to(torch.float32).div_(255.0), _move(targets, self._device)

    def batch(self, index: Tensor) -> tuple[Tensor, Targets]:
        """Inputs and targets at ``index`` (any shape: ``[B]``, or ``[P, B]`` for P members)."""
        return self.finish(*self.read(index))

    def batches(self, size: int) -> Iterator[tuple[Tensor, Targets]]:
        """Consecutive batches of at most ``size`` samples, in order (read by the loader workers
        when there are several batches to read)."""
        return ordered_batches(self, size)

    def subset(self, index: Tensor) -> ImageSplit:
        index = torch.as_tensor(index).cpu()
        return ImageSplit(
            self.images,
            {k: v[index] for k, v in self.targets.items()},
            self.rows[index.numpy()],
            self._device,
            self.workers,
        )

    def to(self, device: torch.device | str, workers: int | None = None) -> ImageSplit:
        split = ImageSplit.__new__(ImageSplit)
        split.images, split.rows, split.targets = self.images, self.rows, self.targets
        split._device = torch.device(device)
        split.workers = self.workers if workers is None else workers
        return split


def _workers(workers: int | None) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers: expected an integer >= 0, got {workers!r}")
    return workers


AnySplit = Split | DatasetSplit | ImageSplit


def carve_validation(train: AnySplit, fraction: float, seed: int) -> tuple[AnySplit, AnySplit]:
    """Splits ``train`` into (train, val) with a fixed seed: ``fraction`` goes to val."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=generator)
    n_val = max(1, round(fraction * len(train)))
    return train.subset(order[n_val:].sort().values), train.subset(order[:n_val].sort().values)


@dataclass
class Benchmark:
    """A named benchmark.

    MTL (``setting='mtl'``): one input distribution, ``tasks`` are the objectives; ``domains``
    holds a single entry. MDL (``setting='mdl'``): ``domains`` are the objectives, each with its
    own splits, and there is one task (one label space). The scalarization weights are then the
    sampling ratios of the domains.
    """

    name: str
    setting: Literal["mtl", "mdl"]
    tasks: list[Task]
    domains: dict[str, dict[str, AnySplit]]
    description: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.setting not in ("mtl", "mdl"):
            raise ValueError(f"setting must be 'mtl' or 'mdl', got {self.setting!r}")
        if self.setting == "mdl" and len(self.tasks) != 1:
            raise ValueError("an MDL benchmark has exactly one task (one label space)")
        if self.setting == "mtl" and len(self.domains) != 1:
            raise ValueError("an MTL benchmark has exactly one input domain")
        names = [t.name for t in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        for domain, splits in self.domains.items():
            missing = [s for s in SPLITS if s not in splits]
            if missing:
                raise ValueError(f"domain {domain!r} lacks splits {missing}")
            for split in splits.values():
                if isinstance(split, DatasetSplit) and not split.task_names:
                    split.task_names = names

    @classmethod
    def from_datasets(
        cls,
        name: str,
        tasks: Sequence[Task],
        splits: Mapping[str, Any],
        *,
        setting: Literal["mtl", "mdl"] | None = None,
        collate: Callable[[list], Any] | None = None,
        description: str = "",
    ) -> Benchmark:
        """A benchmark over map-style Datasets whose items are ``(input, {task: target})``.

        MTL: ``splits = {"train": ds, "val": ds, "test": ds}``. MDL: ``splits = {domain:
        {"train": ds, "val": ds, "test": ds}}`` (one task). ``setting`` is inferred from the shape
        of ``splits`` when not given.
        """
        nested = all(isinstance(v, Mapping) for v in splits.values())
        setting = setting or ("mdl" if nested else "mtl")
        names = [t.name for t in tasks]
        wrap = lambda ds: ds if isinstance(ds, (Split, DatasetSplit, ImageSplit)) else DatasetSplit(ds, names, collate)  # noqa: E731
        domains = (
            {d: {s: wrap(v) for s, v in inner.items()} for d, inner in splits.items()}
            if nested
            else {"all": {s: wrap(v) for s, v in splits.items()}}
        )
        return cls(name, setting, list(tasks), domains, description)

    @property
    def objectives(self) -> list[str]:
        """What the weights weigh: task names (MTL) or domain names (MDL)."""
        return [t.name for t in self.tasks] if self.setting == "mtl" else list(self.domains)

    @property
    def input_shape(self) -> tuple[int, ...]:
        first = next(iter(self.domains.values()))["train"]
        return first.sample_shape

    def split(self, name: str, domain: str | None = None) -> AnySplit:
        domain = domain if domain is not None else next(iter(self.domains))
        return self.domains[domain][name]

    def sizes(self) -> dict[str, dict[str, int]]:
        return {d: {s: len(splits[s]) for s in SPLITS} for d, splits in self.domains.items()}

    def restrict(self, objectives: list[str]) -> Benchmark:
        """The same benchmark with a subset of its objectives (single-task baselines)."""
        unknown = [o for o in objectives if o not in self.objectives]
        if unknown:
            raise ValueError(f"unknown objectives {unknown}; allowed: {self.objectives}")
        if self.setting == "mtl":
            tasks = [t for t in self.tasks if t.name in objectives]
            return Benchmark(self.name, "mtl", tasks, self.domains, self.description, self.extras)
        domains = {d: s for d, s in self.domains.items() if d in objectives}
        return Benchmark(self.name, "mdl", self.tasks, domains, self.description, self.extras)

    def with_tasks(self, tasks: Sequence[Task]) -> Benchmark:
        """The same data with other task objects (same names: e.g. another loss or metric)."""
        return Benchmark(self.name, self.setting, list(tasks), self.domains, self.description, self.extras)

    def to(self, device: torch.device | str, workers: int | None = None) -> Benchmark:
        """The benchmark on ``device``: in-memory tensors are moved there, splits read from
        storage will deliver their batches there (with ``workers`` loader workers when given)."""
        domains = {
            d: {
                s: split.to(device) if isinstance(split, Split) else split.to(device, workers) for s, split in v.items()
            }
            for d, v in self.domains.items()
        }
        return Benchmark(self.name, self.setting, self.tasks, domains, self.description, self.extras)
