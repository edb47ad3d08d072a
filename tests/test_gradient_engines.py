"""Per-task gradient engines: ``loop`` and ``batched`` give the same Jacobian, the same task
gradients and the same method updates; ``auto`` picks by the model; the trainer takes the
engine from the config."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalarize.data import load_benchmark
from scalarize.methods import StepContext, build_method
from scalarize.methods.context import resolve_gradient_engine
from scalarize.models import build_model
from scalarize.train import TrainConfig, Trainer
from scalarize.train.config import ConfigError, load_config

ENGINES = ("loop", "batched")


pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp_problem(num_tasks=3, unused=False):
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.ReLU())
    spare = nn.Linear(2, 2)  # a "shared" parameter no loss reaches
    heads = nn.ModuleList([nn.Linear(6, 2) for _ in range(num_tasks)])
    x = torch.randn(16, 5)
    shared = [*trunk.parameters(), *(spare.parameters() if unused else [])]

    def context(engine):
        z = trunk(x)
        losses = torch.stack([((h(z) - i) ** 2).mean() for i, h in enumerate(heads)])
        return StepContext(
            losses,
            features=z,
            shared_params=shared,
            task_params=[list(h.parameters()) for h in heads],
            gradient_engine=engine,
        )

    return context


def _resnet_problem():
    bench = load_benchmark("multimnist", train_size=300, test_size=100)
    torch.manual_seed(0)
    model = build_model("resnet", bench.input_shape, bench.tasks, width=0.25, depth=1)
    train = bench.split("train")
    x = train.inputs[:8]

    def context(engine):
        features, outputs = model(x)
        losses = torch.stack([t.loss(outputs[t.name], train.targets[t.name][:8]) for t in bench.tasks])
        return StepContext(
            losses,
            features=features,
            shared_params=model.shared_parameters(),
            task_params=model.task_parameters(),
            gradient_engine=engine,
        )

    return context


@pytest.mark.parametrize("problem", ["mlp", "mlp-unused", "resnet"])
def test_engines_give_the_same_jacobian_and_task_gradients(problem):
    make = {"mlp": _mlp_problem, "mlp-unused": lambda: _mlp_problem(unused=True), "resnet": _resnet_problem}[problem]()
    contexts = {engine: make(engine) for engine in ENGINES}
    jacobians = {e: c.shared_jacobian() for e, c in contexts.items()}
    assert jacobians["loop"].shape[0] == contexts["loop"].losses.numel()
    torch.testing.assert_close(jacobians["batched"], jacobians["loop"], rtol=1e-5, atol=1e-6)
    loop_tasks, batched_tasks = contexts["loop"].task_gradients(), contexts["batched"].task_gradients()
    for loop_grads, batched_grads in zip(loop_tasks, batched_tasks):
        for a, b in zip(loop_grads, batched_grads):
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        contexts["batched"].feature_jacobian(), contexts["loop"].feature_jacobian(), rtol=1e-5, atol=1e-6
    )


def test_the_jacobian_rows_are_the_task_gradients():
    context = _mlp_problem()("batched")
    jacobian = context.shared_jacobian()
    for i in range(3):
        grads = torch.autograd.grad(context.losses[i], context.shared_params, retain_graph=True)
        torch.testing.assert_close(jacobian[i], torch.cat([g.reshape(-1) for g in grads]))


def test_mdl_context_without_task_parameters():
    torch.manual_seed(0)
    trunk = nn.Linear(3, 4)
    z = trunk(torch.randn(8, 3))
    losses = torch.stack([(z**2).mean(), ((z - 1) ** 2).mean()])
    jac = {
        e: StepContext(
            losses, features=z, shared_params=list(trunk.parameters()), task_params=[], gradient_engine=e
        ).shared_jacobian()
        for e in ENGINES
    }
    torch.testing.assert_close(jac["batched"], jac["loop"])


def test_auto_is_batched_on_gpu_and_dense_trunks_the_loop_for_conv_trunks_on_cpu():
    from types import SimpleNamespace

    dense = [nn.Parameter(torch.ones(3, 2)), nn.Parameter(torch.ones(3))]
    conv = [*dense, nn.Parameter(torch.ones(4, 3, 3, 3))]
    assert resolve_gradient_engine("auto") == "loop"
    assert resolve_gradient_engine("auto", dense) == "batched"
    assert resolve_gradient_engine("auto", conv) == "loop"
    assert resolve_gradient_engine("auto", [SimpleNamespace(device=torch.device("cuda"), dim=lambda: 4)]) == "batched"
    assert resolve_gradient_engine("loop", dense) == "loop"
    assert resolve_gradient_engine("batched", conv) == "batched"
    with pytest.raises(ValueError, match="gradient_engine: must be one of auto, loop, batched"):
        resolve_gradient_engine("gramian")


def _counting_problem(num_tasks=4):
    """Heads that count their backward passes."""
    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(5, 6), nn.ReLU())
    heads = nn.ModuleList([nn.Linear(6, 1) for _ in range(num_tasks)])
    calls = [0] * num_tasks
    for i, head in enumerate(heads):
        head.register_full_backward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    x = torch.randn(8, 5)

    def losses():
        z = trunk(x)
        return z, [(heads[i](z) ** 2).mean() for i in range(num_tasks)]

    return trunk, heads, losses, calls


@pytest.mark.parametrize("form", ["stack", "list", "other"])
def test_each_task_backward_starts_from_its_own_loss(form):
    """From a stack (or a list) of task losses, task i's backward runs through head i only; any
    other [T] tensor is differentiated row by row, through every head, to the same Jacobian."""
    trunk, heads, losses, calls = _counting_problem()
    z, parts = losses()
    vector = {"stack": torch.stack(parts), "list": parts, "other": torch.cat([p.reshape(1) for p in parts])}[form]
    context = StepContext(
        vector,
        features=z,
        shared_params=list(trunk.parameters()),
        task_params=[list(h.parameters()) for h in heads],
        gradient_engine="loop",
    )
    jacobian = context.shared_jacobian()
    assert calls == ([1, 1, 1, 1] if form != "other" else [4, 4, 4, 4])
    z, parts = losses()
    reference = torch.stack(
        [
            torch.cat([g.reshape(-1) for g in torch.autograd.grad(p, list(trunk.parameters()), retain_graph=True)])
            for p in parts
        ]
    )
    torch.testing.assert_close(jacobian, reference)


@pytest.mark.parametrize(
    "name",
    ["pcgrad", "mgda", "cagrad", "graddrop", "nash_mtl", "upgrad", "gradnorm", "mgda_ub", "metabalance", "mtadam"],
)
def test_methods_make_the_same_update_with_either_engine(name):
    make = _mlp_problem()
    updates = {}
    for engine in ENGINES:
        method = build_method(name, seed=3) if name in ("pcgrad", "graddrop") else build_method(name)
        method.setup(["a", "b", "c"])
        context = make(engine)
        for p in context.shared_params + [p for ps in context.task_params for p in ps]:
            p.grad = None
        method.backward(context)
        params = context.shared_params + [p for ps in context.task_params for p in ps] + list(method.parameters())
        updates[engine] = [p.grad.clone() for p in params if p.grad is not None]
    assert len(updates["loop"]) == len(updates["batched"]) > 0
    for a, b in zip(updates["loop"], updates["batched"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-6)


def _short_config(tmp_path, engine, method="pcgrad"):
    return TrainConfig(
        name="e",
        benchmark={"name": "multimnist", "options": {"train_size": 300, "test_size": 100}},
        model={"width": 0.25},
        method={"name": method},
        steps=6,
        eval_every=3,
        batch_size=32,
        stl=False,
        device="cpu",
        gradient_engine=engine,
        output=str(tmp_path / engine),
    )


def test_the_trainer_takes_the_engine_from_the_config(tmp_path, monkeypatch):
    seen = []
    original = StepContext.__init__

    def spy(self, *args, **kwargs):
        original(self, *args, **kwargs)
        seen.append(self.gradient_engine)

    monkeypatch.setattr(StepContext, "__init__", spy)
    params = {}
    for engine in ENGINES:
        config = _short_config(tmp_path, engine)
        bench = load_benchmark("multimnist", train_size=300, test_size=100)
        torch.manual_seed(0)
        model = build_model("mlp", bench.input_shape, bench.tasks, 0.25, 2)
        Trainer(config, bench, model, build_method("pcgrad", seed=0), progress=False).fit()
        params[engine] = [p.detach().clone() for p in model.parameters()]
        assert set(seen) == {engine}
        seen.clear()
    for a, b in zip(params["loop"], params["batched"]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_engine_in_the_config_and_the_fingerprint(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("name: x\n")
    assert load_config(config).gradient_engine == "auto"
    assert load_config(config, ["gradient_engine=loop"]).gradient_engine == "loop"
    with pytest.raises(ConfigError, match="gradient_engine: Input should be 'auto', 'loop' or 'batched'"):
        load_config(config, ["gradient_engine=gramian"])
    auto, loop = load_config(config), load_config(config, ["gradient_engine=loop"])
    assert auto.fingerprint() != loop.fingerprint()
    # "auto" (and every key added since, at its default) leaves the fingerprint of runs made
    # before the option existed unchanged: the value the first release computed for this config
    assert auto.fingerprint() == "b67945b1a09b46a3"
    assert load_config(config, ["threads=2"]).fingerprint() == "b67945b1a09b46a3"  # no effect on the numbers


def test_mdl_gradient_methods_train_the_shared_head():
    """In MDL the one head is reached by every domain's loss: a shared parameter."""
    bench = load_benchmark("digits")
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.25, 2)
    before = [p.detach().clone() for p in model.parameters()]
    config = TrainConfig(benchmark={"name": "digits"}, steps=2, device="cpu", stl=False)
    trainer = Trainer(config, bench, model, build_method("pcgrad", seed=0), progress=False)
    assert len(trainer.shared_params) == len(list(model.parameters())) and trainer.task_params == []
    trainer.train_step()
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
