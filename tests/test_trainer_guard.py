"""The CPU step's non-finite checks: gradients and losses are read together (one host sync) and
told apart only when something is not finite; a loss that turns non-finite while the gradients stay finite ends the run
as diverged at that step, and the step itself is applied."""

from __future__ import annotations

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import Method, StepContext
from scalarize.models import build_model
from scalarize.train import TrainConfig, Trainer

TINY = {"name": "multimnist", "options": {"train_size": 120, "test_size": 60}}
INF, NAN = float("inf"), float("nan")


def _trainer(method, steps=6):
    config = TrainConfig(
        name="g",
        benchmark=TINY,
        model={"width": 0.1},
        steps=steps,
        eval_every=3,
        batch_size=30,
        stl=False,
        device="cpu",
    )
    bench = load_benchmark(TINY["name"], **TINY["options"])
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.1, 1)
    return Trainer(config, bench, model, method, run_name="g", progress=False)


class Uniform(Method):
    name = "uniform_guard"

    def backward(self, context: StepContext) -> None:
        context.backward(context.losses.mean())


@pytest.fixture(scope="module")
def trainer():
    return _trainer(Uniform())


def _set_gradients(trainer, value: float) -> None:
    for index, p in enumerate(trainer._params):
        p.grad = torch.full_like(p, 1.0)
        if index == 1:
            p.grad.view(-1)[0] = value


@pytest.mark.parametrize(
    "gradient, loss, expected",
    [
        (1.0, 1.0, (True, True)),
        (NAN, 1.0, (False, True)),
        (INF, 1.0, (False, True)),
        (1.0, INF, (True, False)),
        (1.0, NAN, (True, False)),
        (NAN, NAN, (False, False)),
        (1e20, 1.0, (True, True)),  # huge but finite (its square would overflow a 2-norm)
        (3e38, INF, (True, False)),
    ],
)
def test_gradients_and_losses_are_told_apart(trainer, gradient, loss, expected):
    _set_gradients(trainer, gradient)
    assert trainer._finite_on_host(torch.tensor([0.5, loss])) == expected


def test_no_gradient_at_all_is_finite(trainer):
    for p in trainer._params:
        p.grad = None
    assert trainer._finite_on_host(torch.tensor([0.5, 0.25])) == (True, True)
    assert trainer._finite_on_host(torch.tensor([0.5, INF])) == (True, False)


class InfiniteLossOnStep(Method):
    """Trains on the first task only; the second task's reported loss is infinite on one step
    (its gradients stay finite)."""

    name = "infinite_loss_on_step"

    def __init__(self, step: int) -> None:
        super().__init__()
        self.bad = step

    def backward(self, context: StepContext) -> None:
        context.backward(context.losses[0])
        if context.step == self.bad:
            context.losses = context.losses.detach() + torch.tensor([0.0, INF])


def test_an_infinite_loss_with_finite_gradients_is_applied_then_ends_the_run_as_diverged():
    trainer = _trainer(InfiniteLossOnStep(step=4), steps=6)
    result = trainer.fit()
    assert result.status == "diverged"
    assert trainer.diverged_at == 5  # the step count after the bad step, as for a bad gradient's run
    assert trainer.step == 6 and trainer.skipped_steps == 0
    assert "non-finite loss at step 5" in trainer.message


def test_the_check_works_with_float64_as_the_default_dtype():
    """A float64 model (built with float64 as the default dtype, as the stacked-equivalence tests
    do): the check's own tensors stay in the float32 its kernel takes."""
    from scalarize.data.benchmark import Benchmark, Split

    bench = load_benchmark(TINY["name"], **TINY["options"])
    domains = {
        d: {s: Split(split.inputs.double(), split.targets) for s, split in splits.items()}
        for d, splits in bench.domains.items()
    }
    bench = Benchmark(bench.name, bench.setting, bench.tasks, domains)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(0)
        model = build_model("mlp", bench.input_shape, bench.tasks, 0.1, 1)
        config = TrainConfig(
            name="g",
            benchmark=TINY,
            model={"width": 0.1},
            steps=2,
            eval_every=2,
            batch_size=30,
            stl=False,
            device="cpu",
        )
        trainer = Trainer(config, bench, model, Uniform(), run_name="g", progress=False)
        assert trainer.fit().status == "completed"
        _set_gradients(trainer, NAN)
        assert trainer._params[0].grad.dtype == torch.float64
        assert trainer._finite_on_host(torch.tensor([0.5, 0.25])) == (False, True)
    finally:
        torch.set_default_dtype(previous)
