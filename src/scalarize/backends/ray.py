"""The Ray backend: the same runs and PBT/PB2 searches as Ray Tune trials, one per run or member.

* Runs (a sweep, a comparison, a study's cells) form a Ray Tune grid: each trial trains its run
  with the run core (:func:`scalarize.train.run.train_run`) into the experiment's store.
* PBT uses Ray Tune's ``PopulationBasedTraining`` (PB2: ``ray.tune.schedulers.pb2.PB2``) with the
  weights as hyperparameters ``w0 … w{k-1}``: Ray perturbs (factors) or resamples (an
  exponential prior, so that the normalised vector is Dirichlet(α = 1)) each of them, and a
  custom explore function puts the vector back on the simplex. Synchronous syncs every
  ``interval`` evaluations, ``reuse_actors=True``, every checkpoint kept (PBT may exploit any),
  an absolute storage path. Each trial is the run core's :class:`~scalarize.train.Trainer`
  (its :class:`~scalarize.train.record.RunRecord` writes the member's evaluations, costs and
  final record as on the local engine); a trial restored from another member's checkpoint
  records the exploit in the lineage itself.

Every trial writes into the experiment's SQLite store (WAL mode: concurrent writers are safe),
so the local and Ray backends give the same database and report. Ray starts locally when no
address is given and joins the cluster at ``address`` otherwise. Rerunning an interrupted search
restores the Tune experiment.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from scalarize.population.pbt import PBTOutcome, PBTSearch, best_schedule, last_metrics
from scalarize.search.fitness import build_fitness
from scalarize.store.database import Store
from scalarize.train.record import DivergedError
from scalarize.train.checkpoint import load_checkpoint
from scalarize.train.config import TrainConfig
from scalarize.train.evaluate import primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec, build_trainer, is_finished, result_from_store, train_run
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
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        log(f"joining the Ray cluster at {address}")
        ray.init(address=address, log_to_driver=False)
    else:  # "local": a fresh Ray here, never a stale cluster that /tmp/ray/ray_current_cluster names
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


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


def _spec_data(spec: RunSpec) -> dict:
    return {"name": spec.name, "kind": spec.kind, "fingerprint": spec.fingerprint,
            "config": json.loads(spec.config.model_dump_json())}


def _spec(data: dict) -> RunSpec:
    return RunSpec(data["name"], TrainConfig.model_validate(data["config"]), data["kind"], data["fingerprint"])


def member_index() -> int:
    """The member this trial is: the index of the trial in the grid over members.

    Not a config value: PBT's exploit copies the source trial's whole config into the target.
    """
    _, tune = _ray()
    return int(tune.get_context().get_trial_id().rsplit("_", 1)[1])


def _lineage(trainer, member: str, source: str, weights: list[float], lr: float) -> dict:
    return {"time": trainer.evaluation, "step": trainer.step, "member": member, "source": source,
            "weights": weights, "lr": lr}


def train_member(trial_config: dict) -> None:
    """A Ray Tune function trainable: one PBT member, reporting after every evaluation."""
    _, tune = _ray()
    search = trial_config["search"]
    spec = _spec(search["members"][member_index()])
    benchmark = benchmark_from_config(spec.config.benchmark)
    fitness = build_fitness(search["fitness"], primary_metrics(benchmark))
    num = len(benchmark.objectives)
    with Store(search["directory"]) as store:
        trainer = build_trainer(spec, store, checkpoint=False)
        trainer.method.set_weights(weights_of(trial_config, num))
        checkpoint = tune.get_checkpoint()
        lr = spec.config.optimizer.lr
        if checkpoint is None:
            store.record_lineage(search["name"], [_lineage(trainer, spec.name, spec.name, weights_of(trial_config, num), lr)])
        else:
            with checkpoint.as_directory() as directory:
                state = load_checkpoint(Path(directory) / "state.pt")
            trainer.load_state_dict(state["trainer"])
            trainer.record.name = spec.name  # an exploit brings the source's record along
            trainer.method.set_weights(weights_of(trial_config, num))
            if state["member"] != spec.name:  # exploited: continue from another member's model
                store.record_lineage(search["name"], [_lineage(trainer, spec.name, state["member"],
                                                               weights_of(trial_config, num), lr)])
        status = "completed" if trainer.step >= trainer.total_steps else "running"
        while status == "running":
            status = trainer.train_segment()
            score = fitness(last_metrics(trainer.history)) if status != "diverged" else math.nan
            score = score if math.isfinite(score) else DIVERGED_FITNESS
            with tempfile.TemporaryDirectory() as directory:
                torch.save({"member": spec.name, "trainer": trainer.state_dict()}, Path(directory) / "state.pt")
                tune.report({"fitness": score, "step": trainer.step}, checkpoint=tune.Checkpoint.from_directory(directory))
        trainer.record.finish(status, trainer.step)


def train_one_trial(trial_config: dict) -> None:
    """A Ray Tune function trainable: one run of a plan, trained by the run core."""
    _, tune = _ray()
    spec = _spec(trial_config["run"])
    with Store(trial_config["directory"]) as store:
        result = train_run(spec, store, progress=False)
    tune.report({"status": result.status, "steps": result.steps})


class RayBackend:
    """Runs and PBT searches on Ray Tune (see the module docstring)."""

    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def train(self, runs: Sequence[RunSpec], store: Store, *, progress: bool = True,
              log: Callable[[str], None] = lambda _: None, on_evaluation: Callable | None = None) -> dict[str, RunResult]:
        if on_evaluation is not None:
            raise ValueError("backend ray: measurements along training (a study's gradient conflict) run on the local backend")
        _, tune = _ray()
        from ray.tune import RunConfig, TuneConfig

        pending = [r for r in runs if not is_finished(store, r.name)]
        if pending:
            start_ray(self.address, log)
            log(f"Ray Tune: {len(pending)} trial(s)")
            directory = str(store.directory.resolve())
            plans = {r.name: _spec_data(r) for r in pending}
            tuner = tune.Tuner(
                tune.with_resources(train_one_trial, {"cpu": 1}),
                param_space={"name": tune.grid_search(list(plans)), "directory": directory,
                             "run": tune.sample_from(lambda s: plans[s.config["name"]])},
                tune_config=TuneConfig(num_samples=1, reuse_actors=True),
                run_config=RunConfig(name="runs", storage_path=str(store.directory.resolve() / "ray"),
                                     verbose=1 if progress else 0),
            )
            _raise_errors(tuner.fit())
        return {r.name: result_from_store(store, r.name) for r in runs}

    def pbt(self, search: PBTSearch, store: Store, *, progress: bool = True,
            log: Callable[[str], None] = lambda _: None) -> PBTOutcome:
        _, tune = _ray()
        from ray.tune import CheckpointConfig, RunConfig, TuneConfig

        directory = store.directory.resolve()
        members = search.members
        num = len(members[0].weights)
        data = {"name": search.name, "directory": str(directory), "fitness": search.fitness,
                "members": [_spec_data(m) for m in members]}
        for member in members:
            store.start_run(member.name, member.kind, member.config.model_dump(mode="json"), member.fingerprint)
        initial = [m.weights for m in members]
        param_space = {"search": data, "member": tune.grid_search(list(range(len(members))))}
        for i in range(num):
            param_space[f"w{i}"] = tune.sample_from(lambda s, i=i: initial[s.config["member"]][i])
        start_ray(self.address, log)
        log(f"PBT ({search.algorithm}, Ray Tune): {len(members)} trials")
        trainable = tune.with_resources(train_member, {"cpu": 1})
        experiment = directory / "ray" / search.name
        if tune.Tuner.can_restore(str(experiment)):
            log(f"resuming the Ray Tune experiment in {experiment}")
            tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space=param_space,
                tune_config=TuneConfig(scheduler=_scheduler(search, num), num_samples=1, reuse_actors=True),
                run_config=RunConfig(name=search.name, storage_path=str(directory / "ray"), verbose=1 if progress else 0,
                                     checkpoint_config=CheckpointConfig(num_to_keep=None)),
            )
        grid = tuner.fit()
        _raise_errors(grid)
        return _outcome(search, store, grid)


def _raise_errors(grid) -> None:
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} Ray trial(s) failed; first: {errors[0]}")


def _scheduler(search: PBTSearch, num: int):
    policy = search.policy
    if search.algorithm == "pb2":
        from ray.tune.schedulers.pb2 import PB2

        return PB2(
            time_attr="training_iteration", metric="fitness", mode="max",
            perturbation_interval=policy.interval, quantile_fraction=policy.quantile,
            hyperparam_bounds={f"w{i}": [WEIGHT_FLOOR, 1.0] for i in range(num)},
            custom_explore_fn=simplex_explore(num), synch=True,
        )
    from ray.tune.schedulers import PopulationBasedTraining

    rng = np.random.default_rng(policy.seed)
    return PopulationBasedTraining(
        time_attr="training_iteration", metric="fitness", mode="max",
        perturbation_interval=policy.interval, quantile_fraction=policy.quantile,
        resample_probability=policy.resample_probability, perturbation_factors=tuple(policy.factors),
        hyperparam_mutations={f"w{i}": (lambda: float(rng.exponential())) for i in range(num)},
        custom_explore_fn=simplex_explore(num), synch=True,
    )


def _outcome(search: PBTSearch, store: Store, grid) -> PBTOutcome:
    """The best member by its fitness at the last evaluation, as the local engine picks it."""
    members = search.members
    fitness_fn = build_fitness(search.fitness, primary_metrics(benchmark_from_config(members[0].config.benchmark)))
    histories = [result_from_store(store, m.name).history for m in members]
    fitness = np.array([fitness_fn(last_metrics(h)) if h else np.nan for h in histories], dtype=float)
    for index, member in enumerate(members):
        if store.run(member.name)["status"] != "completed":
            fitness[index] = np.nan
    if not np.isfinite(fitness).any():
        raise DivergedError("pbt: every member of the population diverged (its loss turned non-finite); "
                            "lower optimizer.lr or check the data")
    best = int(np.nanargmax(fitness))
    name = members[best].name
    last = store.last_evaluation(name)
    lineage = store.lineage(search.name)
    model = None
    for result in grid:
        if result.checkpoint is not None and result.config.get("member") == best:
            with result.checkpoint.as_directory() as directory:
                model = load_checkpoint(Path(directory) / "state.pt")["trainer"]["model"]
    return PBTOutcome(best, fitness.tolist(), last.get("val", {}), last.get("test", {}),
                      best_schedule(lineage, members, best), lineage, model)
