"""``scalarize sweep``: a design of weights (crossed with other factors) trained as populations.

The config is a training config plus a ``sweep`` section::

    sweep:
      design: lattice        # lattice (step), sobol or dirichlet (points), list (weights), adaptive
      step: 0.1
      adaptive: {initial: 3, batch: 2, batches: 3}   # design: adaptive only (see AdaptiveSpec)
      seeds: [0]             # training seeds, crossed with the weights
      factors: {optimizer.lr: [0.001, 0.0003]}   # any config key, crossed as a grid
      engine: auto           # auto (measured), vectorized or loop
      chunk_size: 16         # members stacked at once at most

Every member is an ordinary training config (its weights, seed and factor values applied), so a
member trained in a sweep equals the same config trained alone.

``design: adaptive`` (SURF 2026: evenly spaced weights cover the front unevenly; the rule is the
adaptive weighted sum of Kim & de Weck 2005, :mod:`scalarize.search.adaptive`) trains the sweep
batch by batch: a space-filling first batch, then each next batch where the validation front of
everything trained so far has its largest gaps. Each decision is a function of the stored
results only, so a rerun after a kill makes the same decisions and trains only what is missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator

from scalarize.backends.base import Backend, get_backend
from scalarize.experiments.loading import load_experiment_config
from scalarize.experiments.train import check_fingerprints, check_not_conflicting, stl_runs
from scalarize.methods.base import PREFERENCE_INPUT
from scalarize.methods.registry import method_class
from scalarize.population.members import Member, member_name
from scalarize.search import designs
from scalarize.search.adaptive import adaptive_weights, maximin_weights
from scalarize.search.fitness import build_fitness
from scalarize.search.optuna_design import OptunaDesign
from scalarize.search.successive_halving import EarlyStopping, train_with_early_stopping
from scalarize.store.database import STOPPED, Store
from scalarize.train.checkpoint import MODEL_FILE, load_checkpoint, run_directory
from scalarize.train.config import ConfigError, Strict, TrainConfig, build_config, set_key
from scalarize.train.devices import apply_threads, resolve_device
from scalarize.train.evaluate import delta_metrics, evaluate, primary_metrics
from scalarize.train.record import RunResult
from scalarize.train.run import RunSpec, is_finished, result_from_store
from scalarize.train.setup import benchmark_from_config, build_model_from_config, prepare


class AdaptiveSpec(Strict):
    """design: adaptive: a first batch, then batches placed at the gaps of the front so far.

    ``initial`` weight vectors first (space-filling, :func:`maximin_weights`: the corners, then
    the uniform point, then greedily the lattice point farthest from those taken; ``initial`` 5
    on two tasks is the lattice at step 0.25), then ``batches`` batches of ``batch`` vectors
    each, placed by :func:`adaptive_weights` at the largest gaps of the validation front traced
    so far (SURF 2026; Kim & de Weck 2005). Each vector is crossed with ``seeds`` and
    ``factors`` like any design's, so a batch trains ``batch × seeds × factor values`` members."""

    initial: int | None = Field(default=None, ge=1, le=2000)  # None: tasks + 1
    batch: int = Field(default=2, ge=1, le=1000)
    batches: int = Field(default=3, ge=0, le=100)

    def first(self, num_objectives: int) -> int:
        return self.initial if self.initial is not None else num_objectives + 1


class OptunaSpec(Strict):
    """design: optuna: ``trials`` weight vectors proposed by an Optuna ``sampler``, asked
    ``batch`` at a time (default ``sweep.chunk_size``), each batch one stacked population
    (:mod:`scalarize.search.optuna_design`). ``storage``: Optuna's database URL (default SQLite
    ``optuna.db`` in the experiment directory); ``study``: its study name (default the sweep's)."""

    sampler: Literal["tpe", "gp", "nsga2", "nsga3", "random"] = "tpe"
    objectives: Literal["per_task", "fitness"] = "per_task"
    trials: int = Field(default=16, ge=1, le=10_000)
    batch: int | None = Field(default=None, ge=1, le=1000)
    storage: str | None = None
    study: str | None = None


