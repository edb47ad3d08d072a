"""``scalarize init``: a starter config for one command, every key written with its value and a
comment (its type, allowed values and meaning), generated from the config schema that
``scalarize config`` describes, so it can never list a key the command would refuse.

The values are the schema's defaults, overlaid with the shipped example config of the benchmark
and command when there is one (``scalarize/configs/*.yaml``, installed with the package: the
repository's ``configs/`` folder), and ``benchmark.name`` set to the benchmark asked for.
"""

from __future__ import annotations

import textwrap
from typing import Any

import yaml
from pydantic import BaseModel

from scalarize.cli.errors import UsageError
from scalarize.cli.shipped import shipped_configs, shipped_configs_text

#: The commands a starter can be written for.
COMMANDS = ("train", "sweep", "compare", "pbt", "study")

#: Comments longer than this are shortened (the key and value stay whole).
COMMENT_WIDTH = 110


def _command_of(data: dict[str, Any]) -> str:
    """The command an example config is for: the first command section it holds, else train."""
    return next((name for name in COMMANDS[1:] if name in data), "train")


def example_for(benchmark: str, command: str) -> tuple[str, dict[str, Any]] | None:
    """The shipped example for ``benchmark`` and ``command`` (file name and content): among
    those with that ``benchmark.name`` and that command's section, the shortest name
    (``multimnist.yaml`` before ``multimnist-resnet.yaml``); ``None`` when none fits."""
    found = []
    for item in shipped_configs().iterdir():
        if not item.name.endswith(".yaml"):
            continue
        data = yaml.safe_load(item.read_text())
        bench = data.get("benchmark") if isinstance(data, dict) else None
        name = bench.get("name") if isinstance(bench, dict) else None
        if name == benchmark and _command_of(data) == command:
            found.append((len(item.name), item.name, data))
    return min(found)[1:] if found else None


def schema_of(command: str) -> type[BaseModel]:
    """The config class of ``command``."""
    from scalarize.train.config import TrainConfig

    if command == "train":
        return TrainConfig
    from scalarize.cli.reference import _command_sections

    spec = _command_sections()[command][0]
    configs = [cls for cls in TrainConfig.__subclasses__() if _field_class(cls, command) is spec]
    return configs[0]


def _field_class(cls: type[BaseModel], name: str) -> type[BaseModel] | None:
    from scalarize.cli.reference import _nested

    field = cls.model_fields.get(name)
    return None if field is None else _nested(field.annotation)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over``'s keys, mappings merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _values(command: str, benchmark: str | None) -> tuple[dict[str, Any], str | None]:
    """Every key's value for the starter (validated), and the example it started from."""
    from scalarize.train.config import build_config

    example = example_for(benchmark, command) if benchmark is not None else None
    data = dict(example[1]) if example else {}
    if command != "train":
        data.setdefault(command, {})
    if benchmark is not None:
        data = _merge(data, {"benchmark": {"name": benchmark}})
    config = build_config(data, schema_of(command))
    return config.model_dump(mode="json"), example[0] if example else None


def _flow(value: Any) -> str:
    """A value as one line of YAML (flow style)."""
    text = str(yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False)).strip()
    return text.removesuffix("...").strip()


def _comment(model: type[BaseModel], name: str) -> str:
    """A key's comment: its type and bounds, then what it means."""
    from scalarize.cli.reference import MEANINGS, _bounds, type_text

    field = model.model_fields[name]
    bounds = _bounds(field)
    about = field.description or MEANINGS.get(model.__name__, {}).get(name, "") or _section_about(model, name)
    text = type_text(field.annotation) + (f" ({bounds})" if bounds else "") + (f"; {about}" if about else "")
    return textwrap.shorten(text, COMMENT_WIDTH, placeholder="...")


def _section_about(model: type[BaseModel], name: str) -> str:
    """What a section key without a meaning of its own is: the command's line, or the first
    line of its class's docstring."""
    from scalarize.cli.reference import _command_sections, _nested

    if name in _command_sections():
        return _command_sections()[name][1]
    nested = _nested(model.model_fields[name].annotation)
    return (nested.__doc__ or "").strip().split("\n")[0] if nested is not None else ""


def _render(model: type[BaseModel], values: dict[str, Any], depth: int = 0) -> list[str]:
    """The YAML lines of one section: each key, its value, its comment; sections nested."""
    from scalarize.cli.reference import _nested

    pad, lines = "  " * depth, []
    for name in model.model_fields:
        value, nested = values.get(name), _nested(model.model_fields[name].annotation)
        if nested is not None and isinstance(value, dict) and value and set(value) <= set(nested.model_fields):
            lines.append(f"{pad}{name}:  # {_comment(model, name)}")
            lines += _render(nested, value, depth + 1)
        else:
            lines.append(f"{pad}{name}: {_flow(value)}  # {_comment(model, name)}")
    return lines


def starter(command: str = "train", benchmark: str | None = None) -> str:
    """The text of a starter config for ``command`` (see the module's docstring)."""
    from scalarize import __version__

    if command not in COMMANDS:
        raise UsageError(f"--command: unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    if benchmark is not None:
        _check_benchmark(benchmark)
    values, example = _values(command, benchmark)
    head = [
        f"# A starter config for `scalarize {command}`, written by `scalarize init` (scalarize {__version__}).",
        "# Every key with its value and a comment: type (bounds); meaning. Delete what you keep at its",
        "# default; `scalarize config SECTION` says more about a section's keys.",
    ]
    if example is not None:
        head.append(f"# Values from the shipped example {example} ({shipped_configs_text()}).")
    usage = f"# Run: scalarize {command} THIS_FILE"
    return "\n".join([*head, usage, "", *_render(schema_of(command), values)]) + "\n"


def _check_benchmark(name: str) -> None:
    from scalarize.data.registry import available_benchmarks

    names = available_benchmarks()
    if name not in names:
        raise UsageError(f"--benchmark: unknown benchmark {name!r}; allowed: {', '.join(names)}")
