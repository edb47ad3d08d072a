"""scalarize.integrations.lightning: a LightningModule trained by scalarize methods moves its
parameters as the same method moves them in a hand-written loop on the same batches, logs the
method's weights, skips non-finite steps and refuses, in one line, needs it cannot meet."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Mapping
from typing import Any

import pytest
import torch
from torch import Tensor, nn

pytest.importorskip("lightning")
import lightning.pytorch as pl  # noqa: E402

from scalarize.integrations.lightning import IntegrationError, ScalarizeModule  # noqa: E402
from scalarize.methods import AFTER_STEP, OWN_OPTIMIZER, StepContext, available_methods, build_method  # noqa: E402

TASKS = ["a", "b"]
STEPS = 3
BATCH = 8


class Net(nn.Module):
    """A trunk and two heads; forward returns ``(features, {task: output})`` (the model contract)."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh())
        self.heads = nn.ModuleDict({t: nn.Linear(8, 1) for t in TASKS})

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        z = self.trunk(x)
        return z, {t: head(z).squeeze(1) for t, head in self.heads.items()}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.trunk.parameters())

    def task_parameters(self) -> list[list[nn.Parameter]]:
        return [list(self.heads[t].parameters()) for t in TASKS]


class Lit(ScalarizeModule):
    def __init__(self, method: Any, *, features: bool = True, own_optimizer: bool = True, lr: float = 0.05) -> None:
        super().__init__(method, TASKS)
        self.net = Net()
        self.features, self.own_optimizer, self.lr = features, own_optimizer, lr
        self.poison = False

    def task_losses(self, batch: Any) -> Mapping[str, Any]:
        x, ya, yb = batch
        z, out = self.net(x)
        losses = {"a": nn.functional.mse_loss(out["a"], ya), "b": nn.functional.mse_loss(out["b"], yb)}
        if self.poison:  # a finite loss whose gradient is NaN (0/0)
            w = self.net.trunk[0].weight
            losses["a"] = losses["a"] + ((w - w.detach()) ** 2).sum().sqrt()
        return {"losses": losses, "features": z} if self.features else losses

    def shared_parameters(self) -> list[nn.Parameter]:
        return self.net.shared_parameters()

    def task_parameters(self) -> list[list[nn.Parameter]]:
        return self.net.task_parameters()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        if OWN_OPTIMIZER in self.method.needs and self.own_optimizer:
            return self.method_optimizer(self.lr)
        return torch.optim.Adam(self.parameters(), lr=self.lr)


class Plain(Lit):
    """No parameter groups: only loss-space methods fit."""

    shared_parameters = None  # type: ignore[assignment]
    task_parameters = None  # type: ignore[assignment]


def tensors(module: nn.Module) -> dict[str, Tensor]:
    """The module's state that is tensors (parameters, buffers; a method's generator state aside)."""
    return {k: v.clone() for k, v in module.state_dict().items() if isinstance(v, Tensor)}


def data() -> list[tuple[Tensor, Tensor, Tensor]]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(STEPS * BATCH, 4, generator=g)
    ya, yb = x[:, 0] - x[:, 1], torch.sin(x[:, 2]) + 0.1 * torch.randn(len(x), generator=g)
    return [(x[i : i + BATCH], ya[i : i + BATCH], yb[i : i + BATCH]) for i in range(0, len(x), BATCH)]


def loader() -> torch.utils.data.DataLoader[Any]:
    x, ya, yb = (torch.cat(parts) for parts in zip(*data()))
    dataset = torch.utils.data.TensorDataset(x, ya, yb)
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=False, generator=torch.Generator().manual_seed(0)
    )


