"""Bad steps and bad input: a non-finite gradient skips the step (counted, stored, reported) and
training goes on; a method that needs shared parameters on a model without any, an unknown
method, a hyperparameter out of range end `scalarize train` with one line and exit code 2."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalarize.cli.main import main
from scalarize.data import load_benchmark
from scalarize.methods import Method, MethodError, StepContext, build_method
from scalarize.methods import registry as method_registry
from scalarize.models import build_model
from scalarize.models import registry as model_registry
from scalarize.models.multitask import MultiTaskModel
from scalarize.store import Store
from scalarize.train import TrainConfig, Trainer

TINY = {"name": "multimnist", "options": {"train_size": 300, "test_size": 100}}


class NaNOnSteps(Method):
    """Uniform scalarization whose gradients are NaN on the given steps (the losses stay finite)."""

    name = "nan_on_steps"

    def __init__(self, steps=(2, 4)) -> None:
        super().__init__()
        self.bad = set(steps)

    def backward(self, context: StepContext) -> None:
        loss = context.losses.mean()
        if context.step in self.bad:
            loss = loss * float("nan")
        context.backward(loss)


def _trainer(tmp_path, method, store=None, **kw):
    config = TrainConfig(
        name="n",
        benchmark=TINY,
        model={"width": 0.25},
        steps=8,
        eval_every=4,
        batch_size=32,
        stl=False,
        device="cpu",
        output=str(tmp_path),
        **kw,
    )
    bench = load_benchmark(TINY["name"], **TINY["options"])
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.25, 2)
    return Trainer(config, bench, model, method, run_name="n", store=store, progress=False)


def test_a_non_finite_gradient_skips_the_step_and_training_goes_on(tmp_path):
    with Store(tmp_path) as store:
        store.start_run("n", "main", {}, "f")
        trainer = _trainer(tmp_path, NaNOnSteps(), store)
        trainer.train_step()
        trainer.train_step()
        before = [p.detach().clone() for p in trainer.model.parameters()]
        trainer.train_step()  # step 2: NaN gradients
        for p, q in zip(before, trainer.model.parameters()):
            assert torch.equal(p, q)  # not applied
        assert trainer.skipped_steps == 1
        result = trainer.fit()
        assert result.status == "completed" and result.steps == 8
        assert result.skipped_steps == 2 and "2 step(s) skipped: non-finite gradients" in result.message
        assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
        skipped = store.history("n", "train")["skipped_steps"]
        assert [v for _, v in skipped] == [1.0, 1.0]  # per evaluation interval: steps 2 and 4
        assert store.costs("n")["skipped_steps"] == 2.0
        assert store.run("n")["message"] == "2 step(s) skipped: non-finite gradients"


def test_costs_are_measured_and_stored(tmp_path):
    with Store(tmp_path) as store:
        store.start_run("n", "main", {}, "f")
        result = _trainer(tmp_path, build_method("pcgrad"), store).fit()
        costs = store.costs("n")
    assert result.seconds_per_step > 0 and result.step_memory > 0
    assert costs["seconds_per_step"] == pytest.approx(result.seconds_per_step)
    assert costs["step_memory_bytes"] == result.step_memory and costs["steps"] == 8


def test_step_memory_grows_with_what_a_method_keeps():
    from scalarize.train.measure import step_memory

    def allocate(n):
        x = torch.ones(n)
        y = x * 2  # two live tensors of n floats at the peak
        return float((x + y).sum())

    _, small = step_memory(lambda: allocate(1000), "cpu")
    _, large = step_memory(lambda: allocate(100_000), "cpu")
    assert small >= 2 * 4000 and large >= 2 * 400_000 and large < 4 * 400_000


def _trunkless(input_shape, width=1.0, depth=2):
    return nn.Flatten(), int(torch.tensor(input_shape).prod())


def test_a_method_on_shared_gradients_with_a_model_without_shared_parameters(tmp_path, monkeypatch):
    bench = load_benchmark(TINY["name"], **TINY["options"])
    model = MultiTaskModel(nn.Flatten(), {t.name: nn.Linear(784, 10) for t in bench.tasks})
    config = TrainConfig(benchmark=TINY, steps=1, device="cpu")
    for name in ("pcgrad", "mgda_ub", "gradnorm"):
        with pytest.raises(MethodError, match=f"method.name: {name} needs per-task gradients on the shared"):
            Trainer(config, bench, model, build_method(name), progress=False)
    Trainer(config, bench, model, build_method("uw"), progress=False)  # loss space: fine


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(
        "name: t\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 50}}\nepochs: 1\n" + text
    )
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("method: {name: cagrad, options: {c: 2}}\n", "method cagrad: c must be in [0, 1), got 2"),
        ("method: {name: gradnorm, options: {alpha: -1}}\n", "method gradnorm: alpha must be in [0, inf), got -1"),
        ("method: {name: dwa, options: {temperature: 0}}\n", "method dwa: temperature must be in (0, inf), got 0"),
        ("method: {name: pcgrad, options: {seed: x}}\n", "method pcgrad: seed must be an integer, got 'x'"),
        (
            "method: {name: gradient_similarity, options: {main_task: middle}}\n",
            "method gradient_similarity: main_task 'middle' is not a task; tasks: left, right",
        ),
        ("method: {name: famo, options: {min_losses: [0, 0, 0]}}\n", "method famo: min_losses must be one number or 2"),
        (
            "method: {name: cagrad, options: {radius: 0.5}}\n",
            "method.options.radius: unknown option for method 'cagrad'; allowed: c, rescale",
        ),
        ("method: {name: pcgrad, weights: [1, 1]}\n", "method.weights: pcgrad takes no weights"),
        ("method: {name: pcgrad_v2}\n", "method.name: unknown method 'pcgrad_v2'; allowed:"),
        ("gradient_engine: fast\n", "gradient_engine: Input should be 'auto', 'loop' or 'batched'"),
    ],
)
def test_bad_method_input_through_the_cli(tmp_path, capsys, text, expected):
    output = tmp_path / "out"
    code = main(["train", str(_write(tmp_path, text)), f"output={output}", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("scalarize: error: ") and expected in err, err
    assert not output.exists()


def test_no_shared_parameters_through_the_cli(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(model_registry, "_MODELS", dict(model_registry._MODELS))
    monkeypatch.setattr(model_registry, "_TRUNK_FAMILIES", set(model_registry._TRUNK_FAMILIES))
    model_registry.register_trunk("trunkless", _trunkless)
    output = tmp_path / "out"
    config = _write(tmp_path, "model: {family: trunkless}\nmethod: {name: mgda}\n")
    assert main(["train", str(config), f"output={output}", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "method.name: mgda needs per-task gradients on the shared parameters" in err
    assert not output.exists()


def test_skipped_steps_are_reported_at_the_end_of_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(method_registry._METHODS, "nan_on_steps", NaNOnSteps)
    output = tmp_path / "out"
    config = _write(tmp_path, "method: {name: nan_on_steps}\nmodel: {width: 0.25}\nstl: false\nbatch_size: 64\n")
    assert main(["train", str(config), f"output={output}", "-q"]) == 0
    out = capsys.readouterr().out
    assert "warning: run t skipped 2 optimizer step(s): non-finite gradients" in out
    assert "run t skipped 2 optimizer step(s)" in (output / "report.md").read_text()


def test_the_first_step_is_a_warm_up_neither_timed_nor_measured(tmp_path):
    """Step 0 pays lazy set-up (on a GPU, the CUDA context: 7x a step on an H100); step 1 is
    measured for memory; the rest are timed."""
    trainer = _trainer(tmp_path, build_method("scalarization"))
    trainer.train_step()
    assert (trainer.timed_steps, trainer.step_memory) == (0, None)
    trainer.train_step()
    assert trainer.timed_steps == 0 and trainer.step_memory > 0
    trainer.train_step()
    trainer.train_step()
    assert trainer.timed_steps == 2 and trainer.train_seconds > 0
