"""Benchmarks: train/val/test splits with several tasks on one input (MTL) or several domains
sharing one label space (MDL).

Everything is held as tensors in memory (the bundled benchmarks are small); batches are index
lookups, which keeps the training loop within a few percent of a hand-written one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor

from scalarize.data.task import Task

SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split of one input distribution: inputs ``[N, ...]`` and one target per task."""

    inputs: Tensor
    targets: dict[str, Tensor]

    def __post_init__(self) -> None:
        for name, target in self.targets.items():
            if len(target) != len(self.inputs):
                raise ValueError(
                    f"target {name!r} has {len(target)} rows but inputs have {len(self.inputs)}"
                )

    def __len__(self) -> int:
        return len(self.inputs)

    def subset(self, index: Tensor) -> Split:
        return Split(self.inputs[index], {k: v[index] for k, v in self.targets.items()})

    def to(self, device: torch.device | str) -> Split:
        return Split(self.inputs.to(device), {k: v.to(device) for k, v in self.targets.items()})


def carve_validation(train: Split, fraction: float, seed: int) -> tuple[Split, Split]:
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
    domains: dict[str, dict[str, Split]]
    description: str = ""
    extras: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.setting not in ("mtl", "mdl"):
            raise ValueError(f"setting must be 'mtl' or 'mdl', got {self.setting!r}")
        if self.setting == "mdl" and len(self.tasks) != 1:
            raise ValueError("an MDL benchmark has exactly one task (one label space)")
        if self.setting == "mtl" and len(self.domains) != 1:
            raise ValueError("an MTL benchmark has exactly one input domain")
        for domain, splits in self.domains.items():
            missing = [s for s in SPLITS if s not in splits]
            if missing:
                raise ValueError(f"domain {domain!r} lacks splits {missing}")

    @property
    def objectives(self) -> list[str]:
        """What the weights weigh: task names (MTL) or domain names (MDL)."""
        return [t.name for t in self.tasks] if self.setting == "mtl" else list(self.domains)

    @property
    def input_shape(self) -> tuple[int, ...]:
        first = next(iter(self.domains.values()))["train"]
        return tuple(first.inputs.shape[1:])

    def split(self, name: str, domain: str | None = None) -> Split:
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

    def to(self, device: torch.device | str) -> Benchmark:
        domains = {d: {s: split.to(device) for s, split in v.items()} for d, v in self.domains.items()}
        return Benchmark(self.name, self.setting, self.tasks, domains, self.description, self.extras)
