"""Behaviours of the stacked population that the run-level tests do not reach: a skipped member's
parameters *and* optimizer moments stay put (read from the optimizer, not through the
population's own bookkeeping), a resumed population with batch-norm buffers continues exactly,
and an exploit copies the optimizer state with the parameters."""

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.population import Member, StackedPopulation
from scalarize.train import TrainConfig

SMALL = {"name": "multimnist", "options": {"train_size": 200, "test_size": 60}}


def _members(model=None, weights=((0.2, 0.8), (0.5, 0.5), (0.9, 0.1))):
    base = TrainConfig(
        benchmark=SMALL,
        model=model or {"width": 0.25},
        steps=6,
        eval_every=3,
        batch_size=40,
        stl=False,
        optimizer={"lr": 0.003},
        device="cpu",
    )
    return [
        Member(
            f"m{i}", base.model_copy(update={"method": base.method.model_copy(update={"weights": list(w)}), "seed": i})
        )
        for i, w in enumerate(weights)
    ]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("multimnist", train_size=200, test_size=60)


def _moments(population, index):
    return [
        value[index].clone()
        for state in population.optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor) and value.dim() > 0
    ]


def test_a_skipped_member_keeps_its_parameters_and_adam_moments(bench):
    population = StackedPopulation(_members(), bench, progress=False)
    population.run_until(2)
    first = next(iter(population.params.values()))
    first.register_hook(lambda g: g.index_fill(0, torch.tensor([1]), float("nan")))
    params = [v[1].detach().clone() for v in population.params.values()]
    moments, others = _moments(population, 1), _moments(population, 0)
    assert moments  # Adam has per-member moments after two steps
    population.train_step()
    for old, value in zip(params, population.params.values()):
        assert torch.equal(old, value[1].detach())
    for old, new in zip(moments, _moments(population, 1)):
        assert torch.equal(old, new)
    assert any(not torch.equal(old, new) for old, new in zip(others, _moments(population, 0)))


def test_a_batch_norm_population_resumed_from_its_state_continues_exactly(bench):
    model = {"family": "resnet", "width": 0.25, "depth": 1}
    straight = StackedPopulation(_members(model, ((0.3, 0.7), (0.8, 0.2))), bench, progress=False)
    straight.run_until(6)
    first = StackedPopulation(_members(model, ((0.3, 0.7), (0.8, 0.2))), bench, progress=False)
    first.run_until(3)
    first.extra_state = {"note": [1, 2]}
    state = first.state_dict()
    assert any("running_mean" in key for key in state["buffers"])
    resumed = StackedPopulation(_members(model, ((0.3, 0.7), (0.8, 0.2))), bench, progress=False)
    resumed.load_state_dict(state)
    assert resumed.extra_state == {"note": [1, 2]}
    for key, value in first.buffers.items():
        assert torch.equal(resumed.buffers[key], value), key
    resumed.run_until(6)
    for key, value in straight.params.items():
        assert torch.equal(resumed.params[key], value), key
    for key, value in straight.buffers.items():
        assert torch.equal(resumed.buffers[key], value), key


def test_an_exploit_copies_parameters_buffers_and_optimizer_moments(bench):
    population = StackedPopulation(_members({"family": "resnet", "width": 0.25, "depth": 1}), bench, progress=False)
    population.run_until(2)
    population.copy_member(0, 2)
    for value in [*population.params.values(), *population.buffers.values()]:
        assert torch.equal(value[2], value[0])
    for source, target in zip(_moments(population, 0), _moments(population, 2)):
        assert torch.equal(source, target)
    assert torch.equal(population.weights[2], population.weights[0])
