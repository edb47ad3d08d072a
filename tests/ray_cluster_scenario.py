"""The 2-node scenario of ``test_ray_cluster.py``, run as its own process.

``python tests/ray_cluster_scenario.py OUTPUT FACTS WHEN`` starts a Ray cluster on this machine (Ray's
own ``ray.cluster_utils.Cluster``: a head and a second node joining it, one CPU each), runs PBT on it
into OUTPUT, removes the second node mid-run (WHEN: see :class:`LoseNode`), and writes what the test
checks to FACTS (JSON). The test
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

TINY = {
    "name": "synthetic",
    "options": {"num_tasks": 2, "input_dim": 8, "output_dim": 2, "train_size": 400, "val_size": 100, "test_size": 100},
}
EVALUATIONS = 4
STEPS_PER_EVALUATION = 8  # 400 samples / batch 50


class LoseNode(Callback):
    """Removes ``node`` from ``cluster`` (its raylet and every process on it die, as when a
    machine is lost), at one of two moments (``when``):

    * ``"result"``: as soon as a trial running there has reported its first evaluation, from
      another thread (Tune goes on meanwhile): the trial dies mid-run and restarts from its
      checkpoint elsewhere;
    * ``"save"``: right after a trial there has saved its checkpoint at a sync, before Tune goes on:
      its actor, paused and kept for reuse, is usually handed to the next trial while the node is
      already gone, and the dead actor is then reported twice (Tune's double failure, see
      ``scalarize.backends.ray.ignore_stale_trial_failures``).
    """

    def __init__(self, cluster, node, when: str = "result") -> None:
        self.cluster, self.node, self.when = cluster, node, when
        self.removed = threading.Event()
        self.trials_on_node: set[str] = set()

    def __reduce__(self):  # Tune saves its callbacks with the experiment: save none of this
        return (Callback, ())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if result.get(NODE) != self.node.node_id or self.removed.is_set():
            return
        self.trials_on_node.add(trial.trial_id)
        if self.when == "result" and result["step"] < EVALUATIONS * STEPS_PER_EVALUATION:  # mid-run
            self.removed.set()
            threading.Thread(target=self.cluster.remove_node, args=(self.node,), daemon=True).start()

    def on_trial_save(self, iteration, trials, trial, **info):
        if self.when == "save" and trial.trial_id in self.trials_on_node and not self.removed.is_set():
            self.removed.set()
            self.cluster.remove_node(self.node)


def run(output: Path, when: str) -> dict:
    """Runs the scenario and returns the facts about the cluster that the test checks."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    worker = nodes.add_node(num_cpus=1)
    nodes.wait_for_nodes()
    ray.init(address=nodes.address, log_to_driver=False)
    try:
        head = ray.get_runtime_context().get_node_id()
        lose = LoseNode(nodes, worker, when)
        backend = RayBackend(address=nodes.address, callbacks=[lose])
        config = PBTConfig(
            name="rc",
            benchmark=TINY,
            model={"width": 0.25},
            epochs=EVALUATIONS,
            batch_size=50,
            output=str(output),
            pbt={"population": 4, "interval": 1, "backend": "ray", "compare_uniform": False},
        )
        result = run_pbt(config, backend=backend, progress=False)
        return {
            "head": head,
            "worker": worker.node_id,
            "removed": lose.removed.is_set(),
            "trials_on_lost_node": sorted(lose.trials_on_node),
            "nodes_used": sorted(set().union(*backend.driver.nodes.values())),
            "trials": len(backend.driver.nodes),
            "restarts": backend.driver.restarts,
            "first_schedule_time": result.schedule[0][0],
            "best": result.members[result.best].name,
        }
    finally:
        ray.shutdown()
        nodes.shutdown()


if __name__ == "__main__":
    facts = run(Path(sys.argv[1]), sys.argv[3])
    Path(sys.argv[2]).write_text(json.dumps(facts))
