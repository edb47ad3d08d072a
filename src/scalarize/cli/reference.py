"""What the command can tell about itself: ``scalarize config SECTION`` (a config section's keys,
types, allowed values and defaults), ``scalarize methods`` (every method and its options with
their defaults) and the lists at the end of each command's ``--help``."""

from __future__ import annotations

import inspect
import json
import textwrap
import types
import typing
from enum import Enum

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from scalarize.train.config import ConfigError


def _command_sections() -> dict[str, tuple[type[BaseModel], str]]:
    from scalarize.experiments.compare import CompareSpec
    from scalarize.experiments.pbt import PBTSpec
    from scalarize.experiments.study import StudySpec
    from scalarize.experiments.sweep import SweepSpec

    return {
        "sweep": (SweepSpec, "a design of weights trained as populations (scalarize sweep)"),
        "compare": (CompareSpec, "MTO methods against uniform scalarization (scalarize compare)"),
        "pbt": (PBTSpec, "population-based training of the weights (scalarize pbt)"),
        "study": (StudySpec, "best weights and gains over depth x width (scalarize study)"),
    }


def _nested(annotation) -> type[BaseModel] | None:
    """The config class inside an annotation (``X``, ``list[X]``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _nested(argument)
        if found is not None:
            return found
    return None


def section_class(path: str) -> type[BaseModel]:
    """The config class of a dotted section (``train`` for the top level, ``model.head``...)."""
    from scalarize.train.config import TrainConfig

    commands = _command_sections()
    if path in ("train", ""):
        return TrainConfig
    first, *rest = path.split(".")
    if first in commands:
        model = commands[first][0]
    else:
        model = _nested(getattr(TrainConfig.model_fields.get(first), "annotation", None))
    for part in rest:
        if model is None:
            break
        model = _nested(getattr(model.model_fields.get(part), "annotation", None))
    if model is None:
        raise ConfigError(f"config: unknown section {path!r}; allowed: {', '.join(section_names())}")
    return model


def section_names() -> list[str]:
    """Every section ``scalarize config`` describes, nested ones included."""
    from scalarize.train.config import TrainConfig

    names = ["train"]
    roots = [(name, _nested(f.annotation)) for name, f in TrainConfig.model_fields.items()]
    roots += [(name, cls) for name, (cls, _) in _command_sections().items()]
    pending = [(name, cls) for name, cls in roots if cls is not None]
    while pending:
        name, cls = pending.pop(0)
        names.append(name)
        pending += [(f"{name}.{key}", sub) for key, f in cls.model_fields.items() if (sub := _nested(f.annotation))]
    return names


def type_text(annotation) -> str:
    """An annotation as a person reads it: ``pbt | pb2``, ``list of float``, ``int or null``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [type_text(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin in (list, tuple) and args:
        if origin is tuple:
            return "(" + ", ".join(type_text(a) for a in args) + ")"
        return f"list of {type_text(args[0])}"
    if origin is dict:
        return "mapping"
    if typing.get_origin(annotation) is typing.Annotated:
        return type_text(args[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return " | ".join(str(m.value) for m in annotation)
    return getattr(annotation, "__name__", str(annotation)).replace("typing.", "")


#: What a key means, for the keys whose field carries no description (by class and key).
MEANINGS = {
    "TrainConfig": {
        "name": "the run's name (the sweep's, search's... prefix of its runs)",
        "benchmark": "the data and its tasks",
        "model": "the shared trunk and the heads",
        "method": "how the task losses become an update",
        "optimizer": "the optimizer",
        "schedule": "the learning-rate schedule",
        "epochs": "passes over the training set",
        "batch_size": "examples per step",
        "seed": "seed of the model, the batches and the method",
        "device": "auto: cuda when available, else cpu",
    },
    "BenchmarkConfig": {
        "name": "a bundled or registered benchmark (scalarize benchmarks)",
        "options": "the benchmark's options (scalarize benchmarks --options NAME)",
    },
    "ModelConfig": {
        "family": "mlp, resnet, linear, resnet_bottleneck, vit, or a registered model",
        "width": "multiplies the trunk's channels or units",
        "depth": "layers or blocks of the trunk",
        "head": "each task's head",
    },
    "MethodConfig": {
        "name": "scalarization or an MTO method (scalarize methods)",
        "weights": "one per objective, normalised to sum to one (null: uniform)",
        "options": "the method's options (scalarize methods NAME)",
    },
    "OptimizerConfig": {
        "name": "the optimizer",
        "lr": "learning rate",
        "weight_decay": "L2 penalty",
        "momentum": "SGD's momentum",
    },
    "ScheduleConfig": {"name": "constant, cosine (to 0 at the last step) or step", "gamma": "decay factor (step)"},
    "HeadConfig": {
        "name": "linear, or an MLP",
        "hidden": "units of an MLP head",
        "layers": "hidden layers of an MLP head",
    },
    "TaskOverride": {
        "options": "the kind's options",
        "primary_metric": "the metric that selects and reports",
        "higher_is_better": "the primary metric's direction",
    },
    "SweepSpec": {
        "design": "lattice (step), sobol or dirichlet (points), list (weights), adaptive (batches at the front's gaps)",
        "step": "lattice spacing",
        "adaptive": "design: adaptive only: initial, batch, batches",
        "points": "points of a sobol or dirichlet design",
        "design_seed": "seed of a random design",
        "weights": "the weight vectors of a list design",
        "seeds": "training seeds, crossed with the weights",
        "factors": "other config keys and their values, crossed as a grid",
        "engine": "auto (measured), vectorized (stacked) or loop",
        "chunk_size": "members stacked at once at most",
        "backend": "local or ray",
        "address": "Ray cluster address",
        "storage": "ray: where trials checkpoint, seen by every node (default <output>/ray; a path or s3://...)",
    },
    "AdaptiveSpec": {
        "initial": "weight vectors of the first batch, space-filling (null: tasks + 1, the corners and the uniform)",
        "batch": "weight vectors added per batch, at the largest gaps of the validation front so far",
        "batches": "batches after the first (each after the previous one's runs finish)",
    },
    "CompareSpec": {
        "methods": "the methods (uniform scalarization is always added)",
        "seeds": "training seeds",
        "lr_grid": "learning rates every method tries alike (best mean validation score kept)",
    },
    "CompareMethod": {"name": "a method (scalarize methods)", "options": "its options", "weights": "its weights"},
    "PBTSpec": {
        "algorithm": "pbt, pb2 (GP bandit explore) or mo-pbt (non-dominated sorting; returns the front)",
        "diversity": "mo-pbt only: the order inside a front (default scattered)",
        "quantile": "fraction copied / copying at each sync",
        "factors": "weight perturbation factors",
        "resample_probability": "chance of fresh Dirichlet weights",
        "explore_lr": "perturb the learning rate too",
        "lr_bounds": "learning-rate range when explored",
        "dirichlet_alpha": "concentration of the weight prior",
        "initial": "initial weights: dirichlet or uniform",
        "fitness": "mean_primary, weighted, delta_m or constrained",
        "seed": "seed of the search's decisions",
        "backend": "local or ray",
        "address": "Ray cluster address",
        "storage": "ray: where trials checkpoint, seen by every node (default <output>/ray; a path or s3://...)",
        "compare_uniform": "also train uniform scalarization on the same budget",
    },
    "StudySpec": {
        "depths": "model depths",
        "widths": "model widths",
        "groups": "groups of objectives (null: every pair)",
        "sweep": "the weight sweep of each cell",
        "seeds": "training seeds",
        "conflict_batches": "batches for the gradient-conflict probe",
    },
}


def _bounds(field: FieldInfo) -> str:
    symbols = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<", "min_length": "at least", "max_length": "at most"}
    parts = []
    for item in field.metadata:
        for attribute, symbol in symbols.items():
            value = getattr(item, attribute, None)
            if value is not None:
                parts.append(f"{symbol} {value}" + (" items" if "length" in attribute else ""))
    return ", ".join(parts)


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "(required)"
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        return "(section)"
    return json.dumps(default, default=str) if not isinstance(default, str) else default


def describe_section(path: str) -> str:
    """The keys of one config section: type and allowed values, default, what it is."""
    model = section_class(path)
    prefix = "" if path in ("train", "") else f"{path}."
    rows = []
    for name, field in model.model_fields.items():
        kind = type_text(field.annotation)
        bounds = _bounds(field)
        nested = _nested(field.annotation)
        about = field.description or MEANINGS.get(model.__name__, {}).get(name, "")
        if nested is not None:
            about = (about + "; " if about else "") + f"see `scalarize config {prefix}{name}`"
        rows.append((f"{prefix}{name}", kind + (f" ({bounds})" if bounds else ""), _default_text(field), about))
    commands = _command_sections()
    title = {"train": "every command's config: one training run (the commands add a section of their own)"}
    heading = title.get(path) or (
        commands[path][1] if path in commands else (model.__doc__ or "").strip().split("\n")[0]
    )
    return f"{path}: {heading}\n\n" + _table(["key", "type", "default", "meaning"], rows)


def _table(header, rows) -> str:
    from scalarize.report.experiment import format_table

    wrapped = [[*row[:3], textwrap.shorten(row[3], 90, placeholder="...")] for row in rows]
    return format_table(header, wrapped)


def config_overview() -> str:
    """What ``scalarize config`` prints without a section: the sections there are."""
    lines = ["Config sections (`scalarize config SECTION` lists the keys, types, defaults):", ""]
    lines += [f"  {name}" for name in section_names()]
    lines += ["", "Any key can be overridden on the command line as section.key=value (values are YAML)."]
    return "\n".join(lines)


# -- methods ----------------------------------------------------------------------------------
def _summary(cls) -> str:
    paragraph = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
    return " ".join(paragraph.split())


def method_rows() -> list[tuple[str, str, str]]:
    """Per registered method: its name, options with their defaults, and what it does."""
    from scalarize.methods.base import GradientMethod
    from scalarize.methods.registry import _METHODS, available_methods

    rows = []
    for name in available_methods():
        parameters = list(inspect.signature(_METHODS[name].__init__).parameters.values())[1:]
        options = []
        for p in parameters:
            if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                continue
            default = "required" if p.default is inspect.Parameter.empty else repr(p.default)
            options.append(f"{p.name}={default}")
        if issubclass(_METHODS[name], GradientMethod) and len(_METHODS[name].gradient_spaces()) > 1:
            options.append("gradients='parameters'")  # or 'representation': every such method takes it
        rows.append((name, ", ".join(options) or "-", _summary(_METHODS[name])))
    return rows


def describe_methods(name: str | None = None) -> str:
    """``scalarize methods`` (a table) or ``scalarize methods NAME`` (one method's docstring)."""
    from scalarize.methods.registry import _METHODS, available_methods

    if name is not None:
        if name not in _METHODS:
            raise ConfigError(f"methods: unknown method {name!r}; allowed: {', '.join(available_methods())}")
        row = next(r for r in method_rows() if r[0] == name)
        cls = _METHODS[name]
        module = inspect.getmodule(cls)
        about = inspect.cleandoc(module.__doc__ or "") if module is not None else ""
        return f"{name}({row[1]})\n\n{inspect.cleandoc(cls.__doc__ or '')}\n\n{about}".rstrip()
    rows = [(n, o, textwrap.shorten(s, 80, placeholder="...")) for n, o, s in method_rows()]
    from scalarize.report.experiment import format_table

    return (
        format_table(["method", "options (defaults)", "what it does"], rows)
        + "\n\nIn a config: method: {name: cagrad, options: {c: 0.4}}; only scalarization (and mtadam) take "
        "method.weights. `scalarize methods NAME` shows a method's rule and sources."
    )


# -- --help -----------------------------------------------------------------------------------
def epilog(command: str) -> str:
    """The end of a command's ``--help``: the names a config of that command can use."""
    from scalarize.search.fitness import FITNESS_NAMES

    methods = _names_line("methods", _method_names())
    sections = {
        "train": "train, benchmark, model, method, optimizer, schedule, tracking",
        "sweep": "sweep (and every train section)",
        "compare": "compare, compare.methods (and every train section)",
        "pbt": "pbt (and every train section)",
        "study": "study, study.sweep (and every train section)",
    }[command]
    lines = [f"config sections: {sections}; `scalarize config SECTION` lists their keys and defaults"]
    if command in ("train", "compare"):
        lines.append(methods + "  (`scalarize methods` lists their options)")
    if command in ("sweep", "study"):
        lines.append(
            "designs: lattice (step), sobol, dirichlet (points), list (weights), adaptive (initial, batch, batches)"
        )
    if command == "pbt":
        lines.append(
            f"fitness: {', '.join(FITNESS_NAMES)}; algorithms: pbt, pb2, mo-pbt; mo-pbt diversity: "
            "scattered, crowding, hypervolume; backends: local, ray"
        )
    from scalarize.cli.shipped import shipped_configs_text

    flag = "" if command == "train" else f" --command {command}"
    example = f"`scalarize init{flag} -o FILE` writes a starter; shipped examples in {shipped_configs_text()}"
    lines.append(f"examples: {example}")
    return "\n".join(textwrap.fill(line, 100, subsequent_indent="  ") for line in lines)


def _method_names() -> list[str]:
    from scalarize.methods.registry import available_methods

    return available_methods()


def _names_line(label: str, names: list[str]) -> str:
    return f"{label}: {', '.join(names)}"
