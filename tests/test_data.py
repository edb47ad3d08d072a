import math

import pytest
import torch

from scalarize.data import (
    BenchmarkError,
    EpochSampler,
    MixtureSampler,
    Split,
    Task,
    available_benchmarks,
    carve_validation,
    load_benchmark,
)
from scalarize.train.evaluate import task_losses


def test_bundled_benchmarks_are_listed():
    assert {"multimnist", "digits", "synthetic", "synthetic_linear"} <= set(available_benchmarks())


def test_multimnist_is_two_ten_class_tasks_on_28x28_images():
    bench = load_benchmark("multimnist", train_size=200, test_size=50)
    assert bench.setting == "mtl" and bench.objectives == ["left", "right"]
    train = bench.split("train")
    assert train.inputs.shape[1:] == (1, 28, 28)
    assert 0.0 <= float(train.inputs.min()) and float(train.inputs.max()) <= 1.0
    assert len(train) + len(bench.split("val")) == 200 and len(bench.split("test")) == 50
    assert set(train.targets["left"].unique().tolist()) <= set(range(10))
    # two different source digits overlaid: the composite carries more ink than either
    assert float(train.inputs.mean()) > 0.05


def test_digits_is_mdl_with_two_real_domains_of_one_task():
    bench = load_benchmark("digits")
    assert bench.setting == "mdl" and bench.objectives == ["mnist", "uci"]
    assert [t.name for t in bench.tasks] == ["digit"]
    sizes = bench.sizes()
    assert sizes["mnist"]["train"] + sizes["mnist"]["val"] + sizes["mnist"]["test"] == 5000
    assert sizes["uci"]["train"] + sizes["uci"]["val"] + sizes["uci"]["test"] == 1797
    assert bench.input_shape == (1, 28, 28)


def test_synthetic_scales_to_many_tasks_and_sets_loss_scales():
    bench = load_benchmark("synthetic", num_tasks=40, train_size=50, val_size=10, test_size=10, scale_spread=100.0)
    assert len(bench.objectives) == 40
    stds = [float(bench.split("train").targets[f"task{i}"].std()) for i in (0, 39)]
    assert stds[1] > 20 * stds[0]


def test_validation_is_carved_from_train_with_a_fixed_seed():
    split = Split(torch.arange(100.0).unsqueeze(1), {"y": torch.arange(100)})
    a_train, a_val = carve_validation(split, 0.1, seed=3)
    b_train, b_val = carve_validation(split, 0.1, seed=3)
    assert torch.equal(a_val.inputs, b_val.inputs) and len(a_val) == 10 and len(a_train) == 90
    assert not set(a_train.targets["y"].tolist()) & set(a_val.targets["y"].tolist())


def test_unknown_benchmark_and_option_are_named():
    with pytest.raises(BenchmarkError, match="unknown benchmark 'nope'; allowed: .*multimnist"):
        load_benchmark("nope")
    with pytest.raises(BenchmarkError, match="benchmark.options.colour: unknown option"):
        load_benchmark("multimnist", colour=1)


def test_epoch_sampler_visits_every_sample_once_per_epoch_and_resumes_exactly():
    split = Split(torch.arange(10.0).unsqueeze(1), {"y": torch.arange(10)})
    sampler = EpochSampler(split, batch_size=4, seed=0)
    seen = torch.cat([b.targets["y"] for b in sampler.epoch()])
    assert sorted(seen.tolist()) == list(range(10)) and sampler.steps_per_epoch == 3
    sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch().targets["y"] for _ in range(5)]
    resumed = EpochSampler(split, batch_size=4, seed=99)
    resumed.load_state_dict(state)
    assert all(torch.equal(e, resumed.next_batch().targets["y"]) for e in expected)


def test_mixture_sampler_draws_domains_with_the_given_probabilities():
    a = Split(torch.zeros(30, 1), {"y": torch.zeros(30, dtype=torch.long)})
    b = Split(torch.ones(300, 1), {"y": torch.ones(300, dtype=torch.long)})
    sampler = MixtureSampler([a, b], batch_size=100, seed=0)
    sampler.set_weights(torch.tensor([3.0, 1.0]))
    counts = sum(sampler.next_batch().counts for _ in range(200))
    share = counts[0].item() / counts.sum().item()
    assert abs(share - 0.75) < 0.01  # 20,000 draws: std of the share is 0.003
    batch = sampler.next_batch()
    # grouped by domain: the first counts[0] samples come from domain a
    assert torch.all(batch.inputs[: batch.counts[0]] == 0) and torch.all(batch.inputs[batch.counts[0] :] == 1)


def test_mixture_sampler_state_round_trip():
    a = Split(torch.randn(7, 2), {"y": torch.arange(7)})
    b = Split(torch.randn(5, 2), {"y": torch.arange(5)})
    sampler = MixtureSampler([a, b], batch_size=4, seed=1)
    for _ in range(3):
        sampler.next_batch()
    state = sampler.state_dict()
    expected = [sampler.next_batch().targets["y"] for _ in range(6)]
    other = MixtureSampler([a, b], batch_size=4, seed=5)
    other.load_state_dict(state)
    assert all(torch.equal(e, other.next_batch().targets["y"]) for e in expected)


def test_mdl_losses_are_per_domain_means_and_their_batch_weighted_sum_is_the_plain_mean():
    bench = load_benchmark("digits")
    logits = torch.randn(6, 10)
    targets = {"digit": torch.tensor([1, 2, 3, 4, 5, 6])}
    counts = torch.tensor([4, 2])
    losses = task_losses(bench, {"digit": logits}, targets, counts)
    per_sample = torch.nn.functional.cross_entropy(logits, targets["digit"], reduction="none")
    assert torch.allclose(losses, torch.stack([per_sample[:4].mean(), per_sample[4:].mean()]))
    assert torch.allclose((counts / 6 * losses).sum(), per_sample.mean())


@pytest.mark.parametrize(
    ("kind", "output", "target", "expected"),
    [
        ("multiclass", torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]), 0.5),
        ("binary", torch.tensor([[1.0], [-1.0], [3.0]]), torch.tensor([1, 1, 0]), 1 / 3),
    ],
)
def test_task_accuracy(kind, output, target, expected):
    task = Task("t", kind, output.shape[1])
    accumulator = task.accumulator()
    accumulator.update(output[:1], target[:1])
    accumulator.update(output[1:], target[1:])  # two batches: the mean over every sample
    assert math.isclose(accumulator.compute()["accuracy"], expected)


def test_regression_task_uses_mse_lower_is_better():
    task = Task("r", "regression", 2)
    assert task.primary_metric == "mse" and not task.higher_is_better
    loss = task.loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 0.0]]))
    assert math.isclose(float(loss), 5.0)
