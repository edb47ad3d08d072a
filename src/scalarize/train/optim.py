"""A run's optimizer (with torch's fused kernel where it has one) and learning-rate schedule,
built from the config: every engine (trainer, stacked population, Ray trial) builds them here,
so the same config gives the same numbers everywhere."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from scalarize.methods.base import OWN_OPTIMIZER, Method
from scalarize.train.config import TrainConfig


def build_optimizer(config: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    opt = config.optimizer
    if opt.name == "sgd":
        return torch.optim.SGD(params, lr=opt.lr, momentum=opt.momentum, weight_decay=opt.weight_decay)
    if opt.name == "adam":
        return torch.optim.Adam(params, lr=opt.lr, weight_decay=opt.weight_decay)
    return torch.optim.AdamW(params, lr=opt.lr, weight_decay=opt.weight_decay)


def lr_factor(config: TrainConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate's multiplier at each step: ``constant`` 1, ``cosine`` from 1 to 0 over
    the run, ``step`` times ``gamma`` every ``step_size`` epochs; with ``warmup_steps`` = W > 0,
    times a linear ramp ``min(1, (step + 1) / W)`` (1/W at the first step, 1 from step W − 1 on)."""
    decay = _decay(config, total_steps, steps_per_epoch)
    warmup = config.schedule.warmup_steps
    if not warmup:
        return decay
    return lambda step: decay(step) * min(1.0, (step + 1) / warmup)


def _decay(config: TrainConfig, total_steps: int, steps_per_epoch: int) -> Callable[[int], float]:
    schedule = config.schedule
    if schedule.name == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / total_steps))
    if schedule.name == "step":
        every = schedule.step_size * steps_per_epoch
        return lambda step: schedule.gamma ** (step // every)
    return lambda step: 1.0


def fused_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """``optimizer`` rebuilt with torch's fused kernel where torch has one (Adam, AdamW, SGD on
    CPU or CUDA floating-point parameters), else unchanged.

    torch's default Adam on the CPU makes seven passes over each parameter per step (lerp, mul,
    addcmul, sqrt, div, add, addcdiv), the fused one a single pass (what that saves is measured
    by ``benchmarks/framework_overhead.py``; figures in the README). Same update rule, to
    rounding (about 1 ulp per step). Every run and population builds its optimizer through here (a method's own optimizer
    excepted), so the same config gives the same numbers in every engine. AdamW's
    ``decoupled_weight_decay`` is implied by its class, not an argument of its constructor.
    """
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD):
        return optimizer
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if len(optimizer.param_groups) != 1 or not all(
        p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params
    ):
        return optimizer
    settings = {**optimizer.defaults, "foreach": None, "fused": True}
    if type(optimizer) is torch.optim.AdamW:
        settings.pop("decoupled_weight_decay", None)
    try:
        return type(optimizer)(params, **settings)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel for this dtype/device/setting
        return optimizer


def build_schedule(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, total_steps, steps_per_epoch))


def clip_gradients(params: list[torch.nn.Parameter], max_norm: float | None) -> None:
    """Scales the gradients of ``params`` so that their joint 2-norm is at most ``max_norm``
    (``torch.nn.utils.clip_grad_norm_``'s rule: a factor ``min(1, max_norm / (norm + 1e-6))``,
    computed on the device: no host sync); nothing when ``max_norm`` is None."""
    if max_norm is not None:
        torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm, foreach=True)


def run_optimizer(config: TrainConfig, method: Method, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The run's optimizer: the method's own (``OWN_OPTIMIZER``, e.g. MTAdam), else the config's
    with torch's fused kernel where it has one (the same rule, one pass instead of seven)."""
    if OWN_OPTIMIZER in method.needs:
        return method.build_optimizer(params, config.optimizer.lr)
    return fused_optimizer(build_optimizer(config, params))
