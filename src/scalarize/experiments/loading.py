"""How every command reads its config: the YAML file, the ``key=value`` overrides, and two checks
that only a file and its overrides together can make.

* **A method switched on the command line** (``method.name=pcgrad``) drops what the file set for
  the previous method and the new one does not take (its weights, its options), and says so in
  one line; what the command line itself sets is kept, so ``method.weights=[1,2]`` with a method
  that takes no weights is still an error.
* **The command's section** (``sweep:``, ``compare:``, ``pbt:``, ``study:``) must be in the
  file or set by an override: a plain training config given to ``scalarize sweep`` is an error,
  not a default 11-point sweep.
* **Another command's section is ignored** (a ``sweep:`` section given to ``scalarize train``,
  a ``pbt:`` section to ``scalarize sweep``): one file can serve several commands, and each reads
  its own keys. Only what the file holds is dropped; an override that sets another command's key
  (``scalarize train c.yaml sweep.step=0.1``) is still an unknown key.
* **Relative data paths under Ray** (``pbt.backend: ray``, ``sweep.backend: ray``): a Ray Tune
  trial runs in a directory of its own, so a relative ``benchmark.options.root`` (or another
  path option, :func:`resolve_launch_paths`) would name nothing there, and every trial would fail
  to build its benchmark. Such paths are made absolute against the directory the command was
  launched from before the config is planned, so the driver and its trials read the same files
  (and a builder error is the driver's one line, before any trial starts). The local backend
  keeps them as written.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from scalarize.train.config import ConfigError, apply_overrides, build_config, load_yaml

C = TypeVar("C", bound=BaseModel)

#: The commands that need a section of their own (the section is named after the command).
COMMAND_SECTIONS = ("sweep", "compare", "pbt", "study")


def load_experiment_config(
    path: str | Path | None,
    overrides: list[str] | None,
    schema: type[C],
    *,
    section: str | None = None,
    log: Callable[[str], None] | None = None,
) -> C:
    """The config of class ``schema`` from ``path`` and ``overrides``; ``section`` is the key the
    command needs (checked when a file is given); ``log`` receives the line saying what a
    method switch dropped."""
    overrides = list(overrides or [])
    data = load_yaml(path) if path is not None else {}
    drop_other_sections(data, schema)
    dropped = drop_for_method_switch(data, overrides)
    if dropped and log is not None:
        log(dropped)
    data = apply_overrides(data, overrides)
    if section is not None and path is not None:
        check_section(data, section, path)
    if section is not None and isinstance(data.get(section), dict) and data[section].get("backend") == "ray":
        resolve_launch_paths(data)
    return build_config(data, schema, source=path)


#: Options that name a file or folder: ``root``, ``path``, ``dir``, ``file`` and ``*_root``,
#: ``*_path``, ``*_dir``, ``*_file`` (``data_root``, ``weights_path``, ``cache_dir`` ...).
PATH_OPTION = re.compile(r"^(?:.*_)?(?:root|path|dir|file)$")


def resolve_launch_paths(data: dict[str, Any], cwd: str | None = None) -> None:
    """Makes the relative paths among ``benchmark.options`` and ``model.options`` (the keys
    :data:`PATH_OPTION` matches; ``~`` expanded, URLs kept) absolute against ``cwd`` (default: the
    working directory), in place."""
    base = cwd or os.getcwd()
    for section in ("benchmark", "model"):
        options = data.get(section, {}).get("options") if isinstance(data.get(section), dict) else None
        if not isinstance(options, dict):
            continue
        for key, value in options.items():
            if (
                isinstance(key, str)
                and PATH_OPTION.match(key)
                and isinstance(value, str)
                and value
                and "://" not in value
            ):
                options[key] = os.path.normpath(os.path.join(base, os.path.expanduser(value)))


def drop_other_sections(data: dict[str, Any], schema: type[BaseModel]) -> None:
    """Removes from the file's ``data`` (in place) the sections of the commands ``schema`` does
    not read (:data:`COMMAND_SECTIONS`): ``sweep:`` for a training config, ``pbt:`` for a sweep."""
    for section in COMMAND_SECTIONS:
        if section not in schema.model_fields:
            data.pop(section, None)


def check_section(data: dict[str, Any], section: str, path: str | Path) -> None:
    """A one-line error when the command's ``section`` is neither in the file nor overridden."""
    if section in data:
        return
    raise ConfigError(
        f"{path}: no {section}: section; `scalarize {section}` needs one (a starter: `scalarize init --command "
        f"{section}`; keys: `scalarize config {section}`)"
    )


def _override(overrides: list[str], key: str) -> Any:
    """The value the last ``key=value`` override gives, or ``None`` when there is none."""
    import yaml

    found = None
    for item in overrides:
        name, _, raw = item.partition("=")
        if name == key:
            try:
                found = yaml.safe_load(raw)
            except yaml.YAMLError:
                found = raw  # apply_overrides reports it
    return found


def drop_for_method_switch(data: dict[str, Any], overrides: list[str]) -> str | None:
    """Removes from the file's ``data`` (in place) the method weights and options that a method
    named by a ``method.name=`` override does not take; returns the line that says what went,
    or ``None`` when nothing did."""
    new = _override(overrides, "method.name")
    method = data.get("method")
    if not isinstance(new, str) or not isinstance(method, dict):
        return None
    old = method.get("name", "scalarization")
    if new == old:
        return None
    from scalarize.methods.registry import available_methods, method_options

    if new not in available_methods():
        return None  # the config's own check names the allowed methods
    allowed = method_options(new)
    if allowed is None:  # takes **kwargs: anything may be meant for it
        return None
    dropped = []
    if method.get("weights") is not None and "weights" not in allowed:
        dropped.append(f"method.weights {json.dumps(method.pop('weights'))}")
    options = method.get("options")
    if isinstance(options, dict):
        for key in [k for k in options if k not in allowed]:
            dropped.append(f"method.options.{key}")
            del options[key]
    if not dropped:
        return None
    return (
        f"method.name={new}: dropped {' and '.join(dropped)} set for {old} in the config file "
        f"({new} does not take {'it' if len(dropped) == 1 else 'them'})"
    )