class EarlyStoppingSpec(Strict):
    """Successive halving / ASHA over the members (:mod:`scalarize.search.successive_halving`):
    rungs at ``min_resource · reduction_factor^k`` evaluations (or the explicit ``rungs``); at
    each, members outside the top 1/``reduction_factor`` by ``sweep.fitness`` stop."""

    min_resource: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2, le=100)
    rungs: list[int] | None = None

    @field_validator("rungs")
    @classmethod
    def _ascending(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or sorted(set(value)) != value or value[0] < 1):
            raise ValueError(f"must be distinct evaluation counts ≥ 1, ascending; got {value}")
        return value


class SweepSpec(Strict):
    design: Literal["lattice", "sobol", "dirichlet", "list", "adaptive", "optuna"] = "lattice"
    adaptive: AdaptiveSpec | None = None
    optuna: OptunaSpec | None = None
    early_stopping: EarlyStoppingSpec | None = None
    #: the scalar fitness of design: optuna (objectives: fitness) and of early stopping
    fitness: str | dict[str, Any] = "mean_primary"
    step: float = Field(default=0.1, gt=0, le=1)
    points: int = Field(default=16, ge=1, le=10_000, description="sobol/dirichlet: weight vectors (each a member)")
    design_seed: int = 0
    weights: list[list[float]] | None = None
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    factors: dict[str, list[Any]] = Field(default_factory=dict)
    engine: Literal["auto", "vectorized", "loop"] = "auto"
    chunk_size: int = Field(default=16, ge=1)
    backend: Literal["local", "ray"] = "local"
    address: str | None = None
    storage: str | None = None

    @field_validator("adaptive")
    @classmethod
    def _adaptive_only(cls, value: AdaptiveSpec | None, info: ValidationInfo) -> AdaptiveSpec | None:
        design = info.data.get("design")
        if value is not None and design != "adaptive":
            raise ValueError(
                f"read only by design: adaptive (got design: {design}); set sweep.design=adaptive or "
                "remove sweep.adaptive"
            )
        return value

    @field_validator("optuna")
    @classmethod
    def _optuna_only(cls, value: OptunaSpec | None, info: ValidationInfo) -> OptunaSpec | None:
        design = info.data.get("design")
        if value is not None and design != "optuna":
            raise ValueError(
                f"read only by design: optuna (got design: {design}); set sweep.design=optuna or remove sweep.optuna"
            )
        return value

    @model_validator(mode="after")
    def _adaptive_default(self) -> SweepSpec:
        if self.design == "adaptive" and self.adaptive is None:
            self.adaptive = AdaptiveSpec()
        if self.design == "optuna" and self.optuna is None:
            self.optuna = OptunaSpec()
        return self


class SweepConfig(TrainConfig):
    sweep: SweepSpec = Field(default_factory=SweepSpec)


def load_sweep_config(
    path, overrides: list[str] | None = None, *, log: Callable[[str], None] | None = None
) -> SweepConfig:
    """The config from ``path`` (which must have a ``sweep:`` section, or an override that sets
    one) and ``overrides`` (see :mod:`scalarize.experiments.loading`)."""
    return load_experiment_config(path, overrides, SweepConfig, section="sweep", log=log)


def design_weights(spec: SweepSpec, num_objectives: int) -> np.ndarray:
    """The sweep's weight vectors ``[n, k]`` (one-line ConfigError on a bad design)."""
    try:
        if spec.design == "lattice":
            return designs.lattice(num_objectives, spec.step)
        if spec.design == "sobol":
            return designs.sobol_simplex(num_objectives, spec.points, spec.design_seed)
        if spec.design == "dirichlet":
            return designs.dirichlet(num_objectives, spec.points, spec.design_seed)
        if spec.design == "optuna":  # asked batch by batch: optuna_batches
            return np.empty((0, num_objectives))
        if spec.design == "adaptive":  # its first batch; the next ones: adaptive_batches
            return maximin_weights(np.empty((0, num_objectives)), spec.adaptive.first(num_objectives), num_objectives)
        if not spec.weights:
            raise ValueError("design 'list' needs sweep.weights: a list of weight vectors")
        for row in spec.weights:
            designs.validate_weights(np.asarray(row, dtype=float), num_objectives)
        return np.asarray(spec.weights, dtype=float)
    except ValueError as error:
        raise ConfigError(f"sweep: {error}") from None


