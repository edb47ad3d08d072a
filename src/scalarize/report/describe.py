"""What a run was: its method with its weights or options, and the settings that change its
numbers, in the words every report uses (titles, table columns, legends, notes).

A run named ``multimnist-uniform`` trained with ``method.weights=[0.7,0.3]`` is labelled
``multimnist-uniform: scalarization (left 0.7, right 0.3)``, never by its name alone.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel


def _data(config: BaseModel | Mapping[str, Any] | str | None) -> dict[str, Any]:
    if config is None:
        return {}
    if isinstance(config, str):
        return json.loads(config)
    if isinstance(config, BaseModel):
        return config.model_dump(mode="json")
    return dict(config)


def _number(value: float) -> str:
    return f"{value:.3g}"


def weights_text(weights: Sequence[float], objectives: Sequence[str] | None = None) -> str:
    """Weights normalised to sum to one, named by objective when known: ``left 0.7, right 0.3``."""
    total = sum(weights) or 1.0
    shares = [w / total for w in weights]
    if objectives is not None and len(objectives) == len(shares):
        return ", ".join(f"{o} {_number(s)}" for o, s in zip(objectives, shares))
    return ", ".join(_number(s) for s in shares)


def method_text(config, objectives: Sequence[str] | None = None) -> str:
    """The method of a config (a ``TrainConfig``, its dict or its JSON) with its weights or
    options: ``uniform scalarization``, ``scalarization (left 0.7, right 0.3)``, ``cagrad (c=0.4)``."""
    data = _data(config)
    method = data.get("method", data) or {}
    name = method.get("name", "scalarization")
    weights, options = method.get("weights"), dict(method.get("options") or {})
    objectives = (data.get("benchmark") or {}).get("objectives") or objectives
    if name == "scalarization":
        if weights is None or len(set(weights)) == 1:
            return "uniform scalarization"
        return f"scalarization ({weights_text(weights, objectives)})"
    if name == "scheduled_scalarization":
        schedule = options.get("schedule") or []
        if not schedule:
            return "scheduled scalarization"
        last = schedule[-1][1]
        return (
            f"PBT schedule ({len(schedule)} setting(s); last from step {schedule[-1][0]}: "
            f"{weights_text(last, objectives)})"
        )
    parts = [f"{k}={_option(v)}" for k, v in sorted(options.items())]
    if weights is not None:
        parts.insert(0, f"weights {weights_text(weights, objectives)}")
    return f"{name} ({', '.join(parts)})" if parts else name


def _option(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def run_label(name: str, config=None, objectives: Sequence[str] | None = None) -> str:
    """``name: method`` for tables and legends; single-task runs say which objective."""
    data = _data(config)
    alone = (data.get("benchmark") or {}).get("objectives")
    if name.startswith("stl-") and alone and len(alone) == 1:
        return f"{name}: single-task ({alone[0]})"
    if not data:
        return name
    return f"{name}: {method_text(data, objectives)}"


def _options_text(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {_option(v)}" for k, v in sorted(options.items()))


def settings_text(config, *, seed: bool = True) -> str:
    """The settings that change the numbers: benchmark and its options, model, optimizer and
    learning-rate schedule, budget, batch, seed, device."""
    data = _data(config)
    bench = data.get("benchmark") or {}
    model = data.get("model") or {}
    optimizer = data.get("optimizer") or {}
    schedule = (data.get("schedule") or {}).get("name", "constant")
    options = bench.get("options") or {}
    benchmark = bench.get("target") or bench.get("name", "?")
    if options:
        benchmark += f" ({_options_text(options)})"
    if bench.get("objectives"):
        benchmark += f", objectives {', '.join(bench['objectives'])}"
    family = model.get("target") or model.get("family", "?")
    model_text = f"{family} width {_number(model.get('width', 1.0))} depth {model.get('depth', '?')}"
    if model.get("options"):
        model_text += f" ({_options_text(model['options'])})"
    steps = data.get("steps")
    budget = f"{steps} steps" if steps else f"{data.get('epochs', '?')} epochs"
    lr = optimizer.get("lr", "?")
    optimizer_text = f"{optimizer.get('name', '?')} lr {_number(lr) if isinstance(lr, (int, float)) else lr}"
    if optimizer.get("weight_decay"):
        optimizer_text += f" weight decay {_number(optimizer['weight_decay'])}"
    parts = [
        f"benchmark {benchmark}",
        f"model {model_text}",
        f"{optimizer_text}, {schedule} lr schedule",
        f"{budget}, batch {data.get('batch_size', '?')}",
    ]
    if seed:
        parts.append(f"seed {data.get('seed', 0)}")
    parts.append(f"device {data.get('device', 'auto')}")
    return "; ".join(parts) + "."
