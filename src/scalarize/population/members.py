"""Members of a population: runs that share an architecture and differ in weights and seed.

A member is an ordinary :class:`~scalarize.train.run.RunSpec` (kind ``member``), so a member
trained in a population equals the same config trained alone.
"""

from __future__ import annotations

from scalarize.train.config import TrainConfig
from scalarize.train.run import RunSpec

Member = RunSpec


def member_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:03d}"


def architecture_key(config: TrainConfig) -> str:
    """Members with equal keys can be stacked: same benchmark, model, optimizer and budget."""
    data = config.model_dump(exclude={"name", "output", "stl", "seed", "method", "threads"})
    data["method"] = config.method.name
    return repr(sorted(data.items()))
