"""The run loop is written once (train/loop.py): the single-model and the stacked engine share its
segments, step timing and non-finite guard counters, and the stacked engine's guard on the device
(a GPU's path, forced here on the CPU) decides exactly as its host guard, with no host sync per
step."""

from __future__ import annotations

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation
from scalarize.population import stacked as stacked_module
from scalarize.train import TrainConfig, Trainer, loop

OPTIONS = {"train_size": 60, "test_size": 30}
SETTINGS = {
    "benchmark": {"name": "multimnist", "options": OPTIONS},
    "model": {"width": 0.05, "depth": 1},
    "steps": 12,
    "eval_every": 10,
    "batch_size": 20,
    "stl": False,
    "device": "cpu",
    "optimizer": {"name": "adam", "lr": 0.01},
}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("multimnist", **OPTIONS)


def _members(count=3):
    base = TrainConfig(**SETTINGS)
    return [Member(f"m{i}", base.model_copy(update={"seed": i})) for i in range(count)]


def _trainer(bench):
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.05, 1)
    return Trainer(TrainConfig(**SETTINGS), bench, model, Scalarization(), progress=False)


def test_both_engines_time_and_guard_with_the_loops_pieces(bench, one_thread):
    trainer, population = _trainer(bench), StackedPopulation(_members(), bench, progress=False)
    for engine in (trainer, population):
        assert type(engine._timer) is loop.StepTimer and type(engine._guard) is loop.GuardCounters
    trainer.fit()
    population.fit()
    # 12 steps, an evaluation every 10: step 0 warms up, steps 1 and 11 are measured, 9 are timed
    assert trainer.timed_steps == 9 and trainer.step_memory > 0
    assert [r.timed_steps for r in population.records] == [9, 9, 9]
    assert all(r.step_memory > 0 for r in population.records)
    assert [len(h) for h in population.histories] == [len(trainer.history)] * 3 == [2] * 3


def test_the_run_loop_evaluates_on_the_cadence_and_stops_at_the_end(bench, one_thread):
    population = StackedPopulation(_members(2), bench, progress=False)
    assert loop.run(population, 7) == "running" and population.step == 7
    assert [len(h) for h in population.histories] == [0, 0]  # no evaluation before step 10
    assert loop.run(population, 99) == "completed" and population.step == 12
    assert [[e["step"] for e in h] for h in population.histories] == [[10, 12], [10, 12]]
    assert (loop.next_evaluation(0, 10, 12), loop.next_evaluation(10, 10, 12), loop.next_evaluation(3, 4, 99)) == (
        10,
        12,
        4,
    )


def _faulty(monkeypatch, population, nan_gradient_at: int, nan_loss_at: int):
    """Member 1's gradient is NaN at step ``nan_gradient_at``; member 0's loss is NaN from step
    ``nan_loss_at`` (it diverges)."""
    calls = {"n": 0}
    original = stacked_module.objective_losses

    def losses(*args, **kwargs):
        value = original(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] - 1 >= nan_loss_at:
            value = value + torch.tensor([float("nan"), 0.0, 0.0])[: value.shape[0], None]
        return value

    def gradient_hook(grad):
        if population.step == nan_gradient_at:
            grad = grad.clone()
            grad[1] = float("nan")
        return grad

    monkeypatch.setattr(stacked_module, "objective_losses", losses)
    next(iter(population.params.values())).register_hook(gradient_hook)


@pytest.mark.parametrize("lr_scaled", [False, True])
def test_the_device_guard_decides_as_the_host_guard(bench, monkeypatch, one_thread, lr_scaled):
    """Forced on the CPU, the GPU's guard gives the same parameters, optimizer state, skipped
    steps, divergence and evaluations, bit for bit."""
    runs = []
    for device_guard in (False, True):
        with monkeypatch.context() as patch:
            population = StackedPopulation(_members(), bench, progress=False)
            population._device_guard = device_guard
            if lr_scaled:
                population.lr_scale = torch.tensor([1.0, 0.5, 2.0])
            _faulty(patch, population, nan_gradient_at=3, nan_loss_at=5)
            population.fit()
            runs.append(population)
    host, device = runs
    assert host.skipped_steps == device.skipped_steps == [0, 1, 0]
    assert host.diverged_at == device.diverged_at == {0: 6}
    assert torch.equal(host.alive, device.alive) and host.alive.tolist() == [False, True, True]
    for key in host.params:
        assert torch.equal(host.params[key], device.params[key]), key
    for ours, theirs in zip(host.optimizer.state.values(), device.optimizer.state.values()):
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert host.histories == device.histories


def test_the_device_guard_does_not_sync_the_host_per_step(bench, monkeypatch, one_thread):
    """Between evaluations, a step of the device guard reads nothing back from its tensors: every
    ``.cpu()``, ``.item()`` and ``.tolist()`` waits for the segment's end (``settle``)."""
    population = StackedPopulation(_members(), bench, progress=False)
    population._device_guard = True
    population.train_step(), population.train_step()  # warm-up and memory: not timed steps
    reads = []
    for name in ("cpu", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    for _ in range(3):
        population.train_step()
    assert reads == []
    population.settle()
    assert reads  # the segment's end reads the counters
