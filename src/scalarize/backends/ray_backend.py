"""Ray backend: the same PBT/PB2 search and sweeps, as Ray Tune trials, one per member.

* PBT uses Ray Tune's ``PopulationBasedTraining`` (PB2: ``ray.tune.schedulers.pb2.PB2``) with the
  weights as hyperparameters ``w0 … w{k-1}``: Ray perturbs (factors) or resamples (an
  exponential prior, so that the normalised vector is Dirichlet(α = 1)) each of them, and a
  custom explore function puts the vector back on the simplex. Synchronous syncs every
  ``interval`` evaluations, ``reuse_actors=True``, every checkpoint kept (PBT may exploit any),
  an absolute storage path. A trial restored from another member's checkpoint records the
  exploit in the lineage itself.
* A sweep runs as a Ray Tune grid over the members; each trial is an ordinary resumable run.

Each trial writes its metrics into the experiment's SQLite store (WAL mode: concurrent writers
are safe), so the local and Ray backends give the same database and report. Ray starts locally
when no address is given and joins the cluster at ``address`` otherwise. Rerunning an interrupted
search restores the Tune experiment.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from scalarize.methods.scalarization import Scalarization
from scalarize.search.fitness import build_fitness
from scalarize.search.pbt import schedule_of
from scalarize.store.database import Store
from scalarize.train.config import TrainConfig
from scalarize.train.evaluate import primary_metrics
from scalarize.train.setup import build_model_from_config, prepare
from scalarize.train.trainer import Trainer

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
    if address:
        log(f"joining the Ray cluster at {address}")
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)


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


def _load_state(checkpoint) -> dict:
    with checkpoint.as_directory() as directory:
        return torch.load(Path(directory) / "state.pt", map_location="cpu", weights_only=False)


def member_index() -> int:
    """The member this trial is: the index of the trial in the grid over members.

    Not a config value: PBT's exploit copies the source trial's whole config into the target.
    """
    _, tune = _ray()
    return int(tune.get_context().get_trial_id().rsplit("_", 1)[1])


def train_member(trial_config: dict) -> None:
    """A Ray Tune function trainable: one PBT member, reporting after every evaluation."""
    _, tune = _ray()
    torch.set_num_threads(int(trial_config.get("threads", 1)))
    spec = trial_config["spec"]
    index = member_index()
    member_name = spec["members"][index]
    member_config = TrainConfig.model_validate(spec["configs"][index])
    benchmark, _ = prepare(member_config)
    objectives = benchmark.objectives
    primary = primary_metrics(benchmark)
    fitness = build_fitness(spec["fitness"], primary)
    torch.manual_seed(member_config.seed)
    model = build_model_from_config(member_config, benchmark)
    method = Scalarization(weights_of(trial_config, len(objectives)))
    with Store(spec["directory"]) as store:
        trainer = Trainer(member_config, benchmark, model, method, run_name=member_name, store=store, progress=False)
        checkpoint = tune.get_checkpoint()
        if checkpoint is not None:
            state = _load_state(checkpoint)
            trainer.load_state_dict(state["trainer"])
            weights = weights_of(trial_config, len(objectives))
            method.set_weights(weights)
            if state["member"] != member_name:  # exploited: continue from another member's model
                store.record_lineage(spec["search"], [{
                    "time": trainer.evaluation, "step": trainer.step, "member": member_name,
                    "source": state["member"], "weights": weights, "lr": member_config.optimizer.lr}])
        else:
            store.record_lineage(spec["search"], [{
                "time": 0, "step": 0, "member": member_name, "source": member_name,
                "weights": weights_of(trial_config, len(objectives)), "lr": member_config.optimizer.lr}])
        status = "completed" if trainer.step >= trainer.total_steps else "running"
        while status == "running":
            status = trainer.train_segment()
            val = trainer.history[-1] if trainer.history else {}
            score = fitness({k[4:]: v for k, v in val.items() if k.startswith("val/")}) if status != "diverged" else math.nan
            score = score if math.isfinite(score) else DIVERGED_FITNESS
            with tempfile.TemporaryDirectory() as directory:
                torch.save({"member": member_name, "trainer": trainer.state_dict()}, Path(directory) / "state.pt")
                tune.report({"fitness": score, "step": trainer.step},
                            checkpoint=tune.Checkpoint.from_directory(directory))
        trainer.record.finish(status, trainer.step)


def run_pbt_ray(config, benchmark, members, *, progress: bool = True, log: Callable[[str], None] = lambda _: None):
    """PBT/PB2 with Ray Tune; returns the same :class:`~scalarize.population.pbt.PBTResult`."""
    from scalarize.population.pbt import PBTResult, member_fingerprint, save_result

    ray, tune = _ray()
    from ray.tune import CheckpointConfig, RunConfig, TuneConfig

    directory = config.experiment_dir().resolve()
    num = len(benchmark.objectives)
    spec = {
        "search": config.name, "directory": str(directory), "fitness": config.pbt.fitness,
        "members": [m.name for m in members], "configs": [json.loads(m.config.model_dump_json()) for m in members],
    }
    initial = [m.weights for m in members]
    with Store(directory) as store:
        for member in members:
            store.start_run(member.name, "pbt", member.config.model_dump(mode="json"), member_fingerprint(config, member))
    param_space = {"spec": spec, "member": tune.grid_search(list(range(len(members))))}
    for i in range(num):
        param_space[f"w{i}"] = tune.sample_from(lambda s, i=i: initial[s.config["member"]][i])
    scheduler = _scheduler(config, num)
    start_ray(config.pbt.address, log)
    log(f"PBT ({config.pbt.algorithm}, Ray Tune): {len(members)} trials on {benchmark.name}")
    storage = directory / "ray"
    trainable = tune.with_resources(train_member, {"cpu": 1})
    experiment = storage / config.name
    if tune.Tuner.can_restore(str(experiment)):
        log(f"resuming the Ray Tune experiment in {experiment}")
        tuner = tune.Tuner.restore(str(experiment), trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=TuneConfig(scheduler=scheduler, num_samples=1, reuse_actors=True),
            run_config=RunConfig(
                name=config.name, storage_path=str(storage), verbose=1 if progress else 0,
                checkpoint_config=CheckpointConfig(num_to_keep=None),
            ),
        )
    grid = tuner.fit()
    errors = [r.error for r in grid if r.error is not None]
    if errors:
        raise RuntimeError(f"{len(errors)} Ray trial(s) failed; first: {errors[0]}")
    return _collect(config, members, benchmark, PBTResult, save_result)


def _scheduler(config, num: int):
    _, tune = _ray()
    spec = config.pbt
    if spec.algorithm == "pb2":
        from ray.tune.schedulers.pb2 import PB2

        return PB2(
            time_attr="training_iteration", metric="fitness", mode="max",
            perturbation_interval=spec.interval, quantile_fraction=spec.quantile,
            hyperparam_bounds={f"w{i}": [WEIGHT_FLOOR, 1.0] for i in range(num)},
            custom_explore_fn=simplex_explore(num), synch=True,
        )
    from ray.tune.schedulers import PopulationBasedTraining

    rng = np.random.default_rng(spec.seed)
    return PopulationBasedTraining(
        time_attr="training_iteration", metric="fitness", mode="max",
        perturbation_interval=spec.interval, quantile_fraction=spec.quantile,
        resample_probability=spec.resample_probability, perturbation_factors=tuple(spec.factors),
        hyperparam_mutations={f"w{i}": (lambda: float(rng.exponential())) for i in range(num)},
        custom_explore_fn=simplex_explore(num), synch=True,
    )


def _collect(config, members, benchmark, result_type, save_result):
    directory = config.experiment_dir()
    primary = primary_metrics(benchmark)
    fitness_fn = build_fitness(config.pbt.fitness, primary)
    with Store(directory) as store:
        finals = [store.final(m.name) for m in members]
        lineage = store.lineage(config.name)
    fitness = [fitness_fn(f["val"]) if f.get("val") else float("nan") for f in finals]
    best = int(np.nanargmax(fitness))
    index = {m.name: i for i, m in enumerate(members)}
    history = [dict(r, member=index[r["member"]], source=index[r["source"]]) for r in lineage]
    steps = {r["time"]: r["step"] for r in lineage}
    schedule = [(steps[t], w.tolist()) for t, w in schedule_of(best, history)]
    save_result(directory, config.name, members[best].name, schedule, finals[best]["val"], finals[best]["test"])
    return result_type(config, members, best, fitness, finals[best]["val"], finals[best]["test"], schedule, lineage, primary)


def train_members_ray(members, benchmark, store: Store, *, address: str | None = None, progress: bool = True,
                      log: Callable[[str], None] = lambda _: None) -> dict:
    """A sweep as a Ray Tune grid: one trial per member, each an ordinary resumable run."""
    from scalarize.population.engine import result_from_store

    _, tune = _ray()
    from ray.tune import RunConfig, TuneConfig

    pending = [m for m in members if not ((row := store.run(m.name)) and row["status"] in ("completed", "diverged") and row["finished"])]
    if pending:
        start_ray(address, log)
        log(f"sweep on Ray Tune: {len(pending)} trial(s)")
        directory = str(store.directory.resolve())
        configs = {m.name: json.loads(m.config.model_copy(update={"output": directory}).model_dump_json()) for m in pending}

        def trainable(trial_config: dict) -> None:
            from scalarize.train.experiment import prepare, train_one

            torch.set_num_threads(1)
            member_config = TrainConfig.model_validate(trial_config["config"])
            bench, method = prepare(member_config)
            with Store(directory) as trial_store:
                result = train_one(member_config, bench, method, trial_store, trial_config["name"], "member",
                                   member_config.fingerprint(), False)
            tune.report({"status": result.status, "steps": result.steps})

        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"name": tune.grid_search(list(configs)), "config": tune.sample_from(lambda s: configs[s.config["name"]])},
            tune_config=TuneConfig(num_samples=1, reuse_actors=True),
            run_config=RunConfig(name="sweep", storage_path=str(store.directory.resolve() / "ray"), verbose=1 if progress else 0),
        )
        grid = tuner.fit()
        errors = [r.error for r in grid if r.error is not None]
        if errors:
            raise RuntimeError(f"{len(errors)} Ray trial(s) failed; first: {errors[0]}")
    return {m.name: result_from_store(store, m.name) for m in members}
