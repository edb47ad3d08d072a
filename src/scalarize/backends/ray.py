"""The Ray backend: the same runs and PBT/PB2 searches as Ray Tune trials, one per run or member,
on a local Ray or a multi-node cluster (``--address HOST:PORT``).

* Runs (a sweep, a comparison, a study's cells) form a Ray Tune grid. A search's weights are the
  trials' hyperparameters ``w0 … w{k-1}``; synchronous syncs every ``interval`` evaluations,
  ``reuse_actors=True``, every checkpoint kept (PBT may exploit any).
* PBT and MO-PBT run on Tune's synchronous PBT with the decisions taken by the search's own
  policy (:class:`PolicyPBT`, a subclass of Tune's scheduler): at each sync it hands every live
  trial's last report (the scalar ``fitness`` and the raw ``objectives``) to the policy, exactly
  as the local engine does, and each exploited trial clones the source and takes the weights the
  policy chose. So the decisions are a pure function of the seed and the reports: two runs store
  the same lineage and weights, and a restored experiment takes the same decisions (a trial
  restored at a sync waits there until the sync is taken again). PB2 is Ray Tune's
  (``ray.tune.schedulers.pb2.PB2``, a custom explore puts the weights back on the simplex).
* Every trial is the run core's :class:`~scalarize.train.Trainer`, trained one evaluation at a
  time: after each, it reports its fitness with a Tune checkpoint (its whole state and the model
  it reports), and Tune restarts a trial whose actor died (a lost node) from its last checkpoint,
  on any node, up to :data:`MAX_FAILURES` times. A trial restored from another member's
  checkpoint records the exploit in the lineage.
* **Trials never touch the experiment directory.** What a trial's record writes (evaluations,
  costs, final metrics, its end, lineage rows) travels with its report, and the driver (the
  ``scalarize`` process) writes it into the one SQLite store, as a Tune callback: SQLite is
  written by one process on a local disk, never over a network file system, and every row is
  keyed (a row sent again by a restarted trial replaces itself). The reported models
  (``runs/<name>/model.pt``, PBT's ``best_model.pt``) are copied by the driver from the trials'
  last checkpoints.
* Checkpoints go to Tune's ``storage_path``: ``<experiment>/ray`` by default, which must then be
  on a file system every node sees; ``storage`` (``pbt.storage``, ``sweep.storage``, or
  ``--storage``) names another, e.g. a shared mount or ``s3://bucket/prefix`` (the experiment
  directory's name is appended). Rerunning an interrupted command restores the Tune experiment:
  one per ``group`` of runs (``runs`` by default; an adaptive sweep's batches are ``batch-NN``).

Ray starts locally when no address is given and joins the cluster at ``address`` otherwise.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from scalarize.population.pbt import PBTOutcome, PBTSearch, best_schedule, choose_front, last_metrics, scores
from scalarize.search.fitness import build_fitness
from scalarize.store.database import Store, StoreError
from scalarize.train.checkpoint import MODEL_FILE, load_checkpoint, run_directory, save_atomically
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec, build_trainer, is_finished, result_from_store
from scalarize.train.setup import benchmark_from_config

WEIGHT_FLOOR = 1e-6
DIVERGED_FITNESS = -1e12  # Ray ranks trials by a finite number


def _ray():
    try:
        import ray
        from ray import tune
    except ImportError:  # pragma: no cover - depends on the installation
        raise RuntimeError("the ray backend needs Ray Tune: pip install 'scalarize[ray]'") from None
    return ray, tune


def start_ray(address: str | None, log: Callable[[str], None]) -> None:
    ray, _ = _ray()
    for name in ("ray", "ray.tune", "ray.tune.schedulers.pbt"):
        logging.getLogger(name).setLevel(logging.ERROR)  # our own lines say what happens
    ignore_stale_trial_failures()
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        log(f"joining the Ray cluster at {address}")
        ray.init(address=address, log_to_driver=False)
    else:  # "local": a fresh Ray here, never a stale cluster that /tmp/ray/ray_current_cluster names
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


def ignore_stale_trial_failures() -> None:
    """Makes Ray Tune drop a failure reported for a trial it has already requeued.

    When a node is lost while Tune hands a paused trial the cached actor of another trial on that
    node (``reuse_actors``), the dead actor fails twice: once as an actor (Tune requeues the trial
    to restart it from its checkpoint: ``PENDING``, no actor) and once more through the ``reset``
    task it was sent. Tune (2.60) processes the second as a new failure of the ``PENDING`` trial
    and marks it errored, yet keeps it among the live trials, so synchronous PBT waits for it
    forever (seen in ``tests/test_ray_cluster.py``, 1 run in 6). Tune itself treats the failure of
    an actor it has already cleaned up as handled (its task callbacks say so); this applies the
    same rule where the trial is processed: a ``PENDING`` trial without an actor has no task that
    could have failed, so a dead actor reported for it is the failure already handled; the reset
    it was waiting for is over too (Tune clears that mark only when a reset succeeds, and would
    otherwise never give the trial an actor again). Idempotent.
    """
    try:
        from ray.exceptions import RayActorError
        from ray.tune.execution.tune_controller import TuneController
        from ray.tune.experiment import Trial
    except ImportError:  # pragma: no cover - another Tune layout: leave it as it is
        return
    process = TuneController._process_trial_failure
    if getattr(process, "ignores_stale_failures", False):
        return

    def process_trial_failure(self, trial, exception):
        requeued = trial.status == Trial.PENDING and trial not in self._trial_to_actor
        if requeued and isinstance(exception, RayActorError):  # the failure it was requeued after
            self._resetting_trials.discard(trial)  # a reset of that dead actor: over, and no actor now
            return
        return process(self, trial, exception)

    process_trial_failure.ignores_stale_failures = True
    TuneController._process_trial_failure = process_trial_failure


def weights_of(trial_config: dict, num: int) -> list[float]:
    """The trial's weights ``w0 … w{num-1}`` put back on the simplex (floored)."""
    w = np.clip(np.array([float(trial_config[f"w{i}"]) for i in range(num)]), WEIGHT_FLOOR, None)
    return (w / w.sum()).tolist()


