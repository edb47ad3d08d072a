"""What a run is built from its config: the benchmark (loaded once per process and options), the
model and the method, each validated with one-line errors (:class:`ConfigError`) before anything
is written."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Protocol

import torch

from scalarize.data.benchmark import Benchmark
from scalarize.data.registry import load_benchmark
from scalarize.data.task import Task
from scalarize.imports import check_allowed, load_object
from scalarize.methods.base import FEATURE_GRADIENTS, PREFERENCE_INPUT, SHARED_GRADIENTS, Method, MethodError
from scalarize.methods.registry import build_method, method_class
from scalarize.models.conditioned import PreferenceConditioned, conditioned_shape, starts_dense
from scalarize.models.contract import probe
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.registry import build_model
from scalarize.train.config import BenchmarkConfig, ConfigError, HeadConfig, TrainConfig
from scalarize.train.devices import resolve_device, resolve_threads
from scalarize.train.evaluate import check_single_task, delta_metrics

#: Benchmarks loaded by this process, by their config (see :func:`benchmark_from_config`).
_LOADED: OrderedDict[str, Benchmark] = OrderedDict()
LOADED_LIMIT = 4


def _load(config: BenchmarkConfig) -> Benchmark:
    if config.target is None:
        return load_benchmark(config.name, **config.options)
    try:
        builder = load_object(config.target, "benchmark builder")
        benchmark = builder(**config.options)
    except TypeError as error:
        raise ConfigError(f"benchmark.options: {config.target}: {error}") from None
    except ValueError as error:
        raise ConfigError(f"benchmark.target: {error}") from None
    if not isinstance(benchmark, Benchmark):
        raise ConfigError(f"benchmark.target: {config.target} returned {type(benchmark).__name__}, not a Benchmark")
    return benchmark


def benchmark_from_config(config: BenchmarkConfig) -> Benchmark:
    """The benchmark a config names, its tasks replaced and its objectives restricted as asked.

    Loaded once per process for the same name, target and options (a sweep, a comparison or a
    study loads its data once, not once per run); the last few are kept. A ``target`` from an
    untrusted stored config is refused even when this process loaded it before.
    """
    if config.target is not None:
        try:
            check_allowed(config.target, "benchmark builder")
        except ValueError as error:
            raise ConfigError(f"benchmark.target: {error}") from None
    key = json.dumps([config.name, config.target, config.options], sort_keys=True, default=str)
    if key not in _LOADED:
        _LOADED[key] = _load(config)
        while len(_LOADED) > LOADED_LIMIT:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    benchmark = _with_task_overrides(_LOADED[key], config)
    if config.objectives is not None:
        unknown = [o for o in config.objectives if o not in benchmark.objectives]
        if unknown or not config.objectives:
            raise ConfigError(
                f"benchmark.objectives: unknown {unknown or 'empty list'}; allowed: {', '.join(benchmark.objectives)}"
            )
        benchmark = benchmark.restrict(list(config.objectives))
    return benchmark


def _with_task_overrides(benchmark: Benchmark, config: BenchmarkConfig) -> Benchmark:
    if not config.tasks:
        return benchmark
    names = [t.name for t in benchmark.tasks]
    unknown = [n for n in config.tasks if n not in names]
    if unknown:
        raise ConfigError(f"benchmark.tasks.{unknown[0]}: unknown task; allowed: {', '.join(names)}")
    tasks = []
    for task in benchmark.tasks:
        override = config.tasks.get(task.name)
        if override is None:
            tasks.append(task)
            continue
        try:
            tasks.append(
                Task(
                    task.name,
                    override.kind,
                    task.num_outputs,
                    override.primary_metric or "",
                    override.higher_is_better,
                    dict(override.options),
                )
            )
        except (ValueError, TypeError) as error:
            raise ConfigError(f"benchmark.tasks.{task.name}: {error}") from None
    return benchmark.with_tasks(tasks)


def build_method_from_config(config: TrainConfig) -> Method:
    options = dict(config.method.options)
    if config.method.weights is not None:
        options["weights"] = config.method.weights
    try:
        return build_method(config.method.name, **options)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def build_model_from_config(config: TrainConfig, benchmark: Benchmark) -> MultiTaskModel | PreferenceConditioned:
    """The model ``config.model`` describes for ``benchmark``'s inputs and tasks."""
    model = config.model
    reserved = [k for k in model.options if k in ("input_shape", "tasks", "width", "depth", "head")]
    if reserved:
        raise ConfigError(
            f"model.options.{reserved[0]}: not an option; set model.{reserved[0]} "
            "(input_shape and tasks come from the benchmark)"
        )
    head = model.head.model_dump() if model.head != HeadConfig() else None
    method = method_class(config.method.name)
    if method is None or PREFERENCE_INPUT not in method.needs:
        return build_model(
            model.builder,
            benchmark.input_shape,
            benchmark.tasks,
            model.width,
            model.depth,
            head=head,
            features=benchmark.extras.get("features"),
            **model.options,
        )
    k = len(benchmark.objectives)  # COSMOS: the model takes the preference as an input too
    try:
        shape = conditioned_shape(benchmark.input_shape, k)
    except ValueError as error:
        raise ConfigError(f"method.name: {config.method.name}: {error}") from None
    inner = build_model(
        model.builder,
        shape,
        benchmark.tasks,
        model.width,
        model.depth,
        head=head,
        features=benchmark.extras.get("features"),
        **model.options,
    )
    if len(benchmark.input_shape) == 3 and starts_dense(inner):  # a dense model: the preference as features
        flat = conditioned_shape(benchmark.input_shape, k, as_channels=False)
        inner = build_model(
            model.builder,
            flat,
            benchmark.tasks,
            model.width,
            model.depth,
            head=head,
            features=benchmark.extras.get("features"),
            **model.options,
        )
        return PreferenceConditioned(inner, k, as_channels=False)
    return PreferenceConditioned(inner, k)


