"""Training plumbing with one meaning on every engine: learning-rate warmup (``schedule.warmup_steps``)
and gradient clipping by norm after the method (``optimizer.max_grad_norm``), on the trainer and
per member of a stacked population, resumed exactly."""

from __future__ import annotations

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation
from scalarize.train import TrainConfig, Trainer
from scalarize.train.optim import clip_gradients, lr_factor

SETTINGS = {
    "steps": 6,
    "eval_every": 3,
    "batch_size": 16,
    "device": "cpu",
    "stl": False,
    "benchmark": {"name": "synthetic", "options": {"num_tasks": 3, "train_size": 64, "val_size": 16, "test_size": 16}},
    "model": {"width": 0.25, "depth": 1},
}


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("synthetic", num_tasks=3, train_size=64, val_size=16, test_size=16)


def _config(**update) -> TrainConfig:
    return TrainConfig(**{**SETTINGS, **update})


def test_warmup_ramps_the_schedule_linearly_by_hand():
    constant = lr_factor(_config(schedule={"warmup_steps": 4}), 100, 10)
    assert [constant(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    step = lr_factor(_config(schedule={"name": "step", "step_size": 1, "gamma": 0.5, "warmup_steps": 2}), 100, 3)
    assert [step(s) for s in (0, 1, 2, 3)] == [0.5, 1.0, 1.0, 0.5]  # the decay at epoch 1 (step 3) still applies
    assert lr_factor(_config(), 100, 10)(0) == 1.0  # no warmup: as before


def test_clipping_scales_to_the_norm_and_leaves_small_gradients(one_thread):
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    a.grad, b.grad = torch.tensor([3.0, 0.0]), torch.tensor([4.0])  # norm 5
    clip_gradients([a, b], 1.0)
    assert torch.allclose(a.grad, torch.tensor([0.6, 0.0]), atol=1e-6) and torch.allclose(
        b.grad, torch.tensor([0.8]), atol=1e-6
    )
    clip_gradients([a, b], 10.0)
    assert torch.allclose(b.grad, torch.tensor([0.8]), atol=1e-6)  # below the norm: unchanged
    clip_gradients([a, b], None)  # off


def _trainer(bench, config: TrainConfig) -> Trainer:
    torch.manual_seed(config.seed)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.25, 1)
    return Trainer(config, bench, model, Scalarization(), progress=False)


def test_a_clipped_sgd_step_moves_the_model_by_exactly_the_norm(bench, one_thread):
    config = _config(optimizer={"name": "sgd", "lr": 1.0, "momentum": 0.0, "max_grad_norm": 1e-3})
    trainer = _trainer(bench, config)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step()
    moved = torch.sqrt(sum(((p.detach() - q) ** 2).sum() for p, q in zip(trainer.model.parameters(), before)))
    assert moved == pytest.approx(1e-3, rel=1e-4)


@pytest.mark.parametrize(
    "update",
    [
        {"optimizer": {"max_grad_norm": 0.05}},
        {"schedule": {"warmup_steps": 4}},
        {"optimizer": {"max_grad_norm": 0.05}, "schedule": {"warmup_steps": 4}},
    ],
)
def test_each_stacked_member_clips_and_warms_up_as_its_own_trainer(bench, one_thread, update):
    configs = [_config(seed=s, **update) for s in (0, 1)]
    population = StackedPopulation([Member(f"m{s}", c) for s, c in enumerate(configs)], bench, progress=False)
    population.fit()
    for index, config in enumerate(configs):
        trainer = _trainer(bench, config)
        trainer.fit()
        alone = dict(trainer.model.state_dict())
        stacked = population.member_model(index).state_dict()
        for key, value in alone.items():
            torch.testing.assert_close(stacked[key], value, rtol=1e-5, atol=1e-6)


def test_warmup_and_clipping_resume_exactly(bench, tmp_path, one_thread, interrupt_at_checkpoint):
    config = _config(optimizer={"max_grad_norm": 0.05}, schedule={"warmup_steps": 4, "name": "cosine"})
    straight = _trainer(bench, config)
    straight.fit()
    path = tmp_path / "checkpoint.pt"
    first = _trainer(bench, config)
    first.checkpoint_path = path
    interrupt_at_checkpoint(Trainer, 1)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    resumed = _trainer(bench, config)
    resumed.checkpoint_path = path
    resumed.fit()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key


# -- early stopping ----------------------------------------------------------------------------------
def test_the_patience_count_by_hand():
    from scalarize.train.record import RunRecord

    record = RunRecord("r", ["a"], [("a/mse", False)], patience=2, min_delta=0.1)
    for loss, stale in ((1.0, 0), (0.95, 1), (0.5, 0), (0.45, 1), (0.42, 2)):  # objective = −loss
        record.evaluated(0, [0.0], {"a/loss": loss, "a/mse": loss}, {})
        assert record.stale == stale
    assert record.patience_spent
    assert not RunRecord("r", ["a"], [("a/mse", False)]).patience_spent  # off by default


def test_early_stopping_ends_the_run_stopped_at_its_best_and_a_rerun_does_not_train_it(tmp_path, capsys, one_thread):
    """A rising validation loss (its targets negated) stops a run after ``patience`` evaluations;
    the store says ``stopped``, and the same command again reads it back."""
    import sqlite3

    from scalarize.cli.main import main

    config = tmp_path / "c.yaml"
    config.write_text(
        "name: es\nbenchmark: {name: synthetic, options: {num_tasks: 2, train_size: 64, val_size: 16, test_size: 16}}\n"
        "model: {width: 0.25, depth: 1}\nsteps: 40\neval_every: 2\nbatch_size: 16\nstl: false\ndevice: cpu\n"
        "optimizer: {lr: 0.5}\nearly_stopping: {patience: 2, min_delta: 1000}\n"
    )
    assert main(["train", str(config), f"output={tmp_path / 'out'}", "-q"]) == 0
    with sqlite3.connect(tmp_path / "out" / "scalarize.db") as db:
        ((status, step),) = db.execute("SELECT status, step FROM runs").fetchall()
    assert status == "stopped" and step == 6  # evaluations at 2 (best), 4, 6: two without improvement
    assert main(["train", str(config), f"output={tmp_path / 'out'}", "-q"]) == 0
    with sqlite3.connect(tmp_path / "out" / "scalarize.db") as db:
        assert db.execute("SELECT status, step FROM runs").fetchall() == [("stopped", 6)]


def test_a_stacked_population_refuses_early_stopping_and_the_engine_takes_the_loop(bench):
    from scalarize.population.engine import choose_engine

    config = _config(early_stopping={"patience": 2})
    members = [Member(f"m{s}", config.model_copy(update={"seed": s})) for s in (0, 1)]
    with pytest.raises(ValueError, match="^early_stopping: a stacked population trains every member to the end"):
        StackedPopulation(members, bench, progress=False)
    assert choose_engine(members, bench)[0] == "loop"