def simplex_explore(num: int) -> Callable[[dict], dict]:
    """Ray's ``custom_explore_fn``: renormalise the perturbed weights onto the simplex."""

    def explore(config: dict) -> dict:
        for i, value in enumerate(weights_of(config, num)):
            config[f"w{i}"] = value
        return config

    return explore


#: Restarts of a trial whose actor died (its node was lost) before the search fails.
MAX_FAILURES = 3
#: The key of a trial's report that carries what its record wrote (see :class:`TrialRecords`).
ROWS = "scalarize_rows"
NODE = "scalarize_node"


class TrialRecords:
    """The store of a trial: keeps what the run's record writes, for the driver to write.

    It answers the writes a :class:`~scalarize.train.record.RunRecord` (and the lineage) make;
    :meth:`take` hands them over with the trial's next report, and
    :func:`write_records` replays them into the experiment's store.
    """

    #: the store's write methods a trial may use
    WRITES = ("record_evaluation", "record_costs", "record_final", "finish_run", "record_lineage")

    def __init__(self) -> None:
        self.rows: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        if name not in TrialRecords.WRITES:
            raise AttributeError(f"a Ray trial does not {name}: the driver writes the store")
        return lambda *args: self.rows.append((name, args))

    def take(self) -> list[tuple[str, tuple]]:
        rows, self.rows = self.rows, []
        return rows


def write_records(store: Store, rows) -> None:
    """Writes what a trial's record wrote into the experiment's ``store`` (one transaction)."""
    with store.transaction():
        for name, args in rows:
            if name not in TrialRecords.WRITES:
                raise ValueError(f"a Ray trial sent an unknown record {name!r}")
            getattr(store, name)(*args)


def member_index() -> int:
    """The member this trial is: the index of the trial in the grid over members.

    Not a config value: PBT's exploit copies the source trial's whole config into the target.
    """
    _, tune = _ray()
    return int(tune.get_context().get_trial_id().rsplit("_", 1)[1])


