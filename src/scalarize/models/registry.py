"""Models by the name configs use, by import path, or registered by you.

The contract (see :mod:`scalarize.models.contract`): a model maps a batch to ``(representation,
{task: output})``. Three ways in:

* a **family** registered by name: a trunk builder ``trunk(input_shape, width, depth, **options)
  -> (trunk, feature_size)`` (:func:`register_trunk`) gets one head per task (``head``: linear by
  default, or a small MLP); the built-in ``mlp``, ``resnet`` and ``linear`` are registered so;
* a **builder** registered by name (:func:`register_model`) or named by import path in a config
  (``model: {target: "mypkg.nets:build", options: {...}}``): it is called with the keywords it
  accepts among ``input_shape``, ``tasks``, ``width``, ``depth`` and the options, and returns a
  :class:`MultiTaskModel`, a ``(trunk, {task: head})`` pair, or any ``nn.Module`` whose forward
  returns ``(features, {task: output})``;
* in Python, any such module passed to the trainer directly.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from scalarize.data.task import Task
from scalarize.errors import ScalarizeError
from scalarize.imports import load_object
from scalarize.models.bottleneck_resnet import resnet_bottleneck_trunk
from scalarize.models.contract import as_multitask
from scalarize.models.encoder_decoder import resnet_dilated, segnet
from scalarize.models.gnn import mpnn_trunk
from scalarize.models.mlp import mlp_trunk
from scalarize.models.multitask import MultiTaskModel
from scalarize.models.resnet import resnet_trunk
from scalarize.models.vit import vit_trunk


class ModelError(ScalarizeError):
    """An unknown family or a bad size (reported to users as one line)."""


TrunkBuilder = Callable[..., tuple[nn.Module, int]]
ModelBuilder = Callable[..., Any]

_MODELS: dict[str, ModelBuilder] = {}
HEADS = ("linear", "mlp")
_TRUNK_FAMILIES: set[str] = set()  # built here from a trunk: they take a ``head``


def register_model(name: str, builder: ModelBuilder | None = None):
    """Adds a model builder under ``name`` (plain call, or decorator without ``builder``)."""

    def add(fn: ModelBuilder) -> ModelBuilder:
        _MODELS[name] = fn
        return fn

    return add(builder) if builder is not None else add


def register_trunk(name: str, trunk: TrunkBuilder, *, min_depth: int = 1) -> TrunkBuilder:
    """Adds a family built from ``trunk(input_shape, width, depth, **options)`` and one head per
    task."""

    def build(input_shape, tasks, width=1.0, depth=2, head=None, **options) -> MultiTaskModel:
        if depth < min_depth:
            raise ModelError(f"model.depth: must be >= {min_depth} for {name!r}, got {depth}")
        try:
            module, size = trunk(tuple(input_shape), width=width, depth=depth, **options)
        except TypeError:
            allowed = [p for p in inspect.signature(trunk).parameters if p not in ("input_shape", "width", "depth")]
            raise ModelError(
                f"model.options: unknown option for {name!r} (got {', '.join(options) or 'none'}); "
                f"allowed: {', '.join(allowed) or 'none'}"
            ) from None
        except ValueError as error:
            raise ModelError(f"model: {error}") from None
        return MultiTaskModel(module, make_heads(tasks, size, head))

    _MODELS[name] = build
    _TRUNK_FAMILIES.add(name)
    return trunk


def make_heads(tasks: Sequence[Task], size: int, head: Mapping[str, Any] | None = None) -> dict[str, nn.Module]:
    """One head per task on a ``size``-dimensional representation: ``{name: linear}`` (default)
    or ``{name: mlp, hidden: H, layers: L}`` (L hidden layers of H units with ReLU)."""
    spec = dict(head or {})
    kind = spec.pop("name", "linear")
    if kind not in HEADS:
        raise ModelError(f"model.head.name: unknown head {kind!r}; allowed: {', '.join(HEADS)}")
    hidden, layers = int(spec.pop("hidden", 256)), int(spec.pop("layers", 1))
    if spec:
        raise ModelError(f"model.head.{next(iter(spec))}: unknown key; allowed: name, hidden, layers")
    if kind == "linear":
        return {t.name: nn.Linear(size, t.num_outputs) for t in tasks}
    if hidden < 1 or layers < 1:
        raise ModelError(f"model.head: hidden and layers must be >= 1, got {hidden} and {layers}")

    def mlp(outputs: int) -> nn.Module:
        parts: list[nn.Module] = []
        width = size
        for _ in range(layers):
            parts += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        return nn.Sequential(*parts, nn.Linear(width, outputs))

    return {t.name: mlp(t.num_outputs) for t in tasks}


def _linear_model(input_shape, tasks, width=1.0, depth=0, **options) -> MultiTaskModel:
    """One shared matrix ``[outputs, inputs]`` without bias and identity heads; all tasks have the
    same output size. It makes weighted least squares exact (:class:`scalarize.data.LinearProblem`)."""
    if options:
        raise ModelError(f"model.options.{next(iter(options))}: unknown option for 'linear'; allowed: none")
    outputs = {t.num_outputs for t in tasks}
    if len(outputs) != 1:
        raise ModelError("model.family: 'linear' needs tasks with one common output size")
    trunk = nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), outputs.pop(), bias=False))
    return MultiTaskModel(trunk, {t.name: nn.Identity() for t in tasks})


def available_models() -> list[str]:
    return sorted(_MODELS)


def _builder(family: str) -> ModelBuilder:
    if family in _MODELS:
        return _MODELS[family]
    if ":" in family:
        try:
            return load_object(family, "model builder")
        except ValueError as error:
            raise ModelError(f"model.target: {error}") from None
    raise ModelError(
        f"model.family: unknown family {family!r}; allowed: {', '.join(available_models())} "
        "or model.target: 'package.module:build'"
    )


def _call(builder: ModelBuilder, arguments: dict[str, Any], options: dict[str, Any]) -> Any:
    """Calls a user's builder with the keywords it accepts; unknown options are a one-line error."""
    try:
        signature = inspect.signature(builder)
    except (TypeError, ValueError):
        return builder(**arguments, **options)
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return builder(**arguments, **options)
    unknown = [k for k in options if k not in parameters]
    if unknown:
        raise ModelError(
            f"model.options.{unknown[0]}: unknown option; allowed: "
            f"{', '.join(p for p in parameters if p not in arguments) or 'none'}"
        )
    return builder(**{k: v for k, v in arguments.items() if k in parameters}, **options)


