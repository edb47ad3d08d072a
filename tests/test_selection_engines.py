"""``selection`` reaches the record of every engine's run: a single trainer and each member of a
stacked population report their last evaluation under ``selection: last`` and their best
objective otherwise, fed the same evaluations (val losses that fall, then rise)."""

from __future__ import annotations

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation
from scalarize.train import TrainConfig, Trainer

OPTIONS = {"train_size": 60, "test_size": 30}
SETTINGS = {
    "benchmark": {"name": "multimnist", "options": OPTIONS},
    "model": {"width": 0.05, "depth": 1},
    "steps": 2,
    "eval_every": 1,
    "batch_size": 30,
    "stl": False,
    "device": "cpu",
}
VAL = [
    {"left/loss": 1.0, "right/loss": 1.0},
    {"left/loss": 0.5, "right/loss": 0.5},
    {"left/loss": 0.9, "right/loss": 0.9},
]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("multimnist", **OPTIONS)


def _reported(record) -> int:
    for step, val in enumerate(VAL, start=1):
        record.evaluated(step, [1.0, 1.0], val, {"step": float(step)}, torch.tensor([0.5, 0.5]))
    return record.best["step"]


@pytest.mark.parametrize("selection, step", [("last", 3), ("objective", 2)])
def test_a_trainer_s_record_selects_as_configured(bench, selection, step):
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.05, 1)
    trainer = Trainer(TrainConfig(**SETTINGS, selection=selection), bench, model, Scalarization(), progress=False)
    assert _reported(trainer.record) == step


@pytest.mark.parametrize("selection, step", [("last", 3), ("objective", 2)])
def test_each_stacked_member_s_record_selects_as_configured(bench, selection, step):
    base = TrainConfig(**SETTINGS, selection=selection)
    members = [Member(f"m{i}", base.model_copy(update={"seed": i})) for i in range(2)]
    population = StackedPopulation(members, bench, progress=False)
    assert [_reported(record) for record in population.records] == [step, step]