def build_members(config: SweepConfig, num_objectives: int) -> list[Member]:
    """One member per (weights, factor values, seed), weights outermost (an adaptive design: its
    first batch)."""
    return members_for(config, design_weights(config.sweep, num_objectives))


def members_for(config: SweepConfig, weights: np.ndarray, start: int = 0) -> list[Member]:
    """One member per (row of ``weights``, factor values, seed), numbered from ``start``."""
    factors = dict(config.sweep.factors)
    factors["seed"] = list(config.sweep.seeds)
    base = json.loads(config.model_dump_json(exclude={"sweep"}))
    members = []
    if not len(weights):
        return []
    for index, point in enumerate(designs.grid(weights, **factors), start):
        data = json.loads(json.dumps(base))
        set_key(data, "method.weights", [float(w) for w in point["weights"]])
        for key, value in point.items():
            if key != "weights":
                set_key(data, key, value)
        members.append(Member(member_name(config.name, index), build_config(data)))
    return members


@dataclass
class SweepResult:
    config: SweepConfig
    members: list[Member]
    results: dict[str, RunResult]
    stl: dict[str, RunResult] = field(default_factory=dict)
    primary: list[tuple[str, bool]] = field(default_factory=list)
    #: the metrics Δm averages over (every metric of a dense task; else the primary ones)
    delta: list[tuple[str, bool]] = field(default_factory=list)
    #: early stopping: member-steps planned and not trained (stopped members), or None
    saved_steps: tuple[int, int] | None = None

    def points(self, split: str = "test") -> np.ndarray:
        """``[n, k]``: each completed member's primary metrics (NaN for diverged members and
        for members stopped early: they are listed, not on the front)."""
        rows = []
        for member in self.members:
            if self.results[member.name].status == STOPPED:
                rows.append([np.nan] * len(self.primary))
                continue
            values = getattr(self.results[member.name], split)
            rows.append([values.get(name, np.nan) for name, _ in self.primary])
        return np.asarray(rows, dtype=float)


def run_sweep(
    config: SweepConfig,
    *,
    backend: Backend | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    on_evaluation: Callable | None = None,
) -> SweepResult:
    """Trains the sweep (and the STL baselines when ``config.stl``) on ``backend`` (default: the
    one the config names); ``on_evaluation`` is passed to the backend. An adaptive design trains
    batch after batch (:func:`adaptive_batches`)."""
    conditioned = _takes_preference(config)
    if config.method.name != "scalarization" and not conditioned:
        raise ConfigError(
            f"method.name: a sweep varies scalarization weights (or evaluates a preference-conditioned "
            f"model such as cosmos); got {config.method.name!r}"
        )
    if conditioned and config.sweep.design in ("adaptive", "optuna"):
        raise ConfigError(
            f"sweep.design: {config.sweep.design} trains weights batch by batch; {config.method.name} is "
            "trained once and evaluated at a fixed design: use lattice, sobol, dirichlet or list"
        )
    if conditioned and config.sweep.early_stopping is not None:
        raise ConfigError(f"sweep.early_stopping: {config.method.name} is trained once: nothing to stop")
    _check_search(config)
    benchmark, _ = prepare(config)
    members = build_members(config, len(benchmark.objectives))
    if conditioned:
        return _one_run_front(config, benchmark, members, progress, log)
    validated: set[str] = set()
    for member in members:  # every factor value is valid before anything is written
        key = member.config.model_dump_json(exclude={"name", "method", "seed"})
        if key not in validated:
            prepare(member.config)
            validated.add(key)
    stl = stl_runs(config, benchmark.objectives) if config.stl else []
    check_not_conflicting(config, [*members, *stl])
    backend = backend or get_backend(
        config.sweep.backend,
        address=config.sweep.address,
        engine=config.sweep.engine,
        chunk_size=config.sweep.chunk_size,
        storage=config.sweep.storage,
    )
    with Store(config.experiment_dir()) as store:
        log(
            f"sweep {config.name}: {_plan_text(config, members)} on {benchmark.name} ({', '.join(benchmark.objectives)})"
        )
        train = _trainer(config, backend, store, primary_metrics(benchmark), progress, log, on_evaluation)
        if config.sweep.design == "adaptive":
            members, results = adaptive_batches(config, primary_metrics(benchmark), members, store, train, log)
        elif config.sweep.design == "optuna":
            members, results = optuna_batches(config, primary_metrics(benchmark), store, train, log)
        else:
            results = train(members, "")
        saved = _saved_steps(store, members) if config.sweep.early_stopping is not None else None
        stl_results = get_backend("local", engine="loop").train(stl, store, progress=progress, log=log)
    stl_by_objective = {run.name[len("stl-") :]: stl_results[run.name] for run in stl}
    return SweepResult(
        config, members, results, stl_by_objective, primary_metrics(benchmark), delta_metrics(benchmark), saved
    )