#: The most parameters a model may have: float32 parameters, gradients and two Adam moments
#: take 16 bytes each; beyond this the build itself would exhaust most machines' memory.
MAX_PARAMETERS = 4_000_000_000


def check_model_size(config: TrainConfig, benchmark: Benchmark) -> None:
    """Counts the model's parameters without allocating them (on the meta device); a model
    too large to train here is a one-line error naming ``model.width``/``model.depth``."""
    try:
        with torch.device("meta"):
            model = build_model_from_config(config, benchmark)
    except (ConfigError, ValueError):
        raise
    except Exception:  # noqa: BLE001 - a builder that cannot run on the meta device: built for real later
        return
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        raise ConfigError(
            f"model: width {config.model.width:g} and depth {config.model.depth} give {count / 1e9:.1f} billion "
            f"parameters ({16 * count / 2**30:,.0f} GiB to train in float32); allowed: at most "
            f"{MAX_PARAMETERS / 1e9:g} billion"
        )


def prepare(config: TrainConfig) -> tuple[Benchmark, Method]:
    """Loads and validates everything a run needs; raises :class:`ConfigError` on bad input."""
    try:
        resolve_device(config.device)
        resolve_threads(config.threads)
        benchmark = benchmark_from_config(config.benchmark)
        check_single_task(config.single_task, delta_metrics(benchmark))
        torch.manual_seed(config.seed)  # a method's own generator (pcgrad, rlw...) is seeded from it
        method = build_method_from_config(config)
        method.setup(benchmark.objectives, benchmark.setting)
        check_model_size(config, benchmark)
        with torch.random.fork_rng(devices=[]):
            model = build_model_from_config(config, benchmark)
            check_targets(model, benchmark)
        check_method_fits_model(method, model)
    except ConfigError:
        raise
    except ValueError as error:
        message = str(error)
        if config.method.weights is not None and message.startswith("weights:"):
            message = "method." + message
        raise ConfigError(message) from None
    return benchmark, method


# -- checks of what was built, before anything trains ------------------------------------------


class SharedParameters(Protocol):
    """A model that tells its shared (trunk) parameters apart (every multi-task model here)."""

    def shared_parameters(self) -> list[torch.nn.Parameter]: ...


def check_method_fits_model(method: Method, model: SharedParameters) -> None:
    """A method on per-task gradients (of shared parameters or of the shared representation)
    needs a trunk with parameters; raises :class:`MethodError` (one line) otherwise."""
    needs = method.needs & {SHARED_GRADIENTS, FEATURE_GRADIENTS}
    if needs and not model.shared_parameters():
        what = "the shared parameters" if SHARED_GRADIENTS in needs else "the shared representation"
        raise MethodError(
            f"method.name: {method.name or type(method).__name__} needs per-task gradients on {what}, "
            "but this model has no shared parameters (its trunk has none); use a model with a "
            "trainable trunk or a loss-space method (e.g. scalarization, uw, famo)"
        )


def check_targets(model: torch.nn.Module, benchmark: Benchmark) -> None:
    """One forward pass on two training samples: the model follows the contract and every
    target fits its head's output (a one-line ``ValueError`` otherwise; models/contract.py)."""
    split = next(iter(benchmark.domains.values()))["train"]
    inputs, targets = split.batch(torch.arange(min(2, len(split))))
    probe(model, inputs, benchmark.tasks, targets)


def check_model_and_method(model: MultiTaskModel | PreferenceConditioned, method: Method, benchmark: Benchmark) -> None:
    """Before a run trains: a method that feeds the model a preference has a model that takes
    one, every target fits its head (:func:`check_targets`) and a gradient method has shared
    parameters (:func:`check_method_fits_model`); one-line errors."""
    if PREFERENCE_INPUT in method.needs and not callable(getattr(model, "set_preference", None)):
        raise MethodError(
            f"method.name: {method.name} feeds the model a preference: build it with "
            "scalarize.train.setup.build_model_from_config, or wrap it in "
            "scalarize.models.conditioned.PreferenceConditioned"
        )
    check_targets(model, benchmark)
    check_method_fits_model(method, model)