def _lineage(trainer, member: str, source: str, weights: list[float], lr: float) -> dict:
    return {
        "time": trainer.evaluation,
        "step": trainer.step,
        "member": member,
        "source": source,
        "weights": weights,
        "lr": lr,
    }


def _node() -> str:
    ray, _ = _ray()
    return ray.get_runtime_context().get_node_id()


def _train_and_report(trainer, records: TrialRecords, name: str, score=None, reported=None) -> None:
    """Trains ``trainer`` one evaluation at a time to the end; after each, reports (``score``:
    more metrics of the last evaluation, a PBT member's fitness and objectives) with a
    checkpoint: the trainer's state and the model of the evaluation the run reports
    (``reported``: the one restored, if any)."""
    _, tune = _ray()
    status = "completed" if trainer.step >= trainer.total_steps else "running"
    while status == "running":
        status = trainer.train_segment()
        if status != "diverged" and trainer.record.best["evaluation"] == trainer.evaluation - 1:
            reported = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
        if status != "running":
            trainer.record.finish(status, trainer.diverged_at if status == "diverged" else trainer.step)
        metrics = {"step": trainer.step, "status": status, ROWS: records.take(), NODE: _node()}
        if score is not None:
            metrics.update(score(trainer, status))
        with tempfile.TemporaryDirectory() as directory:
            torch.save(
                {"member": name, "trainer": trainer.state_dict(), "reported": reported}, Path(directory) / "state.pt"
            )
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def _restore() -> dict | None:
    _, tune = _ray()
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        return load_checkpoint(Path(directory) / "state.pt")


def train_member(trial_config: dict) -> None:
    """A Ray Tune function trainable: one PBT member, reporting after every evaluation."""
    search = trial_config["search"]
    spec = RunSpec.from_data(search["members"][member_index()])
    benchmark = benchmark_from_config(spec.config.benchmark)
    fitness = build_fitness(search["fitness"], primary_metrics(benchmark))
    num = len(benchmark.objectives)
    records = TrialRecords()
    trainer = build_trainer(spec, records, checkpoint=False)  # type: ignore[arg-type]
    weights = weights_of(trial_config, num)
    trainer.method.set_weights(weights)
    lr = spec.config.optimizer.lr
    state = _restore()
    reported = None
    if state is None:
        records.record_lineage(search["name"], [_lineage(trainer, spec.name, spec.name, weights, lr)])
    else:
        trainer.load_state_dict(state["trainer"])
        trainer.record.name = spec.name  # an exploit brings the source's record along
        trainer.method.set_weights(weights)
        reported = state.get("reported")
        if state["member"] != spec.name:  # exploited: continue from another member's model
            records.record_lineage(search["name"], [_lineage(trainer, spec.name, state["member"], weights, lr)])

    names = [name for name, _ in primary_metrics(benchmark)]

    def score(trainer, status: str) -> dict:
        alive = status != "diverged"
        values, objectives = scores(fitness, names, [last_metrics(trainer.history) if alive else {}], [alive])
        value = float(values[0])
        return {"fitness": value if math.isfinite(value) else DIVERGED_FITNESS, "objectives": objectives[0].tolist()}

    _train_and_report(trainer, records, spec.name, score, reported)


def train_one_trial(trial_config: dict) -> None:
    """A Ray Tune function trainable: one run of a plan, trained by the run core."""
    spec = RunSpec.from_data(trial_config["run"])
    records = TrialRecords()
    trainer = build_trainer(spec, records, checkpoint=False)  # type: ignore[arg-type]
    state = _restore()
    if state is not None:
        trainer.load_state_dict(state["trainer"])
    _train_and_report(trainer, records, spec.name, reported=state.get("reported") if state else None)