def fit(module: ScalarizeModule, **options: Any) -> pl.Trainer:
    settings: dict[str, Any] = dict(
        max_steps=STEPS,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer = pl.Trainer(**{**settings, **options})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and loggers
        trainer.fit(module, train_dataloaders=loader())
    return trainer


def hand_loop(module: Lit) -> None:
    """README's own loop: the context from the losses, method.backward, the optimizer, the hook."""
    optimizer = module.configure_optimizers()
    for step, batch in enumerate(data()):
        out = module.task_losses(batch)
        losses = torch.stack([out["losses"][t] for t in TASKS])
        context = StepContext(
            losses,
            features=out["features"],
            shared_params=module.net.shared_parameters(),
            task_params=module.net.task_parameters(),
            step=step,
            epoch=0,
            recompute_losses=lambda batch=batch: torch.stack([module.task_losses(batch)["losses"][t] for t in TASKS]),
        )
        optimizer.zero_grad(set_to_none=True)
        module.method.backward(context)
        optimizer.step()
        if AFTER_STEP in module.method.needs:
            module.method.after_step(context)


METHODS = {
    "scalarization": dict(weights=[0.7, 0.3]),
    "pcgrad": dict(seed=0),
    "pcgrad_representation": dict(seed=0, gradients="representation"),
    "mgda_ub": {},
    "uw": {},
    "famo": {},
    "mtadam": {},
}


@pytest.mark.parametrize("name", list(METHODS))
def test_moves_parameters_as_a_hand_written_loop(name: str) -> None:
    torch.manual_seed(0)
    module = Lit(build_method(name.removesuffix("_representation"), **METHODS[name]))
    reference = copy.deepcopy(module)
    start = tensors(module)
    trainer = fit(module)
    hand_loop(reference)
    assert trainer.global_step == STEPS and module.skipped_steps == 0
    moved = [k for k, v in tensors(module).items() if not torch.equal(v, start[k])]
    assert any(k.startswith("net.trunk") for k in moved)
    if name == "uw":  # the method's own parameters are trained too
        assert any(k.startswith("method.") for k in moved)
    for key, value in tensors(reference).items():
        torch.testing.assert_close(tensors(module)[key], value, atol=1e-6, rtol=1e-6, msg=key)
    weights = module.method.current_weights()
    if weights is not None:
        for task, w in zip(TASKS, weights):
            assert float(trainer.callback_metrics[f"weights/{task}"]) == pytest.approx(float(w), rel=1e-6)
    assert float(trainer.callback_metrics["train/skipped_steps"]) == 0.0


#: Methods whose required options name a schedule or a stored run (not the integration's concern).
NEED_OPTIONS = {"frozen", "scheduled_scalarization"}


@pytest.mark.parametrize("name", [m for m in available_methods() if m not in NEED_OPTIONS])
def test_every_method_trains_or_is_refused_in_one_line(name: str) -> None:
    method = build_method(name, **({"weights": [0.5, 0.5]} if name == "scalarization" else {}))
    if "mtl" not in getattr(type(method), "settings", {"mtl"}):
        with pytest.raises(IntegrationError, match="MDL only"):
            Lit(method)
        return
    module = Lit(method)
    module.set_preference = lambda preference: None  # type: ignore[attr-defined]  # (COSMOS)
    trainer = fit(module)
    assert trainer.global_step == STEPS and module.skipped_steps == 0
    assert all(torch.isfinite(p).all() for p in module.parameters())


def test_loss_space_method_needs_no_parameter_groups() -> None:
    torch.manual_seed(0)
    module = Plain(build_method("scalarization", weights=[0.7, 0.3]), features=False)
    reference = copy.deepcopy(module)
    fit(module)
    optimizer = reference.configure_optimizers()
    for batch in data():
        losses = reference.task_losses(batch)
        optimizer.zero_grad()
        (0.7 * losses["a"] + 0.3 * losses["b"]).backward()
        optimizer.step()
    for key, value in tensors(reference).items():
        torch.testing.assert_close(tensors(module)[key], value, atol=1e-6, rtol=1e-6, msg=key)
    assert float(fit(Plain(build_method("uw"), features=False)).callback_metrics["weights/a"]) > 0


def test_non_finite_steps_are_skipped() -> None:
    module = Lit(build_method("famo"))
    module.poison = True
    start = tensors(module)
    trainer = fit(module, max_steps=-1, max_epochs=1)
    assert module.skipped_steps == STEPS and module.diverged_at is None and trainer.global_step == 0
    for key, value in start.items():  # no update (FAMO's own state is its backward's, as in the trainer)
        if not key.endswith(("prev_losses", "min_losses")):
            assert torch.equal(tensors(module)[key], value), key
    assert float(trainer.callback_metrics["train/skipped_steps"]) == STEPS


def test_end_epoch_gets_the_epoch_mean_losses() -> None:
    seen: list[tuple[int, Tensor]] = []
    method = build_method("dwa")
    original = method.end_epoch
    method.end_epoch = lambda epoch, losses: (seen.append((epoch, losses.clone())), original(epoch, losses))[1]  # type: ignore[method-assign]
    fit(Lit(method), max_steps=2 * STEPS)
    assert [epoch for epoch, _ in seen] == [0, 1]
    assert seen[0][1].shape == (2,) and torch.isfinite(seen[0][1]).all()


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Lit(build_method("mtadam"), own_optimizer=False), "return self.method_optimizer"),
        (lambda: Plain(build_method("pcgrad")), "define shared_parameters() and task_parameters()"),
        (lambda: Lit(build_method("mgda_ub"), features=False), '"features": z'),
        (lambda: Lit(build_method("pcgrad", gradients="representation"), features=False), '"features": z'),
        (lambda: Lit(build_method("cosmos")), "define set_preference"),
    ],
)
def test_needs_it_cannot_meet_are_one_line(build: Any, message: str) -> None:
    with pytest.raises(IntegrationError, match=message.replace("(", r"\(").replace(")", r"\)")) as caught:
        fit(build())
    assert "\n" not in str(caught.value)


def test_optimizer_without_the_methods_parameters_is_refused() -> None:
    class NetOnly(Lit):
        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.net.parameters(), lr=0.1)

    with pytest.raises(IntegrationError, match="build it over self.parameters"):
        fit(NetOnly(build_method("uw")))


def test_mdl_only_methods_are_refused() -> None:
    with pytest.raises(IntegrationError, match="MDL only"):
        Lit(build_method("doremi"))
