"""Members of a population: runs that share an architecture and differ in weights and seed."""

from __future__ import annotations

from dataclasses import dataclass

from scalarize.train.config import TrainConfig


@dataclass(frozen=True)
class Member:
    """One run of a population; its config is a plain :class:`TrainConfig` with its weights and
    seed, so a member trained in a population equals the same config trained alone."""

    name: str
    config: TrainConfig

    @property
    def weights(self) -> list[float] | None:
        return self.config.method.weights

    @property
    def seed(self) -> int:
        return self.config.seed


def member_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:03d}"


def architecture_key(config: TrainConfig) -> str:
    """Members with equal keys can be stacked: same benchmark, model, optimizer and budget."""
    data = config.model_dump(exclude={"name", "output", "stl", "seed", "method"})
    data["method"] = config.method.name
    return repr(sorted(data.items()))