def _check_search(config: SweepConfig) -> None:
    """One-line errors for what the Optuna design and early stopping do not combine with."""
    spec = config.sweep
    if spec.design == "optuna" and spec.factors:
        raise ConfigError(
            "sweep.factors: design: optuna searches the weights only (a trial's value is the mean over "
            "its seeds); remove sweep.factors or use another design"
        )
    if spec.early_stopping is not None and spec.backend != "local":
        raise ConfigError(
            "sweep.early_stopping: runs on the local backend only for now (Tune's ASHA scheduler is "
            "not wired yet); set sweep.backend=local"
        )
    if spec.early_stopping is not None and spec.engine == "loop":
        raise ConfigError(
            "sweep.early_stopping: trains stacked populations that shrink; set sweep.engine=auto or vectorized"
        )
    if spec.design == "optuna" or spec.early_stopping is not None:
        _fitness(config, [("x", True)])


def _fitness(config: SweepConfig, primary: list[tuple[str, bool]]) -> Callable:
    try:
        return build_fitness(config.sweep.fitness, primary)
    except ValueError as error:
        raise ConfigError(f"sweep.fitness: {error}") from None


def _trainer(
    config: SweepConfig,
    backend: Backend,
    store: Store,
    primary: list[tuple[str, bool]],
    progress: bool,
    log: Callable[[str], None],
    on_evaluation: Callable | None,
) -> Callable[[list[Member], str], dict]:
    """``train(runs, group)``: the backend's, or with early stopping the shrinking stacked
    populations of :func:`scalarize.search.successive_halving.train_with_early_stopping`, whose
    rungs compare every member of the sweep trained so far (``peers``)."""
    spec = config.sweep.early_stopping
    if spec is None:
        return lambda runs, group: backend.train(
            runs, store, progress=progress, log=log, on_evaluation=on_evaluation, group=group or None
        )
    rule = EarlyStopping(spec.min_resource, spec.reduction_factor, tuple(spec.rungs) if spec.rungs else None)
    fitness, peers = _fitness(config, primary), []

    def train(runs: list[Member], group: str) -> dict[str, RunResult]:
        peers.extend(m.name for m in runs if m.name not in peers)
        if runs:
            apply_threads(runs[0].config.threads)
        return train_with_early_stopping(
            runs,
            list(peers),
            store,
            rule,
            fitness,
            chunk_size=config.sweep.chunk_size,
            progress=progress,
            log=log,
            on_evaluation=on_evaluation,
        )

    return train


def _saved_steps(store: Store, members: list[Member]) -> tuple[int, int]:
    """``(planned, saved)`` member-steps: every member's planned steps, and the steps its
    stopped members did not train."""
    planned = saved = 0
    for member in members:
        total = int(store.costs(member.name).get("planned_steps", 0))
        row = store.run(member.name)
        planned += total
        if row is not None and row["status"] == STOPPED:
            saved += max(total - int(row["step"]), 0)
    return planned, saved


