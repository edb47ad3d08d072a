"""``scalarize.load``: a trained model back from its experiment directory, ready for inference."""

import pytest
import torch

import scalarize
from scalarize.experiments.train import run_experiment
from scalarize.store.database import Store
from scalarize.train.config import TrainConfig
from scalarize.train.evaluate import evaluate
from scalarize.trained import LoadError

BENCH = {"name": "synthetic", "options": {"num_tasks": 2, "train_size": 120, "val_size": 40, "test_size": 40}}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    directory = tmp_path_factory.mktemp("load") / "out"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    config = TrainConfig(
        name="w73",
        benchmark=BENCH,
        model={"width": 0.125, "depth": 1},
        epochs=2,
        batch_size=40,
        method={"weights": [0.7, 0.3]},
        device="cpu",
        output=str(directory),
    )
    run_experiment(config, progress=False)
    torch.set_num_threads(threads)
    return directory


def test_load_gives_the_reported_model_with_its_config(trained):
    run = scalarize.load(trained)
    assert run.name == "w73" and run.config.method.weights == [0.7, 0.3]
    assert run.source == trained / "runs" / "w73" / "model.pt" and run.reported
    assert not run.model.training
    with Store(trained) as store:
        assert run.metrics == store.final("w73")
        steps = [step for step, _ in store.history("w73", "val")["task0/mse"]]
    assert run.step in steps
    # the model of the reported evaluation: its test metrics are the ones the store reports
    again = evaluate(run.model, run.benchmark, "test")
    assert again == pytest.approx(run.metrics["test"], rel=1e-6)
    inputs = run.benchmark.split("test").inputs[:5]
    outputs = run.predict(inputs)
    assert set(outputs) == {"task0", "task1"} and outputs["task0"].shape[0] == 5


def test_a_sweep_member_trained_stacked_loads_too(tmp_path, one_thread):
    from scalarize.experiments.sweep import SweepConfig, run_sweep

    config = SweepConfig(
        name="s",
        benchmark=BENCH,
        model={"width": 0.125, "depth": 1},
        epochs=1,
        batch_size=40,
        stl=False,
        device="cpu",
        output=str(tmp_path),
        sweep={"step": 0.5, "engine": "vectorized"},
    )
    run_sweep(config, progress=False)
    run = scalarize.load(tmp_path, "s-002")
    assert run.config.method.weights == [1.0, 0.0] and run.reported
    assert evaluate(run.model, run.benchmark, "test") == pytest.approx(run.metrics["test"], rel=1e-5)


def test_load_by_run_name_run_folder_or_checkpoint(trained):
    assert scalarize.load(trained, "stl-task1").config.benchmark.objectives == ["task1"]
    assert scalarize.load(trained / "runs" / "stl-task0").name == "stl-task0"
    assert scalarize.load(trained / "runs" / "w73" / "model.pt").name == "w73"


@pytest.mark.parametrize(
    ("where", "run", "expected"),
    [
        ("", "nope", "no run 'nope'; runs with a model: w73, stl-task0, stl-task1"),
        ("runs", None, "no scalarize.db here (not an experiment directory)"),
    ],
)
def test_load_errors_are_one_line(trained, where, run, expected):
    with pytest.raises(LoadError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        scalarize.load(trained / where if where else trained, run)
