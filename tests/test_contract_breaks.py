"""A user's own model, data and task kind that break the contract fail in one line, exit 2,
before anything is written (no scalarize.db, no run directory), and the fixed rerun trains
(issue 24, items 9 and 5; the broken pieces are in tests/contract_plugins.py)."""

from __future__ import annotations

import os
import sqlite3
import zipfile

import numpy as np
import pytest

from scalarize.cli.main import main

BASE = """
name: contract
benchmark: {target: "contract_plugins:benchmark"}
model: {target: "contract_plugins:net"}
epochs: 1
batch_size: 16
device: cpu
stl: false
"""


def _run(tmp_path, *overrides: str, command: str = "train", extra: str = "") -> int:
    config = tmp_path / "c.yaml"
    config.write_text(BASE + extra)
    return main([command, str(config), f"output={tmp_path / 'out'}", "-q", *overrides])


def _refused(tmp_path, capsys, expected: list[str], *overrides: str, command: str = "train", extra: str = "") -> str:
    assert _run(tmp_path, *overrides, command=command, extra=extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("scalarize: error: "), err
    for part in expected:
        assert part in err, (part, err)
    assert not (tmp_path / "out").exists()  # nothing written: no scalarize.db, no run directory
    return err


# -- the head's width against its task ---------------------------------------------------------------
@pytest.mark.parametrize("target", ["contract_plugins:net", "contract_plugins:trunk_and_heads"])
def test_a_head_too_narrow_for_its_classes_is_one_line_and_the_fixed_rerun_trains(tmp_path, capsys, target):
    _refused(
        tmp_path,
        capsys,
        ["task 'a' (multiclass)", "head gives 2 output(s) per sample", "the task needs 4"],
        f"model.target={target}",
        "model.options.a=2",
    )
    assert _run(tmp_path, f"model.target={target}") == 0  # not "trained with another configuration"
    with sqlite3.connect(tmp_path / "out" / "scalarize.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("completed",)]


def test_a_head_wider_than_its_task_is_refused(tmp_path, capsys):
    _refused(tmp_path, capsys, ["task 'a' (multiclass)", "head gives 6 output(s)", "needs 4"], "model.options.a=6")


def test_a_narrow_head_in_python_names_the_width_not_the_labels():
    import contract_plugins

    from scalarize.methods import build_method
    from scalarize.train import TrainConfig, Trainer

    bench = contract_plugins.benchmark()
    with pytest.raises(
        ValueError,
        match=r"task 'a' \(multiclass\): the model's head gives 2 output\(s\) per sample "
        r"\(output \[2, 2\]\) but the task needs 4",
    ):
        Trainer(
            TrainConfig(steps=1, device="cpu"),
            bench,
            contract_plugins.net(a=2),
            build_method("scalarization"),
            progress=False,
        )


# -- what forward returns, and what the data holds -------------------------------------------------
@pytest.mark.parametrize(
    "mode, expected",
    [
        ("dict", ["the model's forward returned only {task: output}", "the contract is (features, {task: output})"]),
        ("three", ["the model's forward returned a tuple of 3 value(s)", "the contract is (features, {task: output})"]),
        ("swapped", ["the model's forward returned a tuple of 2 value(s) (dict, Tensor)", "the second a dict"]),
    ],
)
def test_a_forward_that_breaks_the_contract_is_one_line(tmp_path, capsys, mode, expected):
    _refused(tmp_path, capsys, expected, f"model.options.mode={mode}")


def test_targets_under_a_wrong_task_name_are_one_line(tmp_path, capsys):
    _refused(
        tmp_path,
        capsys,
        ["the training data has no target for task(s) ['a']", "its targets are ['c', 'b']", "(input, {task: target})"],
        "benchmark.target=contract_plugins:wrong_names",
    )


def test_numpy_inputs_in_the_items_train_with_a_built_in_family(tmp_path):
    import contract_plugins

    assert contract_plugins.numpy_inputs().input_shape == (6,)
    assert (
        _run(
            tmp_path,
            "benchmark.target=contract_plugins:numpy_inputs",
            "model.target=null",
            "model.family=mlp",
            "model.width=0.1",
        )
        == 0
    )


# -- a user's task kind ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "name, expected",
    [
        ("NeverComputed", ["its primary metric 'acc' is never computed", "compute() returns 'accuracy'"]),
        ("ListCompute", ["its accumulator's compute() returned a list", "{metric: number}"]),
        ("NoAccumulator", ["its kind has no accumulator()", "MetricAccumulator"]),
        ("MeanOnly", ["loss(output, target, reduction='none') gave [] for a batch of 2", "one loss per sample, [2]"]),
    ],
)
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_a_task_kind_that_breaks_its_contract_is_one_line_before_anything_is_written(
    tmp_path, capsys, name, expected, command
):
    extra = "sweep: {step: 0.5}\n" if command == "sweep" else ""
    _refused(
        tmp_path,
        capsys,
        [f"task 'a' (contract_plugins:{name})", *expected],
        "benchmark.target=contract_plugins:kind",
        f"benchmark.options.name={name}",
        command=command,
        extra=extra,
    )


# -- a loader worker that dies --------------------------------------------------------------------
def test_a_killed_loader_worker_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SCALARIZE_WORKERS", "1")
    assert _run(tmp_path, "benchmark.target=contract_plugins:killing_workers") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a data loader worker (pid " in err and "run the same command again" in err, err


def test_torchs_own_dead_worker_errors_are_one_line():
    from scalarize.cli.errors import describe

    for text in (
        "DataLoader worker (pid 4242) is killed by signal: Killed. ",
        "DataLoader worker (pid(s) 4242, 4243) exited unexpectedly",
    ):
        line = describe(RuntimeError(text))
        assert line is not None and line.startswith("a data loader worker (pid 4242") and "\n" not in line
    assert describe(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) is None  # a bug keeps its traceback


# -- item 5: sizes before allocating, a truncated cache ------------------------------------------
SYNTHETIC = (
    "name: s\nbenchmark: {name: synthetic, options: {num_tasks: 2, train_size: 40, val_size: 20, test_size: 20}}\n"
)


@pytest.mark.parametrize(
    "option",
    [
        "benchmark.options.train_size=10000000000",
        "benchmark.options.val_size=10000000000",
        "benchmark.options.input_dim=1000000",
    ],
)
def test_a_synthetic_benchmark_too_large_for_memory_is_refused_before_allocating(tmp_path, capsys, option, monkeypatch):
    import scalarize.data.sizes as sizes

    if "input_dim" in option:  # 80 samples of 1,000,000 inputs: ~0.6 GiB to build; refuse it on a 64 MiB machine
        monkeypatch.setattr(sizes, "memory_bytes", lambda: 64 * 2**20)
    config = tmp_path / "c.yaml"
    config.write_text(SYNTHETIC + "epochs: 1\ndevice: cpu\nstl: false\n")
    assert main(["train", str(config), f"output={tmp_path / 'out'}", "-q", option]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "of memory to build the synthetic benchmark; this machine has" in err, err
    assert not (tmp_path / "out").exists()


def test_multimnist_too_large_for_memory_is_refused():
    from scalarize.data.errors import BenchmarkError
    from scalarize.data.registry import load_benchmark

    with pytest.raises(
        BenchmarkError, match=r"train_size=10,000,000,000 needs about .* TiB of memory to build multimnist"
    ):
        load_benchmark("multimnist", train_size=10**10)


@pytest.mark.parametrize("damage", ["truncate", "zeros", "garbage-member"])
def test_a_truncated_cache_entry_is_rebuilt(tmp_path, monkeypatch, damage):
    from scalarize.data.cache import cached_arrays

    monkeypatch.setenv("SCALARIZE_CACHE", str(tmp_path / "cache"))
    arrays = {"x": np.arange(5000, dtype=np.int64).reshape(50, 100), "y": np.ones(7)}
    built = []

    def build():
        built.append(1)
        return {k: v.copy() for k, v in arrays.items()}

    cached_arrays("t", {"k": 1}, build)
    (path,) = (tmp_path / "cache").glob("t-*.npz")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "zeros":
        path.write_bytes(bytes(len(data)))
    else:  # a whole zip whose compressed member is corrupt
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("x.npy", b"\x93NUMPY not really")
    again = cached_arrays("t", {"k": 1}, build)
    assert len(built) == 2 and all(np.array_equal(again[k], arrays[k]) for k in arrays)
    assert all(np.array_equal(np.load(path)[k], arrays[k]) for k in arrays)  # the entry was rewritten whole


def test_a_truncated_multimnist_cache_is_rebuilt_by_the_command(tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SCALARIZE_CACHE", str(cache))
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: m\nbenchmark: {name: multimnist, options: {train_size: 60, test_size: 20}}\n"
        "model: {width: 0.1}\nsteps: 2\ndevice: cpu\nstl: false\n"
    )
    assert main(["train", str(config), f"output={tmp_path / 'a'}", "-q"]) == 0
    from scalarize.train import setup

    setup._LOADED.clear()  # this process loaded it: read the cache again
    (path,) = cache.glob("multimnist-*.npz")
    path.write_bytes(path.read_bytes()[:100])
    assert main(["train", str(config), f"output={tmp_path / 'b'}", "-q"]) == 0, capsys.readouterr().err
    with np.load(path) as rebuilt:
        assert rebuilt["train_x"].shape == (60, 28, 28)


# -- Ray: relative data paths are resolved against the launch directory ------------------------------
@pytest.mark.parametrize("command, section", [("pbt", "pbt: {population: 2}\n"), ("sweep", "sweep: {step: 0.5}\n")])
def test_relative_data_paths_are_made_absolute_for_ray_trials(tmp_path, monkeypatch, command, section):
    from scalarize.experiments.loading import load_experiment_config
    from scalarize.experiments.pbt import PBTConfig
    from scalarize.experiments.sweep import SweepConfig

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: r\nbenchmark: {target: 'contract_plugins:benchmark', options: {}}\n"
        "model: {target: 'contract_plugins:net', options: {}}\n" + section
    )
    schema = PBTConfig if command == "pbt" else SweepConfig
    overrides = [
        "benchmark.options.root=data/nyu",
        "benchmark.options.cache_dir=~/c",
        "model.options.weights_path=w.pt",
        "benchmark.options.url_path=s3://b/x",
        "benchmark.options.mode=data",
        "benchmark.options.kill=false",
    ]
    ray = load_experiment_config(str(config), [*overrides, f"{command}.backend=ray"], schema, section=command)
    assert ray.benchmark.options["root"] == str(tmp_path / "data" / "nyu")
    assert ray.benchmark.options["cache_dir"] == os.path.expanduser("~/c")
    assert ray.model.options["weights_path"] == str(tmp_path / "w.pt")
    assert ray.benchmark.options["url_path"] == "s3://b/x" and ray.benchmark.options["mode"] == "data"
    local = load_experiment_config(str(config), overrides, schema, section=command)
    assert local.benchmark.options["root"] == "data/nyu"  # the local backend keeps the path as written