def optuna_batches(
    config: SweepConfig,
    primary: list[tuple[str, bool]],
    store: Store,
    train: Callable[[list[Member], str], dict[str, RunResult]],
    log: Callable[[str], None],
) -> tuple[list[Member], dict[str, RunResult]]:
    """``sweep.optuna.trials`` trials asked ``batch`` at a time (:class:`OptunaDesign`), each
    batch's members trained as one group (``batch-NN``), then told their validation values.
    Trial ``t`` is members ``t·S … t·S + S − 1`` (``S`` training seeds)."""
    spec, seeds = config.sweep.optuna, len(config.sweep.seeds)
    batch = spec.batch or max(1, config.sweep.chunk_size // seeds)
    design = _optuna_design(config, primary, store)
    fitness = _fitness(config, primary)
    members: list[Member] = []
    results: dict[str, RunResult] = {}
    for number, first in enumerate(range(0, spec.trials, batch)):
        trials = design.weights(first, min(batch, spec.trials - first))
        new = [m for t, w in trials for m in members_for(config, w[None, :], start=t * seeds)]
        try:
            check_fingerprints(store, new)
        except ConfigError as error:
            raise ConfigError(
                f"{error} (an optuna design numbers its members by trial: rerun with the settings it "
                "started with, or another output)"
            ) from None
        log(
            f"optuna batch {number + 1}/{math.ceil(spec.trials / batch)}: trials {first}..{first + len(trials) - 1} "
            f"({spec.sampler})"
        )
        results.update(train(new, f"batch-{number:02d}"))
        members += new
        for t, _ in trials:
            _tell(
                design,
                t,
                [results[m.name] for m in new[(t - first) * seeds : (t - first + 1) * seeds]],
                primary,
                fitness,
                spec.objectives,
            )
    return members, results


def _optuna_design(config: SweepConfig, primary: list[tuple[str, bool]], store: Store) -> OptunaDesign:
    spec = config.sweep.optuna
    storage = spec.storage or f"sqlite:///{store.directory.resolve() / 'optuna.db'}"
    directions = (
        ["maximize" if up else "minimize" for _, up in primary] if spec.objectives == "per_task" else ["maximize"]
    )
    try:
        return OptunaDesign(
            spec.study or config.name, storage, spec.sampler, config.sweep.design_seed, directions, len(primary)
        )
    except ImportError as error:
        raise ConfigError(str(error)) from None
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _tell(
    design: OptunaDesign,
    number: int,
    runs: list[RunResult],
    primary: list[tuple[str, bool]],
    fitness: Callable,
    objectives: str,
) -> None:
    """Trial ``number``'s values: the mean over its completed members of each primary
    validation metric (``per_task``) or of the fitness; FAIL when all diverged, PRUNED when
    none completed and one was stopped early."""
    done = [r for r in runs if r.status == "completed" and all(n in r.val for n, _ in primary)]
    if not done:
        design.tell(number, None, "pruned" if any(r.status == STOPPED for r in runs) else "fail")
        return
    if objectives == "per_task":
        values = [float(np.mean([r.val[n] for r in done])) for n, _ in primary]
    else:
        values = [float(np.mean([fitness(r.val) for r in done]))]
    if not all(math.isfinite(v) for v in values):
        design.tell(number, None, "fail")
        return
    design.tell(number, values)


def _plan_text(config: SweepConfig, members: list[Member]) -> str:
    spec = config.sweep.adaptive
    if config.sweep.design == "optuna":
        optuna = config.sweep.optuna
        return (
            f"an optuna design: {optuna.trials} trial(s) x {len(config.sweep.seeds)} seed(s), sampler "
            f"{optuna.sampler}, objectives {optuna.objectives}"
        )
    if config.sweep.design != "adaptive":
        return f"{len(members)} members"
    per_vector = len(config.sweep.seeds) * math.prod(len(v) for v in config.sweep.factors.values())
    return (
        f"an adaptive design: {len(members)} members, then {spec.batches} batch(es) of {spec.batch} weight "
        f"vector(s) x {per_vector} member(s) each, placed at the largest gaps of the validation front"
    )


def adaptive_batches(
    config: SweepConfig,
    primary: list[tuple[str, bool]],
    first: list[Member],
    store: Store,
    train: Callable[[list[Member], str], dict[str, RunResult]],
    log: Callable[[str], None],
) -> tuple[list[Member], dict[str, RunResult]]:
    """Trains ``first``, then ``sweep.adaptive.batches`` batches, each placed by :func:`next_weights`
    from what the store holds (SURF 2026: refine where the traced front is sparse). ``train(runs,
    group)`` trains what is not finished yet; ``group`` names the batch (a Tune experiment each)."""
    spec = config.sweep.adaptive
    members, results = list(first), dict(train(first, "batch-00"))
    for batch in range(1, spec.batches + 1):
        weights = next_weights(store, members, primary, spec.batch)
        if not len(weights):
            log(f"adaptive design: no new weight vector after batch {batch - 1}; the sweep ends here")
            break
        new = members_for(config, weights, start=len(members))
        try:
            check_fingerprints(store, new)
        except ConfigError as error:
            raise ConfigError(
                f"{error} (an adaptive design places each batch from the results before it: rerun "
                "with the settings it started with)"
            ) from None
        shown = ", ".join("(" + ", ".join(f"{x:.4g}" for x in row) + ")" for row in weights)
        log(f"adaptive batch {batch}/{spec.batches}: weights {shown}")
        results.update(train(new, f"batch-{batch:02d}"))
        members += new
    return members, results


def next_weights(store: Store, members: list[Member], primary: list[tuple[str, bool]], batch: int) -> np.ndarray:
    """The next ``batch`` weight vectors (:func:`scalarize.search.adaptive_weights`: the largest
    gaps of the front of the members' stored validation metrics; a member without them, e.g.
    diverged, counts as failed). A pure function of the store, so a rerun decides the same."""
    weights = np.array([m.weights for m in members], dtype=np.float64)
    finals = [store.final(m.name).get("val", {}) for m in members]
    values = np.array([[final.get(name, np.nan) for name, _ in primary] for final in finals], dtype=np.float64)
    return adaptive_weights(weights, values, [up for _, up in primary], batch)


def _takes_preference(config: SweepConfig) -> bool:
    method = method_class(config.method.name)
    return method is not None and PREFERENCE_INPUT in method.needs


def front_model_run(config: SweepConfig) -> RunSpec:
    """The one training run of a one-run front: the sweep's config, trained once."""
    return RunSpec(
        f"{config.name}-model", TrainConfig.model_validate(config.model_dump(exclude={"sweep"})), "front-model"
    )


def _one_run_front(
    config: SweepConfig, benchmark, members: list[Member], progress: bool, log: Callable[[str], None]
) -> SweepResult:
    """A preference-conditioned model (COSMOS) trained once, then evaluated at every weight of
    the design: each weight is a member of the sweep (kind ``front-point``), at the cost of one run."""
    model_run = front_model_run(config)
    points = [
        RunSpec(m.name, m.config, "front-point", f"{model_run.fingerprint}-{index}") for index, m in enumerate(members)
    ]
    stl = stl_runs(config, benchmark.objectives) if config.stl else []
    check_not_conflicting(config, [model_run, *points, *stl])
    with Store(config.experiment_dir()) as store:
        log(f"one-run front {config.name}: {config.method.name} trained once, evaluated at {len(points)} weights")
        trained = get_backend("local", engine="loop").train([model_run, *stl], store, progress=progress, log=log)
        results = {p.name: result_from_store(store, p.name) for p in points if is_finished(store, p.name)}
        pending = [p for p in points if p.name not in results]
        if pending:
            model = _reported_model(model_run, store)
            for point in pending:
                results[point.name] = _evaluate_point(point, model, benchmark, store, trained[model_run.name].steps)
    stl_by_objective = {run.name[len("stl-") :]: trained[run.name] for run in stl}
    return SweepResult(
        config,
        members,
        {m.name: results[m.name] for m in members},
        stl_by_objective,
        primary_metrics(benchmark),
        delta_metrics(benchmark),
    )


def _reported_model(run: RunSpec, store: Store):
    model = build_model_from_config(run.config, benchmark_from_config(run.config.benchmark))
    model.load_state_dict(load_checkpoint(run_directory(store.directory, run.name) / MODEL_FILE))
    return model.to(resolve_device(run.config.device))


def _evaluate_point(point: RunSpec, model, benchmark, store: Store, steps: int) -> RunResult:
    model.set_preference(point.weights)
    device_bench = benchmark.to(resolve_device(point.config.device))
    val, test = evaluate(model, device_bench, "val"), evaluate(model, device_bench, "test")
    with store.transaction():
        store.start_run(point.name, point.kind, point.config.model_dump(mode="json"), point.fingerprint)
        weights = [(steps, o, float(w)) for o, w in zip(benchmark.objectives, point.weights)]
        store.record_evaluation(point.name, 0, steps, {"val": val, "test": test}, weights)
        store.record_final(point.name, {"val": val, "test": test})
        store.finish_run(point.name, "completed", steps)
    return result_from_store(store, point.name)
