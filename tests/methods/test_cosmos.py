"""COSMOS (Ruchte & Grabocka 2021): the penalised objective by hand, the preference draws, the
conditioned model, and a one-run front through `scalarize sweep`."""

import math
import sqlite3

import pytest
import torch

from scalarize.cli.main import main
from scalarize.data import Task
from scalarize.methods import build_method
from scalarize.methods.context import StepContext
from scalarize.models import build_model
from scalarize.models.conditioned import PreferenceConditioned, conditioned_shape


def test_the_objective_by_hand():
    method = build_method("cosmos", penalty=2.0)
    method.setup(["a", "b"])
    method.preference.copy_(torch.tensor([0.25, 0.75]))
    losses = torch.tensor([2.0, 1.0])
    cosine = (0.25 * 2 + 0.75 * 1) / (math.hypot(0.25, 0.75) * math.hypot(2.0, 1.0))
    assert float(method.combine(losses)) == pytest.approx(0.25 * 2 + 0.75 * 1 - 2.0 * cosine)
    weights = torch.tensor([2.0, 1.0], requires_grad=True)
    method.backward(StepContext(weights * 1.0, features=None, shared_params=[], task_params=[]))
    # d/dL [r·L − λ cos(r, L)] = r − λ (r/(|r||L|) − (r·L) L/(|r||L|³))
    r, L = torch.tensor([0.25, 0.75]), torch.tensor([2.0, 1.0])
    expected = r - 2.0 * (r / (r.norm() * L.norm()) - (r @ L) * L / (r.norm() * L.norm() ** 3))
    torch.testing.assert_close(weights.grad, expected)


def test_preferences_are_dirichlet_draws_from_the_methods_own_seed():
    a, b = build_method("cosmos", seed=3), build_method("cosmos", seed=3)
    for m in (a, b):
        m.setup(["x", "y", "z"])
    draws = [a.draw_preference().clone() for _ in range(200)]
    assert all(torch.equal(d, b.draw_preference()) for d in draws)
    stacked = torch.stack(draws)
    assert torch.allclose(stacked.sum(1), torch.ones(200)) and (stacked > 0).all()
    assert stacked.mean(0).tolist() == pytest.approx([1 / 3] * 3, abs=0.05)  # symmetric α


def test_the_conditioned_model_sees_the_preference():
    tasks = [Task("a", "multiclass", 3), Task("b", "multiclass", 3)]
    inner = build_model("resnet", conditioned_shape((1, 8, 8), 2), tasks, width=0.25, depth=1)
    model = PreferenceConditioned(inner, 2)
    x = torch.rand(4, 1, 8, 8)
    model.eval()
    model.set_preference([1.0, 0.0])
    left = model(x)[1]["a"]
    model.set_preference([0.0, 1.0])
    assert not torch.allclose(left, model(x)[1]["a"])
    assert conditioned_shape((1, 8, 8), 2, as_channels=False) == (66,)
    with pytest.raises(ValueError, match="preference: expected 2 values"):
        model.set_preference([1.0, 1.0, 1.0])


def test_a_one_run_front_through_the_sweep_command(tmp_path, one_thread):
    config = tmp_path / "c.yaml"
    config.write_text(
        "name: cs\nbenchmark: {name: multimnist, options: {train_size: 200, test_size: 60}}\n"
        "model: {width: 0.1}\nmethod: {name: cosmos}\nepochs: 1\nstl: false\ndevice: cpu\n"
        "sweep: {step: 0.5}\n"
    )
    out = tmp_path / "out"
    assert main(["sweep", str(config), f"output={out}", "-q"]) == 0
    with sqlite3.connect(out / "scalarize.db") as db:
        kinds = dict(db.execute("SELECT name, kind FROM runs").fetchall())
        weights = db.execute("SELECT run, objective, value FROM weights WHERE run = 'cs-000'").fetchall()
    assert kinds == {
        "cs-model": "front-model",
        "cs-000": "front-point",
        "cs-001": "front-point",
        "cs-002": "front-point",
    }
    assert sorted(weights) == [("cs-000", "left", 0.0), ("cs-000", "right", 1.0)]
    assert main(["sweep", str(config), f"output={out}", "-q"]) == 0  # read back, nothing retrained
    with sqlite3.connect(out / "scalarize.db") as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 4
