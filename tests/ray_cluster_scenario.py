"""The 2-node scenario of ``test_ray_cluster.py``, run as its own process.

``python tests/ray_cluster_scenario.py OUTPUT FACTS`` starts a Ray cluster on this machine (Ray's own
``ray.cluster_utils.Cluster``: a head and a second node joining it, one CPU each), runs PBT on it into
OUTPUT, removes the second node mid-run, and writes what the test checks to FACTS (JSON). The test
runs it in a process of its own so that a stalled Tune can be killed with everything it started.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import ray
from ray.cluster_utils import Cluster
from ray.tune import Callback

from scalarize.backends.ray import NODE, RayBackend
from scalarize.experiments.pbt import PBTConfig, run_pbt

TINY = {"name": "synthetic", "options": {"num_tasks": 2, "input_dim": 8, "output_dim": 2, "train_size": 400,
                                          "val_size": 100, "test_size": 100}}
EVALUATIONS = 4
STEPS_PER_EVALUATION = 8  # 400 samples / batch 50


class LoseNode(Callback):
    """Removes ``node`` from ``cluster`` (its raylet and every process on it die, as when a
    machine is lost) as soon as a trial running there has reported ``after`` evaluations."""

    def __init__(self, cluster, node, after: int = 1) -> None:
        self.cluster, self.node, self.after = cluster, node, after
        self.seen, self.removed = 0, threading.Event()
        self.trials_on_node: set[str] = set()

    def __reduce__(self):  # Tune saves its callbacks with the experiment: save none of this
        return (Callback, ())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(NODE) != self.node.node_id or self.removed.is_set():
            return
        self.trials_on_node.add(trial.trial_id)
        self.seen += 1
        if self.seen >= self.after and result["step"] < EVALUATIONS * STEPS_PER_EVALUATION:  # mid-run
            self.removed.set()
            threading.Thread(target=self.cluster.remove_node, args=(self.node,), daemon=True).start()


def run(output: Path) -> dict:
    """Runs the scenario and returns the facts about the cluster that the test checks."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    try:
        head = ray.get_runtime_context().get_node_id()
        lose = LoseNode(nodes, worker)
        backend = RayBackend(address=nodes.address, callbacks=[lose])
        config = PBTConfig(
            name="rc", benchmark=TINY, model={"width": 0.25}, epochs=EVALUATIONS, batch_size=50, output=str(output),
            pbt={"population": 4, "interval": 1, "backend": "ray", "compare_uniform": False},
        )
        result = run_pbt(config, backend=backend, progress=False)
        return {
            "head": head, "worker": worker.node_id,
            "removed": lose.removed.is_set(), "trials_on_lost_node": sorted(lose.trials_on_node),
            "nodes_used": sorted(set().union(*backend.driver.nodes.values())),
            "trials": len(backend.driver.nodes), "restarts": backend.driver.restarts,
            "first_schedule_time": result.schedule[0][0], "best": result.members[result.best].name,
        }
    finally:
        ray.shutdown()
        nodes.shutdown()


if __name__ == "__main__":
    facts = run(Path(sys.argv[1]))
    Path(sys.argv[2]).write_text(json.dumps(facts))