class _Driver:
    """The driver's side of the trials: writes what they send into the store; counts the nodes
    they ran on and their restarts. Active (see :class:`DriverCallback`) while Tune runs."""

    def __init__(self, store: Store, log: Callable[[str], None]) -> None:
        self.store = store
        self.log = log
        self.nodes: dict[str, set[str]] = {}
        self.restarts = 0

    def result(self, trial, result: dict) -> None:
        rows = result.get(ROWS)
        if rows:
            write_records(self.store, rows)
        if result.get(NODE):
            self.nodes.setdefault(trial.trial_id, set()).add(result[NODE])

    def recovered(self, trial) -> None:
        self.restarts += 1
        self.log(f"trial {trial.trial_id} failed (a lost node?): restarted from its last checkpoint")

    def summary(self) -> str:
        nodes = set().union(*self.nodes.values()) if self.nodes else set()
        return f"Ray Tune: {len(self.nodes)} trial(s) ran on {len(nodes)} node(s)" + (
            f"; {self.restarts} restart(s) from checkpoints after failures" if self.restarts else ""
        )

    @contextlib.contextmanager
    def active(self):
        global _ACTIVE
        _ACTIVE = self
        try:
            yield self
        finally:
            _ACTIVE = None


_ACTIVE: _Driver | None = None

try:
    from ray.tune import Callback as _TuneCallback
except ImportError:  # pragma: no cover - depends on the installation
    _TuneCallback = object


class DriverCallback(_TuneCallback):
    """A Tune callback handing every trial result to the active :class:`_Driver`. Stateless, so
    that Tune can save it with the experiment and a restored experiment calls today's driver."""

    def on_trial_result(self, iteration, trials, trial, result, **info):
        if _ACTIVE is not None:
            _ACTIVE.result(trial, result)

    def on_trial_recover(self, iteration, trials, trial, **info):
        if _ACTIVE is not None:
            _ACTIVE.recovered(trial)


def _last_states(grid) -> dict[str, dict]:
    """Each trial's last checkpoint, by the run it trains (the name saved in it: a PBT trial's
    config is its exploit source's, so the config does not say which member it is)."""
    states = {}
    for result in grid:
        if result.checkpoint is None:
            continue
        with result.checkpoint.as_directory() as directory:
            state = load_checkpoint(Path(directory) / "state.pt")
        states[state["member"]] = state
    return states


def _save_reported_models(store: Store, states: dict[str, dict]) -> None:
    """``runs/<name>/model.pt`` of each trial's run: the model its record reports."""
    for name, state in states.items():
        if state.get("reported") is not None:
            save_atomically(state["reported"], run_directory(store.directory, name) / MODEL_FILE)


