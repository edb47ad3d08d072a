"""A shared experiment directory is data, not code (issue 24, items 8, 1 and 2).

* An import path in a stored config (``model.target``, ``benchmark.target``, a task kind) is never
  imported or called unless the user trusts the directory: ``scalarize.load(dir, trust=True)``,
  ``scalarize pbt replay DIR --trust``, or the user hands over the object (``builders=``). A
  planted ``"os:system"`` with a ``touch`` command must never run.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import doors_plugins
import pytest
import torch

import scalarize
from scalarize.cli.main import main
from scalarize.errors import ScalarizeError
from scalarize.experiments.train import run_experiment
from scalarize.train.config import TrainConfig

SYNTHETIC = "{name: synthetic, options: {num_tasks: 2, train_size: 60, val_size: 20, test_size: 20}}"
BASE = (
    f"name: s\nbenchmark: {SYNTHETIC}\nmodel: {{width: 0.125, depth: 1}}\nepochs: 1\nbatch_size: 20\n"
    "device: cpu\nstl: false\n"
)
SECTIONS = {
    "train": "",
    "sweep": "sweep: {step: 0.5}\n",
    "pbt": "pbt: {population: 2, interval: 1, compare_uniform: false}\n",
    "compare": "compare: {methods: [{name: pcgrad}], seeds: [0]}\n",
    "study": "study: {depths: [1], widths: [0.125], groups: [[task0, task1]], sweep: {step: 1.0}}\n",
}


def _plant(directory: Path, change, runs: str | None = None) -> None:
    """Rewrites the stored config of every run (or of ``runs``) in ``directory``'s database."""
    with sqlite3.connect(directory / "scalarize.db") as db:
        for name, text in db.execute("SELECT name, config FROM runs").fetchall():
            if runs is None or name == runs:
                config = json.loads(text)
                change(config)
                db.execute("UPDATE runs SET config = ? WHERE name = ?", (json.dumps(config), name))


def _model_runs_a_command(marker: Path):
    def change(config):
        config["model"].update(target="os:system", options={"command": f"touch {marker}"})

    return change


def _benchmark_runs_a_command(marker: Path):
    def change(config):
        config["benchmark"].update(target="os:system", name="custom", options={"command": f"touch {marker}"})

    return change


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("security") / "out"
    config = TrainConfig(
        name="t",
        benchmark={"name": "synthetic", "options": {"num_tasks": 2, "train_size": 60, "val_size": 20, "test_size": 20}},
        model={"width": 0.125, "depth": 1},
        epochs=1,
        batch_size=20,
        stl=False,
        device="cpu",
        output=str(directory),
    )
    run_experiment(config, progress=False)
    return directory


