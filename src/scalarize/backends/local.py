"""The local backend: runs trained in this process, stacked where it pays
(:mod:`scalarize.population.engine`), PBT on a stacked population (:mod:`scalarize.population.pbt`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scalarize.population.engine import train_members
from scalarize.population.pbt import LocalPBT, PBTOutcome, PBTSearch
from scalarize.store.database import Store
from scalarize.train.devices import apply_threads
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec
from scalarize.train.setup import benchmark_from_config


class LocalBackend:
    name = "local"

    def __init__(self, engine: str = "auto", chunk_size: int = 16) -> None:
        self.engine = engine
        self.chunk_size = chunk_size

    def train(
        self,
        runs: Sequence[RunSpec],
        store: Store,
        *,
        progress: bool = True,
        log: Callable[[str], None] = lambda _: None,
        on_evaluation: Callable | None = None,
        group: str | None = None,
    ) -> dict[str, RunResult]:
        if runs:
            apply_threads(runs[0].config.threads)
        return train_members(
            runs,
            store,
            engine=self.engine,
            chunk_size=self.chunk_size,
            progress=progress,
            log=log,
            on_evaluation=on_evaluation,
        )

    def pbt(
        self, search: PBTSearch, store: Store, *, progress: bool = True, log: Callable[[str], None] = lambda _: None
    ) -> PBTOutcome:
        config = search.members[0].config
        apply_threads(config.threads)
        benchmark = benchmark_from_config(config.benchmark)
        checkpoint = store.directory / "runs" / f"pbt-{search.name}.pt"
        return LocalPBT(search, benchmark, store, checkpoint, progress=progress, log=log).fit()
