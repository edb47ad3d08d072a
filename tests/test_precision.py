"""Precision options: bf16/fp16 autocast, fp16's loss scale through every method's gradients,
channels-last and torch.compile, on the CPU."""

import pytest
import torch

from scalarize.data import load_benchmark
from scalarize.methods import available_methods, build_method
from scalarize.methods.registry import method_class
from scalarize.models import build_model
from scalarize.train import TrainConfig, Trainer

SKIP = {"frozen", "scheduled_scalarization", "cosmos"}  # need a recorded trajectory / a schedule


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("multimnist", train_size=120, test_size=40)


@pytest.fixture(scope="module")
def digits():
    return load_benchmark("digits")


def _mdl_only(name: str) -> bool:
    """A method whose class runs in MDL only (its ``settings``: the mixture methods)."""
    return "mtl" not in getattr(method_class(name), "settings", ("mtl",))


def _trainer(bench, name, **config):
    torch.manual_seed(0)
    model = build_model(config.pop("family", "mlp"), bench.input_shape, bench.tasks, width=0.05, depth=1)
    settings = dict(steps=2, batch_size=20, device="cpu", eval_every=2)
    return Trainer(TrainConfig(**{**settings, **config}), bench, model, build_method(name), progress=False)


@pytest.mark.parametrize("name", sorted(set(available_methods()) - SKIP))
def test_every_method_trains_under_bf16(bench, digits, name, one_thread):
    result = _trainer(digits if _mdl_only(name) else bench, name, precision="bf16").fit()
    assert result.status == "completed" and all(torch.isfinite(torch.tensor(list(result.val.values()))))


@pytest.mark.parametrize("name", sorted(set(available_methods()) - SKIP))
def test_fp16s_loss_scale_leaves_every_methods_update_unchanged(bench, digits, name, one_thread):
    """A power-of-two loss scale is exact in floating point: seeding every backward pass with it
    and unscaling each gradient as it is produced must give the very same .grad, for every method
    (Jacobians, representation gradients, task gradients, plain backward)."""
    grads = []
    for scale in (None, 2.0**12):
        trainer = _trainer(digits if _mdl_only(name) else bench, name)
        torch.manual_seed(1)
        context = trainer._context(trainer.sampler.next_batch())
        context.loss_scale = scale
        trainer.optimizer.zero_grad(set_to_none=True)
        trainer.method.backward(context)
        grads.append([None if p.grad is None else p.grad.clone() for p in trainer._params])
    for plain, scaled in zip(*grads):
        assert (plain is None) == (scaled is None)
        if plain is not None:
            torch.testing.assert_close(scaled, plain, rtol=1e-5, atol=1e-7)


def test_fp16_trains_with_a_dynamic_loss_scale(bench, one_thread):
    trainer = _trainer(bench, "pcgrad", precision="fp16", steps=4, eval_every=4)
    result = trainer.fit()
    assert result.status == "completed" and trainer.loss_scale.value == 2.0**16  # no overflow, no growth yet
    trainer.loss_scale.update(False)
    assert trainer.loss_scale.value == 2.0**15


def test_an_overflowing_step_is_skipped_and_halves_the_scale(bench, one_thread):
    trainer = _trainer(bench, "scalarization", precision="fp16", steps=3)
    trainer.loss_scale.scale = 1e39  # seeds overflow float32: inf gradients
    trainer.train_step()
    assert trainer.record.skipped_steps == 1 and trainer.loss_scale.scale == 1e39 / 2


def test_channels_last_is_a_gpu_layout(bench, one_thread):
    """On the CPU the layout stays NCHW (oneDNN corrupted the heap with few-channel convolutions
    in channels-last); on a GPU the model and its image batches go channels-last."""
    trainer = _trainer(bench, "scalarization", family="resnet", channels_last=True)
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert trainer._channels_last is False and conv.weight.is_contiguous()
    if torch.cuda.is_available():
        gpu = _trainer(bench, "scalarization", family="resnet", channels_last=True, device="cuda")
        conv = next(m for m in gpu.model.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scalarization", "pcgrad", "mgda_ub"])
def test_compile_trains_every_kind_of_method(bench, name, one_thread):
    """torch.compile on the CPU (inductor): loss space, per-task gradients on the shared
    parameters and on the representation (the loop engine: vmap cannot go through a compiled
    backward, so compile: true with gradient_engine: batched is refused)."""
    eager = _trainer(bench, name, gradient_engine="loop").fit()
    compiled = _trainer(bench, name, compile=True).fit()
    for key, value in eager.test.items():  # the losses: accuracies on 40 samples flip on rounding
        if key.endswith("/loss"):
            assert compiled.test[key] == pytest.approx(value, rel=1e-4), key


def test_compile_refuses_the_batched_engine():
    from scalarize.train.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="gradient_engine: batched cannot differentiate through a compiled model"):
        load_config(None, ["compile=true", "gradient_engine=batched"])


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_stacked_population_trains_under_mixed_precision(bench, precision, one_thread):
    from scalarize.population import StackedPopulation
    from scalarize.train import RunSpec

    base = TrainConfig(
        model={"width": 0.05, "depth": 1}, steps=3, eval_every=3, batch_size=20, device="cpu", precision=precision
    )
    members = [
        RunSpec(
            f"m{i}",
            base.model_copy(update={"seed": i, "method": base.method.model_copy(update={"weights": [i + 1.0, 1.0]})}),
        )
        for i in range(2)
    ]
    results = StackedPopulation(members, bench, progress=False).fit()
    assert [r.status for r in results] == ["completed", "completed"]
    assert all(r.skipped_steps == 0 for r in results)