class RayBackend:
    """Runs and PBT searches on Ray Tune (see the module docstring). ``callbacks``: more Tune
    callbacks (the tests lose a node from one)."""

    name = "ray"

    def __init__(self, address: str | None = None, storage: str | None = None, callbacks: Sequence = ()) -> None:
        self.address = address
        self.storage = storage
        self.callbacks = list(callbacks)
        #: after a call: the trials' nodes and restarts (:class:`_Driver`)
        self.driver: _Driver | None = None

    def storage_path(self, directory: Path) -> str:
        """Where Tune keeps the trials' checkpoints for the experiment in ``directory``."""
        if self.storage is None:
            return str(directory.resolve() / "ray")
        if "://" in self.storage:
            return f"{self.storage.rstrip('/')}/{directory.resolve().name}"
        return str(Path(self.storage).resolve() / directory.resolve().name)

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
        if on_evaluation is not None:
            raise ValueError(
                "backend ray: measurements along training (a study's gradient conflict) run on the local backend"
            )
        _, tune = _ray()
        from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig

        pending = [r for r in runs if not is_finished(store, r.name)]
        if pending:
            for run in pending:
                store.start_run(run.name, run.kind, json.loads(run.config.model_dump_json()), run.fingerprint)
            start_ray(self.address, log)
            log(f"Ray Tune: {len(pending)} trial(s)")
            plans = {r.name: r.to_data() for r in pending}
            self.driver = _Driver(store, log)
            callbacks = [DriverCallback(), *self.callbacks]
            trainable = tune.with_resources(train_one_trial, {"cpu": 1})
            storage = self.storage_path(store.directory)
            experiment = f"{storage}/{group or 'runs'}"
            if tune.Tuner.can_restore(experiment):
                log(f"resuming the Ray Tune experiment in {experiment}")
                tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
            else:
                tuner = tune.Tuner(
                    trainable,
                    param_space={
                        "name": tune.grid_search(list(plans)),
                        "run": tune.sample_from(lambda s: plans[s.config["name"]]),
                    },
                    tune_config=TuneConfig(num_samples=1, reuse_actors=True),
                    run_config=RunConfig(
                        name=group or "runs",
                        storage_path=storage,
                        verbose=1 if progress else 0,
                        callbacks=callbacks,
                        failure_config=FailureConfig(max_failures=MAX_FAILURES),
                        checkpoint_config=CheckpointConfig(num_to_keep=2),
                    ),
                )
            with self.driver.active():
                grid = tuner.fit()
            _raise_errors(grid)
            _save_reported_models(store, _last_states(grid))
            log(self.driver.summary())
        return {r.name: result_from_store(store, r.name) for r in runs}

    def pbt(
        self, search: PBTSearch, store: Store, *, progress: bool = True, log: Callable[[str], None] = lambda _: None
    ) -> PBTOutcome:
        _, tune = _ray()
        from ray.tune import CheckpointConfig, FailureConfig, RunConfig, TuneConfig

        directory = store.directory.resolve()
        members = search.members
        num = len(members[0].weights)
        data = {"name": search.name, "fitness": search.fitness, "members": [m.to_data() for m in members]}
        _start_members(store, members)
        initial = [m.weights for m in members]
        param_space = {"search": data, "member": tune.grid_search(list(range(len(members))))}
        for i in range(num):
            param_space[f"w{i}"] = tune.sample_from(lambda s, i=i: initial[s.config["member"]][i])
        start_ray(self.address, log)
        log(f"PBT ({search.algorithm}, Ray Tune): {len(members)} trials")
        self.driver = _Driver(store, log)
        callbacks = [DriverCallback(), *self.callbacks]
        trainable = tune.with_resources(train_member, {"cpu": 1})
        storage = self.storage_path(directory)
        experiment = f"{storage}/{search.name}"
        if tune.Tuner.can_restore(experiment):
            log(f"resuming the Ray Tune experiment in {experiment}")
            tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=TuneConfig(scheduler=_scheduler(search, num), num_samples=1, reuse_actors=True),
                run_config=RunConfig(
                    name=search.name,
                    storage_path=storage,
                    verbose=1 if progress else 0,
                    callbacks=callbacks,
                    failure_config=FailureConfig(max_failures=MAX_FAILURES),
                    checkpoint_config=CheckpointConfig(num_to_keep=None),
                    stop=_finished,
                ),
            )
        with self.driver.active():
            grid = tuner.fit()
        _raise_errors(grid)
        states = _last_states(grid)
        _save_reported_models(store, states)
        log(self.driver.summary())
        return _outcome(search, store, states)


def _start_members(store: Store, members: Sequence[RunSpec]) -> None:
    """Registers the members not yet finished in ``store`` as running. A finished member keeps
    its status: its trial is over in the Tune experiment a rerun restores, so no trial would
    mark it again (a driver killed after the last report, before the table, must still finish)."""
    for member in members:
        if not is_finished(store, member.name):
            store.start_run(member.name, member.kind, member.config.model_dump(mode="json"), member.fingerprint)


def _check_members_finished(store: Store, members: Sequence[RunSpec]) -> None:
    """One line when Tune ended with a member neither completed nor diverged in ``store``
    (never reported as a divergence that did not happen)."""
    unfinished = [m.name for m in members if not is_finished(store, m.name)]
    if unfinished:
        raise StoreError(
            f"pbt: Ray Tune ended with {len(unfinished)} member(s) unfinished ({', '.join(unfinished)}); "
            f"run the same command again to resume"
        )


