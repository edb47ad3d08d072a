"""Mutation testing of one core package at a time, with mutmut 3 (not a CI step).

A mutant is a copy of the code with one small change (``<`` for ``<=``, ``+ 1`` for ``+ 2``, a
dropped argument ...). A test suite that pins behaviour fails on it ("kills" it); a surviving
mutant is a behaviour no test checks, or an *equivalent* mutant that cannot change behaviour
(listed, with reasons, in ``docs/mutation.md``).

    python benchmarks/mutation.py --package search [--minutes 20] [--survivors]
    python benchmarks/mutation.py --package trainer --sample 150 [--seed 0]
    python benchmarks/mutation.py --package methods --files 'src/scalarize/methods/mgda.py'
    make mutation PACKAGE=pareto MINUTES=10

mutmut checks the mutants whose tests are fastest first, so a run cut short by ``--minutes`` is
biased towards them. ``--sample N`` checks N mutants drawn at random (seeded) instead, an
unbiased estimate of the package's kill rate when the whole package takes hours (the trainer's
and the stacked engine's tests train models); the JSON gives its 95% interval.

Runs in a temporary copy of ``src/`` and ``tests/`` (nothing in the working tree changes):
mutmut mutates only the package's files and runs only its related tests (below), on one worker
with ``OMP_NUM_THREADS=1`` and a fixed Hypothesis seed, and is interrupted after ``--minutes``
(the mutants checked by then count). Prints JSON: the counts by status and the kill rate,
``killed / (killed + survived)`` (timeouts and segfaults count as killed, like mutmut's own
summary; mutants that no test reaches are reported apart as ``no_tests``), and with
``--survivors`` the name and diff of each surviving mutant.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: package -> (files to mutate, related tests). Globs, relative to the repository root.
PACKAGES: dict[str, tuple[list[str], list[str]]] = {
    "methods": (
        ["src/scalarize/methods/*.py"],
        ["tests/methods", "tests/test_scalarization.py", "tests/test_set_weights.py"],
    ),
    "search": (
        ["src/scalarize/search/*.py"],
        ["tests/test_pbt_policy.py", "tests/test_designs.py", "tests/test_search_*.py"],
    ),
    "pareto": (["src/scalarize/pareto/*.py"], ["tests/test_pareto.py", "tests/test_pareto_*.py"]),
    "sampling": (
        ["src/scalarize/data/sampling.py"],
        [
            "tests/test_sampler_properties.py",
            "tests/test_sampler_behaviour.py",
            "tests/test_data.py",
            "tests/test_mixture_passes.py",
        ],
    ),
    "trainer": (
        ["src/scalarize/train/trainer.py"],
        [
            "tests/test_trainer.py",
            "tests/test_trainer_behaviour.py",
            "tests/test_selection.py",
            "tests/test_step_guards.py",
            "tests/test_resume.py",
            "tests/test_trainer_pins.py",
            "tests/test_trainer_guard.py",
            "tests/test_progress_bars.py",
            "tests/test_selection_engines.py",
            "tests/test_resume_best.py",
            "tests/test_ranking_direction.py",
            "tests/test_record_pins.py",
        ],
    ),
    "stacked": (
        ["src/scalarize/population/stacked.py"],
        [
            "tests/test_population.py",
            "tests/test_stacked_behaviour.py",
            "tests/test_selection.py",
            "tests/test_resume.py",
            "tests/test_stacked_pins.py",
            "tests/test_progress_bars.py",
            "tests/test_selection_engines.py",
            "tests/test_resume_best.py",
        ],
    ),
}

#: Files beside src/ and tests/ that some tests read (copied into the work folder and mutmut's).
DOCUMENTS = ["README.md", "docs"]  # the tests that check the docs against the code read them

KILLED = {"killed", "timeout", "segfault", "caught_by_type_check"}


def related_tests(patterns: list[str]) -> list[str]:
    found = sorted({p for pattern in patterns for p in glob.glob(pattern, root_dir=ROOT)})
    if not found:
        raise SystemExit(f"no tests match {patterns}")
    return found


def config_toml(mutate: list[str], tests: list[str]) -> str:
    """pyproject.toml of the temporary copy: mutmut's settings and pytest's."""

    def toml_list(items: list[str]) -> str:
        return "[" + ", ".join(json.dumps(x) for x in items) + "]"

    return (
        "[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {toml_list(mutate)}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "--hypothesis-seed=0"]\n'
        "use_git_change_detection = false\n"
        f"also_copy = {toml_list(DOCUMENTS)}\n"
        "\n[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'markers = ["slow: integration tests that train for real (run in CI)"]\n'
    )


def prepare(workdir: Path, mutate: list[str], tests: list[str]) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", ".hypothesis")
    shutil.copytree(ROOT / "src", workdir / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", workdir / "tests", ignore=ignore)
    for document in DOCUMENTS:  # tests that check the README and the docs against the code read them
        if (ROOT / document).is_dir():
            shutil.copytree(ROOT / document, workdir / document, ignore=ignore)
        else:
            shutil.copy2(ROOT / document, workdir / document)
    (workdir / "pyproject.toml").write_text(config_toml(mutate, tests))


NO_MUTANT = "no-such-mutant"  # a name that matches none: mutmut generates, collects its stats, stops


def run_mutmut(workdir: Path, minutes: float, log, names: list[str] = ()) -> bool:
    """mutmut on one worker (on ``names`` only, if given) until done or ``minutes``; True when it
    finished in time."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONHASHSEED="0")
    env.pop("PYTHONPATH", None)  # the mutated copy must be the one imported
    mutmut = [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names]
    process = subprocess.Popen(
        mutmut, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        process.wait(timeout=minutes * 60)
        return True
    except subprocess.TimeoutExpired:
        stop(process)
        return False
    except KeyboardInterrupt:  # mutmut runs in its own session: stop it with us
        stop(process)
        raise


def stop(process: subprocess.Popen) -> None:
    """Interrupt mutmut (it saves what it has checked), then end its process group."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the group mutmut's own workers belong to
    except ProcessLookupError:
        pass
    process.wait()


def statuses(workdir: Path) -> dict[str, tuple[str, str]]:
    """Mutant name -> (status, source path), from mutmut's ``.meta`` files."""
    from mutmut.stats import status_by_exit_code

    out: dict[str, tuple[str, str]] = {}
    mutants = workdir / "mutants"
    for meta in sorted(mutants.rglob("*.meta")):
        source = str(meta.relative_to(mutants))[: -len(".meta")]
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out[name] = (status_by_exit_code[code].replace(" ", "_"), source)
    return out


def sample_names(workdir: Path, size: int, seed: int, log) -> list[str]:
    """``size`` mutant names drawn at random (with ``seed``) from those mutmut generates."""
    run_mutmut(workdir, 30, log, [NO_MUTANT])
    names = sorted(name for name, (state, _) in statuses(workdir).items() if state != "no_tests")
    if not names:
        raise SystemExit("mutmut generated no mutant with tests; see " + str(workdir / "mutmut.log"))
    return sorted(random.Random(seed).sample(names, min(size, len(names))))


def interval(killed: int, survived: int) -> list[float] | None:
    """The 95% Wilson interval of the kill rate of a sample."""
    n = killed + survived
    if not n:
        return None
    z, p = 1.96, killed / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(centre - half, 4), round(centre + half, 4)]


