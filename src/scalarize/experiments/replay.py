"""``scalarize pbt replay``: replay a PBT schedule: train one model from scratch following the best member's weights.

As Ray Tune's ``PopulationBasedTrainingReplay``: the schedule (from ``pbt_result.json`` in the
experiment directory) becomes a :class:`~scalarize.methods.ScheduledScalarization`, the seed is
that of the member the best model descends from (its root in the lineage), and the run is stored
in the same experiment directory as ``<search>-replay``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from scalarize.experiments.pbt import RESULT_FILE
from scalarize.experiments.train import run_experiment
from scalarize.store.database import Store
from scalarize.train.config import ConfigError, TrainConfig
from scalarize.train.record import RunResult


def root_member(lineage: list[dict], member: str) -> str:
    """The member whose initial model the final model of ``member`` descends from."""
    current = member
    for row in sorted(lineage, key=lambda r: r["time"], reverse=True):
        if row["member"] == current and row["source"] != current:
            current = row["source"]
    return current


def replay_config(directory: Path) -> tuple[TrainConfig, dict]:
    path = Path(directory) / RESULT_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing (run `scalarize pbt CONFIG` into this directory first)")
    try:
        saved = json.loads(path.read_text())
        schedule, best = saved["schedule"], saved["best"]
    except (ValueError, KeyError):
        raise ConfigError(f"{path}: corrupt (expected best and schedule)") from None
    with Store.open_existing(directory) as store:
        lineage = store.lineage(saved["search"])
        root = store.run(root_member(lineage, best))
    if root is None:
        raise ConfigError(f"{directory}: the lineage names a member that is not in the database")
    data = json.loads(root["config"])
    data.update(
        name=f"{saved['search']}-replay",
        method={"name": "scheduled_scalarization", "options": {"schedule": schedule}},
        stl=False,
        output=str(directory),
    )
    return TrainConfig.model_validate(data), saved


def replay(directory: str | Path, *, progress: bool = True, log: Callable[[str], None] = lambda _: None) -> tuple[RunResult, dict]:
    config, saved = replay_config(Path(directory))
    log(f"replaying the schedule of {saved['best']} from scratch (seed {config.seed}) as {config.name}")
    return run_experiment(config, progress=progress, log=log).main, saved