def _finished(trial_id: str, result: dict) -> bool:
    """Tune's stopper: a trial's last report ends it before the scheduler sees it (PBT does not
    exploit at the end, as on the local engine, where the last evaluation is no sync)."""
    return result.get("status", "running") != "running"


def _raise_errors(grid) -> None:
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} Ray trial(s) failed; first: {errors[0]}")


def _scheduler(search: PBTSearch, num: int):
    """PBT and MO-PBT: the search's own policy decides (:class:`PolicyPBT`), so that the decisions
    are a pure function of the seed and the reported results; PB2: Ray Tune's."""
    policy = search.policy
    if search.algorithm != "pb2":
        return PolicyPBT(policy, num, search.lr)
    from ray.tune.schedulers.pb2 import PB2

    return PB2(
        time_attr="training_iteration",
        metric="fitness",
        mode="max",
        perturbation_interval=policy.interval,
        quantile_fraction=policy.quantile,
        hyperparam_bounds={f"w{i}": [WEIGHT_FLOOR, 1.0] for i in range(num)},
        custom_explore_fn=simplex_explore(num),
        synch=True,
    )


def _outcome(search: PBTSearch, store: Store, states: dict[str, dict]) -> PBTOutcome:
    """The members the policy returns (the best first) by their last evaluation, as the local
    engine picks them; a member whose trial did not complete counts as diverged."""
    members = search.members
    _check_members_finished(store, members)
    primary = primary_metrics(benchmark_from_config(members[0].config.benchmark))
    metrics = [last_metrics(result_from_store(store, m.name).history) for m in members]
    alive = [store.run(m.name)["status"] == "completed" for m in members]
    fitness, objectives = scores(build_fitness(search.fitness, primary), [n for n, _ in primary], metrics, alive)
    front = choose_front(search.policy, fitness, objectives)
    best = front[0]
    name = members[best].name
    last = store.last_evaluation(name)
    lineage = store.lineage(search.name)
    model = states[name]["trainer"]["model"] if name in states else None
    return PBTOutcome(
        best,
        fitness.tolist(),
        last.get("val", {}),
        last.get("test", {}),
        best_schedule(lineage, members, best),
        lineage,
        model,
        front,
        objectives.tolist(),
    )


try:
    from ray.tune.schedulers import PopulationBasedTraining as _TunePBT
except ImportError:  # pragma: no cover - depends on the installation
    _TunePBT = object


def _member_of(trial) -> int:
    """The member a trial trains: its index in the grid (see :func:`member_index`)."""
    return int(trial.trial_id.rsplit("_", 1)[1])


