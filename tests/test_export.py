"""``scalarize export``: --csv as before, --members (one wide table) and --onnx (the reported
model, one named output per task, checked against PyTorch with onnxruntime)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

import scalarize
from scalarize.cli.main import main
from scalarize.experiments.sweep import load_sweep_config, run_sweep
from scalarize.experiments.train import run_experiment
from scalarize.store.database import Store
from scalarize.train.config import TrainConfig

BENCH = {"name": "synthetic", "options": {"num_tasks": 2, "train_size": 120, "val_size": 40, "test_size": 40}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    output = tmp_path_factory.mktemp("export") / "out"
    config = TrainConfig(
        name="t",
        benchmark=BENCH,
        model={"width": 0.125, "depth": 2},
        epochs=2,
        batch_size=40,
        method={"weights": [0.7, 0.3]},
        device="cpu",
        output=str(output),
        threads=1,
    )
    run_experiment(config, progress=False)
    return output


def test_onnx_outputs_match_pytorchs(trained, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "model.onnx"
    assert main(["export", str(trained), "--onnx", "-o", str(path)]) == 0
    assert capsys.readouterr().out.strip() == str(path)
    run = scalarize.load(trained)
    inputs = run.benchmark.split("test").inputs[:7]
    expected = run.predict(inputs)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == [t.name for t in run.benchmark.tasks]
    got = session.run(None, {"input": inputs.numpy().astype(np.float32)})
    for task, value in zip(run.benchmark.tasks, got, strict=True):
        np.testing.assert_allclose(value, expected[task.name].numpy(), rtol=1e-4, atol=1e-5)
    one = session.run(None, {"input": inputs[:1].numpy()})  # the batch axis is dynamic
    assert one[0].shape[0] == 1


def test_onnx_of_a_named_run_and_its_default_file(trained, capsys):
    pytest.importorskip("onnxruntime")
    assert main(["export", str(trained), "--onnx", "--run", "stl-task0"]) == 0
    assert (trained / "export" / "stl-task0.onnx").is_file()
    assert main(["export", str(trained), "--onnx", "--run", "nope"]) == 2
    assert "no run 'nope'" in capsys.readouterr().err


def test_members_is_one_row_per_run_with_weights_and_metrics(trained, tmp_path, capsys):
    assert main(["export", str(trained), "--members", "--csv", "--to", str(tmp_path)]) == 0
    assert (tmp_path / "runs.csv").is_file()  # --csv is one format among others
    rows = list(csv.DictReader((tmp_path / "members.csv").open()))
    with Store(trained) as store:
        names = [row["name"] for row in store.runs()]
        final = store.final("t")
    assert [row["run"] for row in rows] == names
    main_row = next(row for row in rows if row["run"] == "t")
    assert float(main_row["weight/task0"]) == pytest.approx(0.7) and main_row["kind"] == "main"
    assert float(main_row["test/task1/mse"]) == pytest.approx(final["test"]["task1/mse"])


def test_members_of_a_sweep(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(
        f"name: s\nbenchmark: {BENCH}\nmodel: {{width: 0.125, depth: 1}}\nepochs: 1\nbatch_size: 40\n"
        f"stl: false\ndevice: cpu\nthreads: 1\noutput: {tmp_path / 'out'}\nsweep: {{step: 0.5}}\n"
    )
    run_sweep(load_sweep_config(path), progress=False)
    assert main(["export", str(tmp_path / "out"), "--members"]) == 0
    rows = list(csv.DictReader((tmp_path / "out" / "export" / "members.csv").open()))
    assert sorted(float(row["weight/task0"]) for row in rows) == pytest.approx([0.0, 0.5, 1.0])


def test_export_options_are_checked(trained, capsys):
    assert main(["export", str(trained)]) == 2
    assert "--members" in capsys.readouterr().err
    assert main(["export", str(trained), "--csv", "--run", "t"]) == 2
    assert "--run: only with --onnx" in capsys.readouterr().err
