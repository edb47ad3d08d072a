"""A resumed run remembers its best-so-far evaluation when the best came before the interruption.

The benchmark here is a small linear regression whose validation targets are the training targets
negated: the more the model learns, the higher its validation loss, so the first evaluation is the
best one and every evaluation after the interruption is worse. A run interrupted after its first,
second or third evaluation (a kill right after a checkpoint) and resumed must report the same
evaluation, the same final metrics in the store and the same ``model.pt`` as the run that was never
interrupted, on every engine: a single trainer, and each member of a stacked population. (A Ray
trial trains through the same trainer and its checkpoint.)
"""

from __future__ import annotations

import pytest
import torch
from helpers import same_state

from scalarize.data import Benchmark, Split, load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import StackedPopulation
from scalarize.store import Store
from scalarize.train import RunSpec, TrainConfig, Trainer
from scalarize.train.checkpoint import MODEL_FILE, run_directory

SETTINGS = {
    "steps": 8,
    "eval_every": 2,
    "batch_size": 16,
    "device": "cpu",
    "optimizer": {"lr": 0.05},
    "model": {"width": 0.25, "depth": 1},
}
BEST_STEP = 2  # the first evaluation


@pytest.fixture(scope="module")
def rising() -> Benchmark:
    """``synthetic_linear`` with its validation targets negated: validation loss rises as it learns."""
    bench = load_benchmark("synthetic_linear", train_size=48, val_size=16, test_size=16)
    splits = dict(bench.domains[next(iter(bench.domains))])
    val = splits["val"]
    splits["val"] = Split(val.inputs, {task: -target for task, target in val.targets.items()})
    return Benchmark("rising", "mtl", bench.tasks, {"all": splits})


def _config(**update) -> TrainConfig:
    return TrainConfig(**SETTINGS, **update)


def _trainer(bench: Benchmark, store: Store, name: str = "run") -> Trainer:
    config = _config()
    store.start_run(name, "run", config.model_dump(mode="json"), name)
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, width=0.25, depth=1)
    return Trainer(
        config,
        bench,
        model,
        Scalarization(),
        run_name=name,
        store=store,
        checkpoint_path=run_directory(store.directory, name) / "checkpoint.pt",
        progress=False,
    )


def _reported(store: Store, name: str) -> tuple:
    """What a run leaves behind: its final metrics, its validation history, its reported model."""
    return (
        store.final(name),
        store.history(name, "val"),
        torch.load(run_directory(store.directory, name) / MODEL_FILE, weights_only=True),
    )


def test_the_benchmark_s_best_evaluation_is_the_first(rising, tmp_path, one_thread):
    with Store(tmp_path) as store:
        result = _trainer(rising, store).fit()
    losses = [sum(v for k, v in row.items() if k.endswith("/loss")) for row in result.history]
    assert len(losses) == 4 and all(a < b for a, b in zip(losses, losses[1:]))  # rises at every evaluation
    assert result.best_step == BEST_STEP and result.best_evaluation == 0


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_a_resumed_trainer_reports_the_best_evaluation_from_before_the_interruption(
    rising, tmp_path, one_thread, interrupt_at_checkpoint, stop
):
    with Store(tmp_path / "reference") as store:
        reference = _trainer(rising, store).fit()
        expected = _reported(store, "run")
    with Store(tmp_path / "resumed") as store:
        interrupt_at_checkpoint(Trainer, stop)
        with pytest.raises(KeyboardInterrupt):
            _trainer(rising, store).fit()
        resumed = _trainer(rising, store).fit()
        got = _reported(store, "run")
    assert (
        (resumed.best_evaluation, resumed.best_step)
        == (reference.best_evaluation, reference.best_step)
        == (0, BEST_STEP)
    )
    assert resumed.val == reference.val and resumed.test == reference.test
    assert resumed.history == reference.history
    assert got[0] == expected[0] == {"val": reference.val, "test": reference.test}
    assert got[1] == expected[1]
    assert same_state(got[2], expected[2])  # model.pt: the model of the first evaluation


def _members() -> list[RunSpec]:
    return [
        RunSpec(f"m{i}", _config(seed=i, method={"name": "scalarization", "weights": [0.3 + 0.4 * i, 0.7 - 0.4 * i]}))
        for i in range(2)
    ]


def _population(bench: Benchmark, store: Store) -> StackedPopulation:
    members = _members()
    for member in members:
        store.start_run(member.name, member.kind, member.config.model_dump(mode="json"), member.fingerprint)
    return StackedPopulation(
        members, bench, store=store, checkpoint_path=store.directory / "population.pt", progress=False
    )


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_each_resumed_stacked_member_reports_its_best_evaluation_from_before_the_interruption(
    rising, tmp_path, one_thread, interrupt_at_checkpoint, stop
):
    with Store(tmp_path / "reference") as store:
        reference = {r.name: r for r in _population(rising, store).fit()}
        expected = {name: _reported(store, name) for name in reference}
    with Store(tmp_path / "resumed") as store:
        interrupt_at_checkpoint(StackedPopulation, stop)
        with pytest.raises(KeyboardInterrupt):
            _population(rising, store).fit()
        resumed = {r.name: r for r in _population(rising, store).fit()}
        got = {name: _reported(store, name) for name in resumed}
    assert resumed.keys() == reference.keys() == {"m0", "m1"}
    for name, result in resumed.items():
        assert (result.best_evaluation, result.best_step) == (0, BEST_STEP), name
        assert (reference[name].best_evaluation, reference[name].best_step) == (0, BEST_STEP), name
        assert result.val == reference[name].val and result.test == reference[name].test, name
        assert got[name][0] == expected[name][0] and got[name][1] == expected[name][1], name
        assert same_state(got[name][2], expected[name][2]), name