class PolicyPBT(_TunePBT):
    """Tune's synchronous PBT whose decisions are a scalarize policy's (PBT and MO-PBT on Ray).

    At each sync Tune asks for the population's quantiles (``_quantiles``). Here the policy
    decides instead, as on the local engine: ``policy.ranking_fitness`` of every live trial's
    last report (``fitness``, ``objectives``), their weights, and the sync index (the training
    iteration, i.e. the evaluation) as the seed of ``policy.decide``. The exploited trials are
    the bottom quantile, their sources the top; each exploited trial clones its own source
    (``_checkpoint_or_exploit``) and takes the weights the policy explored (``_get_new_config``).
    Tune does the rest (checkpoints, pauses, restores) as for its own PBT. The learning rate is
    not explored on Ray (``explore_lr`` applies to the local engine only).
    """

    def __init__(self, policy, num_weights: int, lr: float) -> None:
        _, tune = _ray()
        super().__init__(
            time_attr="training_iteration",
            metric="fitness",
            mode="max",
            perturbation_interval=policy.interval,
            quantile_fraction=policy.quantile,
            hyperparam_mutations={f"w{i}": tune.uniform(WEIGHT_FLOOR, 1.0) for i in range(num_weights)},  # for logs
            synch=True,
        )
        self.policy = policy
        self.num_weights = num_weights
        self.lr = lr
        #: this sync's plan: exploited trial -> (source trial, the policy's Decision)
        self.plan: dict = {}
        #: the sync a restored experiment's trials wait at (see :meth:`on_trial_add`)
        self.pending: int | None = None

    def on_trial_add(self, tune_controller, trial) -> None:
        """A trial of a restored experiment resumes where its last report left it (its time and
        report). One that stopped at a sync waits there, paused, and the sync is taken again
        once every live trial has reached it (:meth:`choose_trial_to_run`): the decision is the
        policy's of the same reports, so taking it again changes nothing for a trial that had
        taken it, and the resumed search makes the decisions the uninterrupted one made."""
        requeued = trial in self._trial_state  # a trial failed (a lost node): Tune's own handling
        super().on_trial_add(tune_controller, trial)
        result = trial.run_metadata.last_result
        time = int(result.get("training_iteration", 0) or 0)
        if requeued or time <= 0 or trial.status == trial.TERMINATED:
            return
        state = self._trial_state[trial]
        state.last_train_time, state.last_result = time, result
        state.last_score = self._metric_op * result["fitness"]
        interval = self.policy.interval
        held = self.policy.is_due(time) and result.get("status") == "running"
        state.last_perturbation_time = time - interval if held else time - time % interval
        due = time if held else time - time % interval + interval
        self._next_perturbation_sync = due if self.pending is None else min(self._next_perturbation_sync, due)
        self.pending = self._next_perturbation_sync
        if held:
            trial.set_status(trial.PAUSED)  # started again by choose_trial_to_run after the sync

    def choose_trial_to_run(self, tune_controller):
        """Tune's choice, after taking a restored experiment's pending sync once every live trial
        is at it (no trial is left to report it)."""
        live = tune_controller.get_live_trials()
        if self.pending is not None and all(self._trial_state[t].last_train_time >= self.pending for t in live):
            self._sync(tune_controller, self.pending)
        return super().choose_trial_to_run(tune_controller)

    def _sync(self, tune_controller, time: int) -> None:
        """Tune's synchronous sync (``on_trial_result``), taken with no report in hand."""
        lower, upper = self._quantiles()
        others = [t for t in tune_controller.get_trials() if t not in lower and t not in upper]
        for trial in upper + others + lower:
            self._trial_state[trial].last_perturbation_time = time
            self._checkpoint_or_exploit(trial, tune_controller, upper, lower)
        self._next_perturbation_sync = time + self.policy.interval

    def _quantiles(self):
        trials = sorted(
            (t for t, state in self._trial_state.items() if state.last_result is not None and not t.is_finished()),
            key=_member_of,
        )
        self.plan = {}
        if len(trials) <= 1:
            return [], []
        time = int(max(self._trial_state[t].last_train_time for t in trials))
        self.pending = None  # a restored experiment's sync (see on_trial_add) is taken
        reports = [self._trial_state[t].last_result for t in trials]
        fitness = np.array([np.nan if r["fitness"] == DIVERGED_FITNESS else r["fitness"] for r in reports], dtype=float)
        ranked = self.policy.ranking_fitness(fitness, np.array([r["objectives"] for r in reports], dtype=float))
        if self.policy.diverged(ranked).all():
            return [], []
        hyperparams = [{"weights": weights_of(t.config, self.num_weights), "lr": self.lr} for t in trials]
        decisions = self.policy.decide(ranked, hyperparams, step=time)
        self.plan = {trials[d.member]: (trials[d.source], d) for d in decisions if d.exploited}
        sources = list(dict.fromkeys(source for source, _ in self.plan.values()))
        return list(self.plan), sources

    def _checkpoint_or_exploit(self, trial, tune_controller, upper_quantile, lower_quantile):
        planned = self.plan.get(trial)
        upper = upper_quantile if planned is None else [planned[0]]  # Tune's random.choice: the source
        super()._checkpoint_or_exploit(trial, tune_controller, upper, lower_quantile)

    def _get_new_config(self, trial, trial_to_clone):
        _, decision = self.plan[trial]
        config = copy.deepcopy(trial_to_clone.config)
        for i, weight in enumerate(decision.weights):
            config[f"w{i}"] = float(weight)
        return config, {f"w{i}": "policy" for i in range(self.num_weights)}
