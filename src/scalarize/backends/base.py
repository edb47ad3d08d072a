"""Where a plan of runs is trained: the backend interface.

An experiment (``scalarize.experiments``) turns its config into ordinary runs
(:class:`~scalarize.train.run.RunSpec`) or a PBT search
(:class:`~scalarize.population.pbt.PBTSearch`) and hands them to a backend:

* :class:`~scalarize.backends.local.LocalBackend`: in this process, each group of runs stacked
  or in a loop (:mod:`scalarize.population.engine`), PBT on a stacked population;
* :class:`~scalarize.backends.ray.RayBackend`: one Ray Tune trial per run or member, on a local
  Ray or a cluster.

Both train every run with the same run core and write the same records into the experiment's
store, so the reports do not know which one ran.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from scalarize.population.pbt import PBTOutcome, PBTSearch
from scalarize.store.database import Store
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec

Log = Callable[[str], None]


class Backend(Protocol):
    """Trains runs and PBT searches into an experiment's store."""

    name: str

    def train(
        self,
        runs: Sequence[RunSpec],
        store: Store,
        *,
        progress: bool = True,
        log: Log = print,
        on_evaluation: Callable | None = None,
        group: str | None = None,
    ) -> dict[str, RunResult]:
        """Trains every run not yet finished in ``store``; returns every run's result. ``group``
        names this call's runs when one experiment trains several groups one after another (an
        adaptive sweep's batches): Ray keeps one Tune experiment per group."""
        ...

    def pbt(self, search: PBTSearch, store: Store, *, progress: bool = True, log: Log = print) -> PBTOutcome:
        """Runs a PBT/PB2 search (resuming where it stopped)."""
        ...


BACKENDS = ("local", "ray")


def get_backend(
    name: str = "local",
    *,
    address: str | None = None,
    engine: str = "auto",
    chunk_size: int = 16,
    storage: str | None = None,
) -> Backend:
    """A backend by name: ``local`` (``engine``: auto, vectorized or loop; ``chunk_size``) or
    ``ray`` (``address`` of a cluster, or a local Ray; ``storage``: where trials checkpoint)."""
    if name == "local":
        from scalarize.backends.local import LocalBackend

        return LocalBackend(engine=engine, chunk_size=chunk_size)
    if name == "ray":
        from scalarize.backends.ray import RayBackend

        return RayBackend(address=address, storage=storage)
    raise ValueError(f"backend: unknown backend {name!r}; allowed: {', '.join(BACKENDS)}")
