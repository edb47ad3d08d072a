"""Which evaluation a run reports: the best of its own objective on val (or the last), for a run
alone and for stacked members, and the saved model is the one whose metrics are reported."""

import sqlite3

import pytest
import torch

from scalarize.cli.main import main
from scalarize.data import load_benchmark
from scalarize.models import build_model
from scalarize.train.checkpoint import load_checkpoint
from scalarize.train.evaluate import evaluate

CONFIG = """
name: sel
benchmark: {name: synthetic_linear, options: {num_tasks: 2, train_size: 200, test_size: 100}}
model: {family: linear, depth: 0}
optimizer: {name: sgd, lr: 0.3, momentum: 0.0}
epochs: 6
eval_every: 2
batch_size: 50
stl: false
device: cpu
sweep: {design: list, weights: [[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]], engine: ENGINE}
"""


def _history(database, run):
    rows = sqlite3.connect(database).execute(
        "SELECT evaluation, split, name, value FROM metrics WHERE run = ? AND split IN ('val', 'test')", (run,)
    )
    out = {}
    for evaluation, split, name, value in rows:
        out.setdefault(evaluation, {}).setdefault(split, {})[name] = value
    return out


def _final(database, run):
    out = {}
    for split, name, value in sqlite3.connect(database).execute(
        "SELECT split, name, value FROM final WHERE run = ?", (run,)
    ):
        out.setdefault(split, {})[name] = value
    return out


@pytest.mark.parametrize("engine", ["vectorized", "loop"])
def test_each_member_reports_the_best_evaluation_of_its_own_objective(tmp_path, engine):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("ENGINE", engine))
    out = tmp_path / "out"
    assert main(["sweep", str(config), f"output={out}", "-q"]) == 0
    database = out / "scalarize.db"
    weights = [[1.0, 0.0], [0.9, 0.1], [0.5, 0.5], [0.0, 1.0]]
    chosen_not_uniform = 0
    for index, w in enumerate(weights):
        run = f"sel-{index:03d}"
        history = _history(database, run)
        objective = {e: w[0] * h["val"]["task0/loss"] + w[1] * h["val"]["task1/loss"] for e, h in history.items()}
        uniform = {e: h["val"]["task0/loss"] + h["val"]["task1/loss"] for e, h in history.items()}
        best = min(objective, key=objective.get)
        assert _final(database, run)["val"] == pytest.approx(history[best]["val"])
        assert _final(database, run)["test"] == pytest.approx(history[best]["test"])
        chosen_not_uniform += best != min(uniform, key=uniform.get)
        # the saved model is the one whose metrics are reported
        bench = load_benchmark("synthetic_linear", num_tasks=2, train_size=200, test_size=100)
        model = build_model("linear", bench.input_shape, bench.tasks, depth=0)
        model.load_state_dict(load_checkpoint(out / "runs" / run / "model.pt"))
        assert evaluate(model, bench, "test") == pytest.approx(_final(database, run)["test"], rel=1e-5, abs=1e-7)
    assert chosen_not_uniform  # the unweighted mean would have picked another evaluation for some member


def test_selection_last_reports_the_last_evaluation(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG.replace("ENGINE", "loop").replace("sweep:", "selection: last\nsweep:"))
    out = tmp_path / "out"
    assert main(["sweep", str(config), f"output={out}", "-q"]) == 0
    database = out / "scalarize.db"
    for index in range(4):
        history = _history(database, f"sel-{index:03d}")
        assert _final(database, f"sel-{index:03d}")["val"] == pytest.approx(history[max(history)]["val"])


def test_a_diverged_first_evaluation_is_still_reported(tmp_path):
    from scalarize.train.record import RunRecord

    record = RunRecord("r", ["a", "b"], [("a/mse", False), ("b/mse", False)])
    assert record.evaluated(1, [1.0, 1.0], {"a/loss": float("nan"), "b/loss": 1.0}, {}, torch.tensor([0.5, 0.5]))
    assert record.evaluated(2, [1.0, 1.0], {"a/loss": 2.0, "b/loss": 1.0}, {}, torch.tensor([0.5, 0.5]))
    assert not record.evaluated(3, [1.0, 1.0], {"a/loss": 3.0, "b/loss": 1.0}, {}, torch.tensor([0.5, 0.5]))
    assert record.evaluated(4, [1.0, 1.0], {"a/loss": 3.0, "b/loss": 0.0}, {}, torch.tensor([0.1, 0.9]))
    assert record.best["step"] == 4