def build_model(
    family: str,
    input_shape: Sequence[int],
    tasks: Sequence[Task],
    width: float = 1.0,
    depth: int = 2,
    *,
    head: Mapping[str, Any] | None = None,
    features: Any = None,
    **options: Any,
) -> MultiTaskModel:
    """The model of a registered family or builder, or of a builder named ``package.module:name``.

    A family gets one head per task (``head``, see :func:`make_heads`); a builder makes its
    own. ``features``: a tabular benchmark's column layout (``data/features.py: FeatureSchema``),
    handed to a builder that takes a ``features`` keyword. Raises :class:`ModelError` (one line)
    for an unknown name, a bad size or option.
    """
    builder = _builder(family)
    if width <= 0:
        raise ModelError(f"model.width: must be > 0, got {width}")
    if depth < 0:
        raise ModelError(f"model.depth: must be >= 0, got {depth}")
    arguments = {"input_shape": tuple(input_shape), "tasks": list(tasks), "width": width, "depth": depth}
    if family in _TRUNK_FAMILIES:  # a trunk reads the packed rows as they are
        model = builder(**arguments, head=head, **options)
    else:
        if head:
            raise ModelError("model.head: only the families built from a trunk take a head; a builder makes its own")
        if features is not None:
            arguments["features"] = features
        try:
            model = _call(builder, arguments, options)
        except ModelError:
            raise
        except (TypeError, ValueError) as error:
            raise ModelError(f"model: {family}: {error}") from None
    try:
        return as_multitask(model, tasks)
    except ValueError as error:
        raise ModelError(f"model: {family}: {error}") from None


register_trunk("mlp", mlp_trunk)
register_trunk("resnet", resnet_trunk)
register_trunk("resnet_bottleneck", resnet_bottleneck_trunk, min_depth=0)  # its own message
register_trunk("vit", vit_trunk)
register_trunk("mpnn", mpnn_trunk)
register_model("linear", _linear_model)
register_model("resnet_dilated", resnet_dilated)
register_model("segnet", segnet)