def _copy(trained: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    return copy


@pytest.mark.parametrize("plant", [_model_runs_a_command, _benchmark_runs_a_command])
def test_load_never_calls_a_stored_import_path(trained, tmp_path, plant):
    copy, marker = _copy(trained, tmp_path), tmp_path / "ran"
    _plant(copy, plant(marker))
    with pytest.raises(ScalarizeError, match=r"'os:system'.*not imported.*trust=True") as error:
        scalarize.load(copy)
    assert "\n" not in str(error.value)
    assert not marker.exists()


def test_load_with_trust_imports_it(trained, tmp_path):
    copy, marker = _copy(trained, tmp_path), tmp_path / "ran"
    _plant(copy, _model_runs_a_command(marker))
    with pytest.raises(ScalarizeError):  # os.system is no model builder, but the user asked for it
        scalarize.load(copy, trust=True)
    assert marker.exists()


def test_a_stored_task_kind_path_is_refused_too(trained, tmp_path):
    copy = _copy(trained, tmp_path)
    _plant(copy, lambda c: c["benchmark"].update(tasks={"task0": {"kind": "os:system"}}))
    with pytest.raises(ScalarizeError, match=r"benchmark.tasks.task0: .*'os:system'.*not imported"):
        scalarize.load(copy)


def test_built_in_families_and_benchmarks_load_as_before(trained):
    assert scalarize.load(trained).name == "t"


@pytest.fixture(scope="module")
def own_pieces(tmp_path_factory):
    """A run trained from the user's own benchmark, task kind and model (import paths)."""
    directory = tmp_path_factory.mktemp("own") / "out"
    config = TrainConfig(
        name="d",
        benchmark={"target": "doors_plugins:digits_benchmark", "options": {"size": 200}},
        model={"target": "doors_plugins:trunk_and_heads", "options": {"hidden": 8}},
        epochs=1,
        batch_size=50,
        stl=False,
        device="cpu",
        output=str(directory),
    )
    run_experiment(config, progress=False)
    return directory


def test_the_users_own_import_paths_need_trust_or_the_objects(own_pieces):
    with pytest.raises(ScalarizeError, match=r"benchmark.target: 'doors_plugins:digits_benchmark'.*not imported"):
        scalarize.load(own_pieces)
    assert scalarize.load(own_pieces, trust=True).name == "d"
    builders = {
        "doors_plugins:digits_benchmark": doors_plugins.digits_benchmark,
        "doors_plugins:trunk_and_heads": doors_plugins.trunk_and_heads,
        "doors_plugins:FocalKind": doors_plugins.FocalKind,
    }
    run = scalarize.load(own_pieces, builders=builders)
    assert run.name == "d" and set(run.predict(torch.zeros(2, 64))) == {"digit", "large"}


def _write(tmp_path: Path, command: str) -> Path:
    path = tmp_path / f"{command}.yaml"
    path.write_text(BASE + f"output: {tmp_path / 'out'}\n" + SECTIONS[command])
    return path


@pytest.fixture(scope="module")
def pbt_directory(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("pbt")
    assert main(["pbt", str(_write(tmp_path, "pbt")), "-q"]) == 0
    return tmp_path / "out"


@pytest.mark.parametrize("plant", [_model_runs_a_command, _benchmark_runs_a_command])
def test_pbt_replay_never_calls_a_stored_import_path(pbt_directory, tmp_path, capsys, plant):
    copy, marker = _copy(pbt_directory, tmp_path), tmp_path / "ran"
    _plant(copy, plant(marker))
    capsys.readouterr()
    assert main(["pbt", "replay", str(copy), "--seeds", "0", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'os:system'" in err and "--trust" in err, err
    assert not marker.exists()
    with sqlite3.connect(copy / "scalarize.db") as db:
        assert not db.execute("SELECT name FROM runs WHERE name LIKE '%replay%'").fetchall()


def test_pbt_replay_with_trust_imports_it(pbt_directory, tmp_path, capsys):
    copy, marker = _copy(pbt_directory, tmp_path), tmp_path / "ran"
    _plant(copy, _benchmark_runs_a_command(marker))
    assert main(["pbt", "replay", str(copy), "--seeds", "0", "-q", "--trust"]) == 2  # not a Benchmark
    assert marker.exists()


def test_trust_is_only_for_replay(tmp_path, capsys):
    assert main(["pbt", str(_write(tmp_path, "pbt")), "--trust"]) == 2
    assert "--trust: only for `scalarize pbt replay DIRECTORY`" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", sorted(SECTIONS))
def test_resume_never_calls_a_stored_import_path(tmp_path, capsys, command, one_thread):
    """Each command reruns into a directory whose stored configs were edited to run a command:
    it trains or reads back from the config the user gives, and never imports the stored ones."""
    path, marker = _write(tmp_path, command), tmp_path / "ran"
    assert main([command, str(path), "-q"]) == 0
    _plant(tmp_path / "out", _model_runs_a_command(marker))
    _plant(tmp_path / "out", _benchmark_runs_a_command(marker))
    with sqlite3.connect(tmp_path / "out" / "scalarize.db") as db:
        db.execute("UPDATE runs SET status = 'running'")  # as if killed: resumed, not read back
    assert main([command, str(path), "-q"]) == 0
    assert not marker.exists()


# -- item 1: never write through a planted symlink -----------------------------------------------
EXTRA = {"replay": ["pbt", "replay"], "export": ["export"]}
SKIP = ("scalarize.db", "scalarize.db-wal", "scalarize.db-shm", "scalarize.db-journal", ".scalarize.lock")


def _argv(command: str, tmp_path: Path, directory: Path) -> list[str]:
    if command == "replay":
        return ["pbt", "replay", str(directory), "--seeds", "0", "-q"]
    if command == "export":
        return ["export", str(directory), "--csv"]
    return [command, str(_write(tmp_path, command)), f"output={directory}", "-q"]


def _prepare(command: str, tmp_path: Path, directory: Path) -> None:
    """What a command reads before it writes: PBT's result for a replay, any store for export."""
    if command in ("replay", "export"):
        assert main(["pbt", str(_write(tmp_path, "pbt")), f"output={directory}", "-q"]) == 0


def _written(directory: Path, before: set[Path]) -> list[Path]:
    """The files under ``directory`` not in ``before`` (relative), the database's own excluded."""
    return sorted(
        p.relative_to(directory)
        for p in directory.rglob("*")
        if p.is_file() and p.name not in SKIP and p.relative_to(directory) not in before
    )


def _files(directory: Path) -> set[Path]:
    return {p.relative_to(directory) for p in directory.rglob("*") if p.is_file()} if directory.exists() else set()


COMMANDS = ["train", "sweep", "pbt", "compare", "study", "replay", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_no_command_writes_through_a_planted_symlink(tmp_path, capsys, command, one_thread):
    """A first run into ``a`` says which files the command writes; into ``b`` every one of them
    is planted first as a link to a file outside: the command still succeeds, the links are
    replaced by the command's files, and nothing outside was created or changed."""
    first, second, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    _prepare(command, tmp_path, first)
    before = _files(first)
    assert main(_argv(command, tmp_path, first)) == 0
    written = _written(first, before)
    assert any(p.suffix == ".png" for p in written) or command == "export"
    _prepare(command, tmp_path, second)
    outside.mkdir()
    (outside / "kept").write_text("kept")
    links = {}
    for index, relative in enumerate(written):
        report = relative.parent == Path(".") and relative.suffix in (".md", ".html", ".png", ".csv")
        # a report file links to an existing file or to none yet; a checkpoint or model to none
        # (an existing one would be read, and refused, as a checkpoint to resume from)
        target = outside / ("kept" if report and index % 2 else f"absent-{index}")
        (second / relative).parent.mkdir(parents=True, exist_ok=True)
        (second / relative).unlink(missing_ok=True)
        (second / relative).symlink_to(target)
        links[relative] = target
    capsys.readouterr()
    assert main(_argv(command, tmp_path, second)) == 0, capsys.readouterr().err
    assert sorted(p.name for p in outside.iterdir()) == ["kept"] and (outside / "kept").read_text() == "kept"
    for relative in links:
        path = second / relative
        assert not path.is_symlink() and path.is_file(), relative


@pytest.mark.parametrize("name", ["scalarize.db", "scalarize.db-wal", "scalarize.db-shm"])
def test_a_planted_database_link_is_refused(tmp_path, capsys, name):
    outside, directory = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    directory.mkdir()
    (outside / "file").write_text("kept")
    (directory / name).symlink_to(outside / "file")
    assert main(_argv("train", tmp_path, directory)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a symlink" in err and name in err, err
    assert (outside / "file").read_text() == "kept" and sorted(p.name for p in outside.iterdir()) == ["file"]


def test_a_planted_runs_folder_link_is_refused(tmp_path, capsys):
    outside, directory = tmp_path / "outside", tmp_path / "out"
    outside.mkdir()
    directory.mkdir()
    (directory / "runs").symlink_to(outside, target_is_directory=True)
    assert main(_argv("train", tmp_path, directory)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs: a symlink inside the experiment directory" in err, err
    assert not list(outside.iterdir())


def test_a_rerun_never_writes_through_a_link_to_an_existing_file(tmp_path, capsys):
    """The issue's case: ``report.html`` (and every other report file) of a finished train
    replaced by a link to an outside file, then the same command again."""
    directory, secret = tmp_path / "out", tmp_path / "secret.txt"
    argv = _argv("train", tmp_path, directory)
    assert main(argv) == 0
    secret.write_text("secret")
    planted = [p for p in directory.iterdir() if p.is_file() and p.name not in SKIP]
    assert {"report.html", "report.md"} <= {p.name for p in planted}
    for path in planted:
        path.unlink()
        path.symlink_to(secret)
    assert main(argv) == 0
    assert secret.read_text() == "secret"
    assert all(p.is_file() and not p.is_symlink() for p in planted)


# -- item 2: the lock file ---------------------------------------------------------------------------
def test_a_planted_lock_link_is_refused_and_its_target_kept(tmp_path, capsys):
    outside, directory = tmp_path / "precious.txt", tmp_path / "out"
    directory.mkdir()
    outside.write_text("precious")
    (directory / ".scalarize.lock").symlink_to(outside)
    assert main(_argv("train", tmp_path, directory)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".scalarize.lock: a symlink" in err, err
    assert outside.read_text() == "precious"
    assert not (directory / "scalarize.db").exists()
