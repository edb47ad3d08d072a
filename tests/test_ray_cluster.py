"""PBT on a 2-node Ray cluster started on this machine, losing the second node mid-run.

The scenario (``ray_cluster_scenario.py``) runs in a process of its own, in a session of its own:
when Tune stalls, the test kills that session (driver, raylets, workers) and fails, instead of
leaving a live Tune thread behind in the test process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray")
pytestmark = pytest.mark.xdist_group("ray")  # one Ray at a time under `pytest -n`

from scalarize.store import Store  # noqa: E402

SCENARIO = Path(__file__).with_name("ray_cluster_scenario.py")
EVALUATIONS = 4

#: A run takes 25-50 s on an idle 2-core machine. Before ``ignore_stale_trial_failures``, Tune's
#: double failure left synchronous PBT waiting forever (1 run in 6 with ``when="result"``, nearly
#: every run with ``when="save"``).
STALL_SECONDS = 300


def _run_scenario(output: Path, facts: Path, when: str, seconds: float) -> dict:
    """Runs the scenario in a new session; on a stall, kills the whole session and fails.
    Returns the facts the scenario wrote."""
    source = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, str(SCENARIO), str(output), str(facts), when],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        log, _ = process.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"Tune stalled after the node loss (no result in {seconds} s)")
    assert process.returncode == 0, f"the scenario failed (exit {process.returncode}):\n{log[-6000:]}"
    return json.loads(facts.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("when", ["result", "save"])
def test_pbt_across_two_nodes_survives_losing_one(tmp_path, _isolated_cache, when):
    output = tmp_path / "out"
    facts = _run_scenario(output, tmp_path / "facts.json", when, STALL_SECONDS)

    # the members ran on both nodes, and the one lost mid-run had trials on it
    assert facts["removed"] and facts["trials_on_lost_node"]
    assert set(facts["nodes_used"]) == {facts["head"], facts["worker"]}
    if when == "result":  # a trial died with the node, and restarted from its checkpoint
        assert facts["restarts"] >= 1
    assert facts["trials"] == 4  # four trials, none duplicated

    members = [f"rc-m{i:02d}" for i in range(4)]
    with Store(output) as store:
        assert {r["name"]: r["status"] for r in store.runs()} == {m: "completed" for m in members}
        for member in members:
            history = store.history(member, "val")
            steps = [step for step, _ in history["task0/mse"]]
            assert steps == [8 * (k + 1) for k in range(EVALUATIONS)], member  # each evaluation once
            assert set(store.final(member)) == {"val", "test"}
            assert (output / "runs" / member / "model.pt").is_file()  # copied by the driver
            assert not (output / "runs" / member / "checkpoint.pt").exists()  # trials write nothing here
        lineage = store.lineage("rc")
    assert sorted(r["member"] for r in lineage if r["time"] == 0) == members
    assert len({(r["time"], r["member"]) for r in lineage}) == len(lineage)
    for row in lineage:
        assert row["source"] in members and sum(row["weights"]) == pytest.approx(1.0)
        assert row["time"] < EVALUATIONS
    exploits = [r for r in lineage if r["member"] != r["source"]]
    assert exploits  # PBT copied members across the run
    assert facts["first_schedule_time"] == 0 and facts["best"] in members


def test_a_dead_actor_reported_again_for_a_requeued_trial_is_ignored(monkeypatch):
    """The guard against Tune's double failure (``ignore_stale_trial_failures``): only a dead
    actor reported for a ``PENDING`` trial without an actor (requeued already) is dropped, and
    that trial no longer waits for the reset of the dead actor."""
    from types import SimpleNamespace

    from ray.exceptions import RayActorError
    from ray.tune.error import TuneError
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.experiment import Trial

    from scalarize.backends.ray import ignore_stale_trial_failures

    processed = []
    monkeypatch.setattr(
        TuneController,
        "_process_trial_failure",
        lambda self, trial, exception: processed.append((names[trial.trial_id], type(exception))),
    )
    ignore_stale_trial_failures()
    ignore_stale_trial_failures()  # idempotent: wrapped once
    requeued, starting, running = (Trial("trainable", stub=True) for _ in range(3))
    names = {requeued.trial_id: "requeued", starting.trial_id: "starting", running.trial_id: "running"}
    running.status = Trial.RUNNING  # the others are PENDING, as new trials are
    controller = SimpleNamespace(
        _trial_to_actor={starting: object(), running: object()}, _resetting_trials={requeued, starting}
    )  # waiting for a reset
    for trial in (requeued, starting, running):
        TuneController._process_trial_failure(controller, trial, RayActorError())
    TuneController._process_trial_failure(controller, requeued, TuneError("a scheduler failed"))
    assert processed == [("starting", RayActorError), ("running", RayActorError), ("requeued", TuneError)]
    assert controller._resetting_trials == {starting}  # the requeued trial's reset is over: it may start again