def summary(status: dict[str, tuple[str, str]]) -> dict[str, object]:
    counts: dict[str, int] = {}
    for value, _ in status.values():
        counts[value] = counts.get(value, 0) + 1
    killed = sum(n for s, n in counts.items() if s in KILLED)
    survived = counts.get("survived", 0)
    rate = killed / (killed + survived) if killed + survived else None
    return {
        "mutants": len(status),
        "counts": counts,
        "killed": killed,
        "survived": survived,
        "kill_rate": None if rate is None else round(rate, 4),
    }


def survivor_diffs(workdir: Path, status: dict[str, tuple[str, str]]) -> dict[str, str]:
    """The diff of each surviving mutant (mutmut's own ``show``, run in ``workdir``)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    here = os.getcwd()
    os.chdir(workdir)
    try:
        return {
            name: get_diff_for_mutant(name, path=source)
            for name, (state, source) in sorted(status.items())
            if state == "survived"
        }
    finally:
        os.chdir(here)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--package", required=True, choices=sorted(PACKAGES))
    parser.add_argument("--minutes", type=float, default=20.0, help="time limit (default 20)")
    parser.add_argument("--survivors", action="store_true", help="add the surviving mutants' diffs")
    parser.add_argument("--keep", type=Path, help="work in this (new) folder and keep it")
    parser.add_argument("--files", nargs="+", help="mutate only these files (globs; default: the package's)")
    parser.add_argument("--sample", type=int, help="check this many mutants drawn at random, not all")
    parser.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix=f"mutation-{args.package}-"))
    workdir.mkdir(parents=True, exist_ok=True)
    mutate, tests = args.files or PACKAGES[args.package][0], related_tests(PACKAGES[args.package][1])
    try:
        prepare(workdir, mutate, tests)
        start = time.monotonic()
        names: list[str] = []
        with open(workdir / "mutmut.log", "w") as log:
            if args.sample:
                names = sample_names(workdir, args.sample, args.seed, log)
            finished = run_mutmut(workdir, args.minutes, log, names)
        status = statuses(workdir)
        if names:
            status = {name: status[name] for name in names if name in status}
        report = {
            "package": args.package,
            "mutate": mutate,
            "tests": tests,
            "finished": finished,
            "seconds": round(time.monotonic() - start, 1),
            **summary(status),
        }
        if names:
            report.update(sample=len(names), seed=args.seed, interval_95=interval(report["killed"], report["survived"]))
        if not status:
            report["log_tail"] = (workdir / "mutmut.log").read_text()[-2000:]
        if args.survivors:
            report["survivors"] = survivor_diffs(workdir, status)
        print(json.dumps(report, indent=2))
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
