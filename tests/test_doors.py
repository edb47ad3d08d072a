"""The doors a user brings their own pieces through: a model (import path, registration, a plain
module), a task kind (import path) and a Dataset benchmark (import path), each through train,
sweep, pbt and compare (the user's pieces are in tests/doors_plugins.py)."""

import sqlite3

import doors_plugins
import pytest
import torch
from torch import nn

from scalarize.cli.main import main
from scalarize.data import Benchmark, Task
from scalarize.methods import build_method
from scalarize.models import ModuleModel, build_model, register_model
from scalarize.train import TrainConfig, Trainer

BASE = """
name: doors
benchmark: {target: "doors_plugins:digits_benchmark", options: {size: 300}}
model: {target: "doors_plugins:trunk_and_heads", options: {hidden: 16}}
epochs: 2
batch_size: 32
device: cpu
"""


def _config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + extra)
    return str(path)


def _final(directory, run):
    with sqlite3.connect(directory / "scalarize.db") as db:
        return dict(db.execute("SELECT name, value FROM final WHERE run = ? AND split = 'test'", (run,)).fetchall())


def test_a_plain_module_gets_its_parameter_groups_from_the_graph():
    bench = doors_plugins.digits_benchmark(200)
    model = build_model("doors_plugins:plain_module", bench.input_shape, bench.tasks)
    assert isinstance(model, ModuleModel)
    config = TrainConfig(steps=4, batch_size=16, device="cpu", eval_every=4)
    trainer = Trainer(config, bench, model, build_method("pcgrad", seed=0), progress=False)
    inner = model.module
    assert trainer.shared_params == list(inner.body.parameters())
    assert trainer.task_params == [list(inner.digit.parameters()), list(inner.large.parameters())]
    result = trainer.fit()
    assert result.status == "completed" and set(result.test) >= {"digit/accuracy", "large/balanced_accuracy"}


def test_a_registered_builder_and_a_dataset_benchmark_in_python():
    register_model("doors-linear", doors_plugins.multitask_model)
    bench = doors_plugins.digits_benchmark(200)
    model = build_model("doors-linear", bench.input_shape, bench.tasks)
    result = Trainer(
        TrainConfig(steps=3, batch_size=16, device="cpu"), bench, model, build_method("uw"), progress=False
    ).fit()
    assert result.status == "completed"


def test_the_focal_kind_is_a_loss_and_a_non_mean_metric():
    task = Task("t", "doors_plugins:FocalKind", 2, options={"gamma": 0.0})  # gamma 0: cross-entropy
    output, target = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), torch.tensor([0, 0, 0])
    assert float(task.loss(output, target)) == pytest.approx(float(nn.functional.cross_entropy(output, target)))
    accumulator = task.accumulator()
    accumulator.update(output, target)
    accumulator.update(torch.tensor([[0.0, 1.0]]), torch.tensor([1]))
    assert accumulator.compute() == {"balanced_accuracy": pytest.approx((2 / 3 + 1) / 2)}


@pytest.mark.parametrize(
    "command, extra, runs",
    [
        ("train", "", ["doors", "stl-digit", "stl-large"]),
        ("sweep", "stl: false\nsweep: {step: 0.5}\n", ["doors-000", "doors-001", "doors-002"]),
        ("pbt", "stl: false\npbt: {population: 3, compare_uniform: false}\n", ["doors-m00", "doors-m01", "doors-m02"]),
        (
            "compare",
            "stl: false\ncompare: {methods: [{name: pcgrad}, {name: mgda_ub}, {name: uw}]}\n",
            ["uniform-lr0.001-s0", "pcgrad-lr0.001-s0", "mgda_ub-lr0.001-s0", "uw-lr0.001-s0"],
        ),
    ],
)
def test_a_users_model_task_and_dataset_through_every_command(tmp_path, command, extra, runs):
    out = tmp_path / "out"
    assert main([command, _config(tmp_path, extra), f"output={out}", "-q"]) == 0
    for run in runs:
        final = _final(out, run)
        assert "digit/accuracy" in final or "large/balanced_accuracy" in final, (run, final)


def test_a_tasks_kind_replaced_by_import_path_from_the_config(tmp_path):
    out = tmp_path / "out"
    extra = 'stl: false\nbenchmark: {name: digits, tasks: {digit: {kind: "doors_plugins:FocalKind"}}}\n'
    config = tmp_path / "c.yaml"
    config.write_text("name: d\nmodel: {width: 0.25}\nepochs: 1\ndevice: cpu\n" + extra)
    assert main(["train", str(config), f"output={out}", "-q"]) == 2  # digits has 10 classes: focal needs 2


def test_a_target_that_does_not_fit_its_head_is_one_line(tmp_path, capsys):
    bench = Benchmark.from_datasets(
        "r",
        [Task("y", "regression", 1)],
        {s: [(torch.randn(4), torch.randn(())) for _ in range(8)] for s in ("train", "val", "test")},
    )
    model = build_model("mlp", bench.input_shape, bench.tasks, width=0.1)
    with pytest.raises(
        ValueError, match=r"task 'y' \(regression\): the target's shape \[2\] differs from the head's output \[2, 1\]"
    ):
        Trainer(TrainConfig(steps=1, device="cpu"), bench, model, build_method("scalarization"), progress=False)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "model.target=doors_plugins:nope",
            "model.target: 'doors_plugins:nope': module 'doors_plugins' has no attribute 'nope'",
        ),
        ("model.target=no_such_module:build", "cannot import module 'no_such_module'"),
        ("model.options.depth=3", "model.options.depth: not an option; set model.depth"),
        ("model.options.size=3", "model.options.size: unknown option; allowed: hidden"),
        ("benchmark.target=doors_plugins:trunk_and_heads", "benchmark.options: doors_plugins:trunk_and_heads"),
    ],
)
def test_bad_doors_are_one_line_errors(tmp_path, capsys, override, message):
    out = tmp_path / "out"
    assert main(["train", _config(tmp_path), f"output={out}", override, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert not out.exists()
