"""``scalarize pbt replay``: replay a PBT schedule: train models from scratch following the best
member's weights, against uniform scalarization on the same footing.

As Ray Tune's ``PopulationBasedTrainingReplay``: the schedule (from ``pbt_result.json`` in the
experiment directory) becomes a :class:`~scalarize.methods.ScheduledScalarization`, on the config
of the member the best model descends from (its root in the lineage). PBT's best member was
chosen on validation among the whole population, so its numbers are optimistic; the replay
retrains only the schedule, with several seeds, and uniform scalarization is trained with the
same seeds, budget, learning-rate schedule and model: the comparison that says whether the
schedule helps. The runs are stored in the same experiment directory as
``<search>-replay-s<seed>`` and ``<search>-uniform-s<seed>`` (the search's own uniform run is
reused for the seed it was trained with).

The member's config is read back from the directory's store, so an import path in it
(``model.target``, ``benchmark.target``, a task kind) is refused unless the user trusts the
directory (``trust=True``, ``scalarize pbt replay DIR --trust``): see :mod:`scalarize.imports`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scalarize.backends.base import get_backend
from scalarize.experiments.pbt import RESULT_FILE
from scalarize.imports import stored
from scalarize.store.database import Store
from scalarize.train.config import ConfigError, TrainConfig
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec
from scalarize.train.setup import prepare

#: Seeds a replay trains by default, counted from the best member's root seed.
DEFAULT_SEEDS = 3


def root_member(lineage: list[dict], member: str) -> str:
    """The member whose initial model the final model of ``member`` descends from."""
    current = member
    for row in sorted(lineage, key=lambda r: r["time"], reverse=True):
        if row["member"] == current and row["source"] != current:
            current = row["source"]
    return current


def _saved(directory: Path) -> dict:
    path = Path(directory) / RESULT_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing (run `scalarize pbt CONFIG` into this directory first)")
    try:
        saved = json.loads(path.read_text())
        saved["schedule"], saved["best"], saved["search"]  # noqa: B018 - the keys a replay needs
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"{path}: corrupt (expected search, best and schedule)") from None
    return saved


def replay_config(directory: Path, seed: int | None = None, device: str | None = None) -> tuple[TrainConfig, dict]:
    """The replay's config (the root member's, following the schedule) at ``seed`` (default:
    the root member's), and what ``pbt_result.json`` holds."""
    saved = _saved(directory)
    with Store.open_existing(directory) as store:
        lineage = store.lineage(saved["search"])
        root = store.run(root_member(lineage, saved["best"]))
    if root is None:
        raise ConfigError(f"{directory}: the lineage names a member that is not in the database")
    data = json.loads(root["config"])
    data.update(
        method={"name": "scheduled_scalarization", "options": {"schedule": saved["schedule"]}},
        stl=False,
        output=str(directory),
    )
    if device is not None:
        data["device"] = device
    seed = data["seed"] if seed is None else seed
    data.update(name=f"{saved['search']}-replay-s{seed}", seed=seed)
    return TrainConfig.model_validate(data), saved


def uniform_config(replay: TrainConfig, search: str) -> TrainConfig:
    """Uniform scalarization with everything else of ``replay``: model, budget, schedule, seed."""
    return replay.model_copy(
        update={"name": f"{search}-uniform-s{replay.seed}", "method": type(replay.method)(name="scalarization")}
    )


@dataclass
class ReplayResult:
    directory: Path
    search: str
    best: str
    schedule: list
    seeds: list[int]
    primary: list[tuple[str, bool]]
    replay: dict[int, RunResult]
    uniform: dict[int, RunResult]
    #: what PBT reported for its best member (val and test at its best validation evaluation)
    pbt_best: dict = field(default_factory=dict)
    population: int | None = None
    config: TrainConfig | None = None


def _uniform_spec(store: Store, config: TrainConfig, search: str) -> RunSpec:
    """The search's own uniform run when it is this one (same fingerprint), else a new one."""
    own = store.run(f"{search}-uniform")
    if own is not None and own["fingerprint"] == config.fingerprint() and own["status"] == "completed":
        return RunSpec(own["name"], config.model_copy(update={"name": own["name"]}), "uniform")
    return RunSpec(config.name, config, "uniform")


def replay(
    directory: str | Path,
    *,
    seeds: Sequence[int] | None = None,
    device: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    trust: bool = False,
    hint: str = "pass trust=True",
) -> ReplayResult:
    """Trains the best member's schedule from scratch and uniform scalarization, both with
    ``seeds`` (default: three from the root member's seed), or reads them back. The stored
    config's import paths are imported only with ``trust`` (else a one-line error with ``hint``)."""
    directory = Path(directory)
    with stored(directory, trust=trust, hint=hint):
        return _replay(directory, seeds, device, progress, log)


def _replay(
    directory: Path, seeds: Sequence[int] | None, device: str | None, progress: bool, log: Callable[[str], None]
) -> ReplayResult:
    first, saved = replay_config(directory, device=device)
    seeds = list(dict.fromkeys(seeds)) if seeds else [first.seed + i for i in range(DEFAULT_SEEDS)]
    configs = [replay_config(directory, seed, device)[0] for seed in seeds]
    benchmark, _ = prepare(configs[0])
    with Store(directory) as store:
        uniform = [_uniform_spec(store, uniform_config(c, saved["search"]), saved["search"]) for c in configs]
        specs = [RunSpec(c.name, c, "replay") for c in configs]
        log(
            f"replaying the schedule of {saved['best']} from scratch and uniform scalarization, "
            f"seeds {', '.join(map(str, seeds))}"
        )
        results = get_backend("local", engine="loop").train([*specs, *uniform], store, progress=progress, log=log)
    return ReplayResult(
        directory=directory,
        search=saved["search"],
        best=saved["best"],
        schedule=saved["schedule"],
        seeds=seeds,
        primary=primary_metrics(benchmark),
        replay={s.seed: results[s.name] for s in specs},
        uniform={s.seed: results[s.name] for s in uniform},
        pbt_best={"val": saved.get("val", {}), "test": saved.get("test", {})},
        population=saved.get("population"),
        config=configs[0],
    )
