"""Follows a run's config from `scalarize train` to the first training step, as a call trace.

    python scripts/config_trace.py [--json]

Runs `scalarize train` in-process on a tiny config (MultiMNIST, 2 steps, no single-task runs)
under ``sys.setprofile`` and records every call into the package whose frame holds the config
(the ``TrainConfig`` itself or one of its sections, under any name, or an object holding it as
``.config``, such as a Trainer; not the config's own methods). The trace ends at the first
training step (``Trainer._step``). Consecutive calls in one file are one *stop*; a stop in a file
the trace had already left is a *re-entry*. Prints each stop and the counts (``--json``: JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from pydantic import BaseModel

import scalarize

PACKAGE = Path(scalarize.__file__).resolve().parent  # the scalarize imported (PYTHONPATH=src for a work tree)


class StepReached(Exception):
    pass


def _is_config(value) -> bool:
    return isinstance(value, BaseModel) and type(value).__module__ == "scalarize.train.config"


def _holds_config(frame) -> bool:
    """Whether a call takes the config (or a section) as an argument; the config's own methods
    (``self`` a config) are the config answering, not a stop on its way."""
    if _is_config(frame.f_locals.get("self")):
        return False
    return any(_is_config(value) or _is_config(_held(value)) for value in frame.f_locals.values())


def _held(value):
    """``value.config`` when ``value`` holds one as an attribute (a Trainer, a population)."""
    attributes = getattr(value, "__dict__", None)
    return attributes.get("config") if isinstance(attributes, dict) else None


def trace() -> list[tuple[str, str]]:
    """The (file, function) of every call holding the config, in order, to the first step."""
    import scalarize.cli.main as cli

    calls: list[tuple[str, str]] = []

    def profile(frame, event, arg):
        if event != "call":
            return
        path = frame.f_code.co_filename
        if not path.startswith(str(PACKAGE)):
            return
        if frame.f_code.co_name == "_step" and path.endswith("train/trainer.py"):
            raise StepReached
        if _holds_config(frame):
            calls.append((str(Path(path).relative_to(PACKAGE)), frame.f_code.co_qualname))

    with tempfile.TemporaryDirectory() as directory:
        config = Path(directory) / "tiny.yaml"
        config.write_text(
            "name: trace\nbenchmark: {name: multimnist, options: {train_size: 40, test_size: 20}}\n"
            "model: {family: mlp, width: 0.05, depth: 1}\nsteps: 2\nbatch_size: 20\nstl: false\n"
            f"device: cpu\noutput: {directory}/out\n"
        )
        os.environ.setdefault("TQDM_DISABLE", "1")
        sys.setprofile(profile)
        try:
            cli.main(["train", str(config), "-q"])
        except StepReached:
            pass
        finally:
            sys.setprofile(None)
    return calls


def stops(calls: list[tuple[str, str]]) -> list[dict]:
    """Consecutive calls in one file merged into one stop; ``reentry``: the file was left before."""
    result: list[dict] = []
    left: set[str] = set()
    for file, function in calls:
        if result and result[-1]["file"] == file:
            if function not in result[-1]["functions"]:
                result[-1]["functions"].append(function)
            continue
        if result:
            left.add(result[-1]["file"])
        result.append({"file": file, "functions": [function], "reentry": file in left})
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    route = stops(trace())
    visits: dict[str, int] = {}
    for stop in route:
        visits[stop["file"]] = visits.get(stop["file"], 0) + 1
    summary = {
        "stops": len(route),
        "files": len(visits),
        "reentries": sum(s["reentry"] for s in route),
        "visits": dict(sorted(visits.items(), key=lambda kv: -kv[1])),
    }
    if args.json:
        print(json.dumps({**summary, "route": route}, indent=1))
        return
    for index, stop in enumerate(route, 1):
        mark = "  (again)" if stop["reentry"] else ""
        print(f"{index:3d}. {stop['file']:<32} {', '.join(stop['functions'][:4])}{mark}")
    print(
        f"{summary['stops']} stops in {summary['files']} files, {summary['reentries']} re-entries; "
        f"visits: {summary['visits']}"
    )


if __name__ == "__main__":
    main()
