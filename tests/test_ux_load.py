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
    config = TrainConfig(name="w73", benchmark=BENCH, model={"width": 0.125, "depth": 1}, epochs=2, batch_size=40,
                         method={"weights": [0.7, 0.3]}, device="cpu", output=str(directory))
    run_experiment(config, progress=False)
    torch.set_num_threads(threads)
    return directory


def test_load_gives_the_trained_model_with_its_config(trained):
    run = scalarize.load(trained)
    assert run.name == "w73" and run.config.method.weights == [0.7, 0.3]
    assert run.source == trained / "runs" / "w73" / "checkpoint.pt" and run.step == 6
    assert not run.model.training
    with Store(trained) as store:
        last = {name: points[-1][1] for name, points in store.history("w73", "test").items()}
        assert run.metrics == store.final("w73")
    # the checkpoint holds the model at the end of training: its test metrics are the last evaluation's
    again = evaluate(run.model, run.benchmark, "test")
    assert again == pytest.approx(last, rel=1e-6)
    inputs = run.benchmark.split("test").inputs[:5]
    outputs = run.predict(inputs)
    assert set(outputs) == {"task0", "task1"} and outputs["task0"].shape[0] == 5


def test_load_by_run_name_run_folder_or_checkpoint(trained):
    assert scalarize.load(trained, "stl-task1").config.benchmark.objectives == ["task1"]
    assert scalarize.load(trained / "runs" / "stl-task0").name == "stl-task0"
    assert scalarize.load(trained / "runs" / "w73" / "checkpoint.pt").name == "w73"


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
