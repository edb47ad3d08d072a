"""The trainer's run core pinned by behaviour (issue #18): the documented learning rates at known
steps, the optimizers a config builds, the device a name resolves to, what a method's step reads
(step, epoch, batches, its independent sampler), the end-of-epoch hook's mean losses, skipped
steps (no optimizer step, no ``after_step``), segment and evaluation boundaries, divergence, the
timing/memory split of the steps, and resuming at every evaluation with every piece of state."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import same_state, tiny_mdl

from scalarize.data import load_benchmark
from scalarize.data.sampling import build_sampler
from scalarize.methods import Method, MethodError, build_method
from scalarize.methods.base import AFTER_STEP, INDEPENDENT_BATCHES, LOSSES
from scalarize.models import build_model
from scalarize.train import TrainConfig, Trainer, optim
from scalarize.train import trainer as trainer_module
from scalarize.train.checkpoint import MODEL_FILE, load_checkpoint
from scalarize.train.devices import resolve_device
from scalarize.train.distributed import DistributedError
from scalarize.train.optim import build_optimizer, lr_factor
from scalarize.train.setup import check_method_fits_model

MTL = ("multimnist", {"train_size": 90, "test_size": 30})  # batch 30: 3 steps per epoch


@pytest.fixture(scope="module")
def bench():
    return load_benchmark(MTL[0], **MTL[1])


@pytest.fixture(scope="module")
def digits(bench):
    return tiny_mdl(bench)


def _config(**kw):
    settings = {"steps": 7, "eval_every": 2, "batch_size": 30, "device": "cpu", "optimizer": {"lr": 0.01}}
    return TrainConfig(**{**settings, **kw})


def _trainer(bench, method=None, path=None, **kw):
    torch.manual_seed(0)
    method = method if method is not None else build_method("scalarization")
    model = build_model("mlp", bench.input_shape, bench.tasks, width=0.05, depth=1)
    return Trainer(_config(**kw), bench, model, method, checkpoint_path=path, progress=False)


class Recording(Method):
    """Uniform scalarization that records what the trainer tells it; NaN gradients on ``bad``."""

    name = "recording"
    needs = frozenset({LOSSES, AFTER_STEP})

    def __init__(self, bad=()) -> None:
        super().__init__()
        self.bad = set(bad)
        self.contexts: list[tuple[int, int, str, object]] = []
        self.after: list[int] = []
        self.epochs: list[tuple[int, torch.Tensor]] = []
        self.weights_asked = 0

    def backward(self, context) -> None:
        self.contexts.append((context.step, context.epoch, context.gradient_engine, context.loss_scale))
        loss = context.losses.mean()
        if context.step in self.bad:
            loss = loss * float("nan")
        context.backward(loss)

    def after_step(self, context) -> None:
        self.after.append(context.step)

    def end_epoch(self, epoch, mean_train_losses) -> None:
        self.epochs.append((epoch, mean_train_losses.clone()))

    def current_weights(self):
        return torch.tensor([0.5, 0.5])


# -- helpers ------------------------------------------------------------------------------------
def test_resolve_device(monkeypatch):
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match=r"^device: 'cuda' was asked for but no CUDA device is available"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")


def test_the_configured_optimizer_is_built_with_its_settings():
    params = [torch.nn.Parameter(torch.zeros(3))]
    sgd = build_optimizer(_config(optimizer={"name": "sgd", "lr": 0.2, "momentum": 0.5, "weight_decay": 0.01}), params)
    assert type(sgd) is torch.optim.SGD
    assert (sgd.defaults["lr"], sgd.defaults["momentum"], sgd.defaults["weight_decay"]) == (0.2, 0.5, 0.01)
    adam = build_optimizer(_config(optimizer={"name": "adam", "lr": 0.3, "weight_decay": 0.02}), params)
    assert type(adam) is torch.optim.Adam and (adam.defaults["lr"], adam.defaults["weight_decay"]) == (0.3, 0.02)
    adamw = build_optimizer(_config(optimizer={"name": "adamw", "lr": 0.4, "weight_decay": 0.03}), params)
    assert type(adamw) is torch.optim.AdamW and (adamw.defaults["lr"], adamw.defaults["weight_decay"]) == (0.4, 0.03)
    assert adamw.param_groups[0]["params"] == params


def test_lr_factors_of_the_three_schedules():
    cosine = lr_factor(_config(schedule={"name": "cosine"}), 10, 3)
    assert [round(cosine(s), 6) for s in (0, 5, 10, 12)] == [1.0, 0.5, 0.0, 0.0]
    assert cosine(2) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))
    step = lr_factor(_config(schedule={"name": "step", "step_size": 2, "gamma": 0.5}), 100, 3)
    assert [step(s) for s in (0, 5, 6, 11, 12, 18)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]
    constant = lr_factor(_config(), 10, 3)
    assert [constant(s) for s in (0, 7, 100)] == [1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ({"name": "cosine"}, [0.5 * (1 + math.cos(math.pi * s / 6)) for s in range(7)]),
        ({"name": "step", "step_size": 1, "gamma": 0.5}, [1, 1, 1, 0.5, 0.5, 0.5, 0.25]),
        ({"name": "constant"}, [1.0] * 7),
    ],
)
def test_the_trainer_applies_the_schedule_at_each_step(bench, schedule, expected):
    trainer = _trainer(bench, steps=6, schedule=schedule, optimizer={"name": "sgd", "lr": 0.1})
    seen = []
    for _ in range(6):
        seen.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.train_step()
    seen.append(trainer.optimizer.param_groups[0]["lr"])
    assert seen == pytest.approx([0.1 * e for e in expected], abs=1e-12)


def test_epochs_set_the_total_and_the_evaluation_interval_defaults_to_an_epoch(bench):
    trainer = _trainer(bench, steps=None, eval_every=None, epochs=2)
    assert (trainer.steps_per_epoch, trainer.total_steps, trainer.eval_every) == (3, 6, 3)
    trainer.fit()
    assert [h["step"] for h in trainer.history] == [3, 6]


def test_a_method_on_feature_gradients_with_a_trunkless_model_names_the_representation(bench):
    from torch import nn

    from scalarize.models.multitask import MultiTaskModel

    model = MultiTaskModel(nn.Flatten(), {t.name: nn.Linear(784, 10) for t in bench.tasks})
    method = build_method("mgda_ub")
    with pytest.raises(MethodError, match="mgda_ub needs per-task gradients on the shared representation, but"):
        check_method_fits_model(method, model)
    check_method_fits_model(build_method("pcgrad"), build_model("mlp", bench.input_shape, bench.tasks, 0.05, 1))


# -- what a step reads ---------------------------------------------------------------------------
def test_the_step_context_and_the_end_of_epoch_hook(bench):
    method = Recording()
    trainer = _trainer(bench, method, steps=7, eval_every=2, gradient_engine="loop")
    assert method.task_names == [t for t in bench.objectives] and method.setting == "mtl"  # set up by the trainer
    losses = []
    original = trainer.train_step
    trainer.train_step = lambda: losses.append(original()) or losses[-1]
    while trainer.train_segment() == "running":
        pass
    assert [c[:2] for c in method.contexts] == [(s, s // 3) for s in range(7)]
    assert all(c[2] == "loop" and c[3] is None for c in method.contexts)
    assert [e for e, _ in method.epochs] == [0, 1] and all(type(e) is int for e, _ in method.epochs)
    torch.testing.assert_close(method.epochs[0][1], torch.stack(losses[:3]).mean(0), rtol=0, atol=0)
    torch.testing.assert_close(method.epochs[1][1], torch.stack(losses[3:6]).mean(0), rtol=0, atol=0)
    assert trainer._epoch_loss_steps == 1 and torch.equal(trainer._epoch_loss_sum, losses[6])
    assert method.after == list(range(7))
    other = _trainer(bench, Recording())
    other.train_step(), other.train_step()
    assert [(s, w.tolist()) for s, w in other.record.weight_log] == [(1, [0.5, 0.5]), (2, [0.5, 0.5])]


def test_the_training_batches_come_from_the_seeded_sampler(bench):
    trainer = _trainer(bench, seed=5)
    assert trainer.independent_sampler is None
    reference = build_sampler(trainer.benchmark, 30, 6)
    for _ in range(4):
        assert torch.equal(trainer.sampler.next_batch().inputs, reference.next_batch().inputs)


def test_methods_that_need_independent_batches_get_their_own_sampler(bench):
    class Independent(Recording):
        needs = frozenset({LOSSES, INDEPENDENT_BATCHES})

        def backward(self, context):
            self.independent = context._independent_losses()
            super().backward(context)

    method = Independent()
    trainer = _trainer(bench, method, seed=5)
    plain = _trainer(bench, Recording(), seed=5)
    assert trainer.independent_sampler is not None
    other = build_sampler(trainer.benchmark, 30, 7).next_batch()
    with torch.no_grad():
        expected = trainer._losses(trainer._outputs(other.inputs)[1], other)
    trainer.train_step()
    torch.testing.assert_close(method.independent.detach(), expected)
    plain.train_step()  # the training stream is the one of a method without independent batches
    assert trainer.sampler.state_dict().keys() == plain.sampler.state_dict().keys()
    assert torch.equal(trainer.sampler.next_batch().inputs, plain.sampler.next_batch().inputs)


def test_a_skipped_step_applies_neither_the_optimizer_nor_after_step(bench):
    method = Recording(bad={2, 4})
    trainer = _trainer(bench, method, steps=6)
    for _ in range(2):
        trainer.train_step()
    before = [p.detach().clone() for p in trainer.model.parameters()]
    state = {k: v.clone() for k, v in trainer.optimizer.state[trainer._params[0]].items()}
    trainer.train_step()
    assert all(torch.equal(p, q) for p, q in zip(before, trainer.model.parameters()))
    assert all(torch.equal(v, trainer.optimizer.state[trainer._params[0]][k]) for k, v in state.items())
    assert trainer.skipped_steps == 1 and trainer.step == 3
    assert trainer.optimizer.param_groups[0]["lr"] == 0.01
    for _ in range(3):
        trainer.train_step()
    assert method.after == [0, 1, 3, 5] and trainer.skipped_steps == 2
    assert trainer.costs()["skipped_steps"] == 2.0 and trainer.costs()["steps"] == 6.0


def test_the_second_step_of_each_long_interval_is_measured_not_timed(bench):
    trainer = _trainer(bench, steps=12, eval_every=10)
    for _ in range(12):
        trainer.train_step()
    assert trainer.timed_steps == 9  # 0: warm-up; 1 and 11: memory; 2..10 timed
    short = _trainer(bench, steps=7, eval_every=3)
    for _ in range(7):
        short.train_step()
    assert short.timed_steps == 5  # an interval under 10 steps: only step 1 measured


# -- the loop ----------------------------------------------------------------------------------
class Bar:
    def __init__(self):
        self.updates, self.postfix = 0, []

    def update(self, n):
        self.updates += n

    def set_postfix(self, **kw):
        self.postfix.append(kw)


def test_segments_end_at_evaluations_and_the_end(bench):
    trainer = _trainer(bench, steps=7, eval_every=3)
    calls = []
    trainer.on_evaluation = lambda name, model, step, index: calls.append((name, model is trainer.model, step, index))
    bar = Bar()
    statuses = [trainer.train_segment(bar) for _ in range(3)]
    assert statuses == ["running", "running", "completed"]
    assert [h["step"] for h in trainer.history] == [3, 6, 7] and bar.updates == 7
    assert calls == [("run", True, 3, 0), ("run", True, 6, 1), ("run", True, 7, 2)]
    assert len(bar.postfix) == 3 and all(set(p) == {"loss"} for p in bar.postfix)


def test_a_segment_reports_its_mean_training_loss(bench):
    trainer = _trainer(bench, steps=4, eval_every=4)
    seen = []
    original = trainer.train_step

    def spy():
        losses = original()
        seen.append(losses)
        return losses

    trainer.train_step = spy
    bar = Bar()
    trainer.train_segment(bar)
    mean = torch.stack(seen).mean(0)
    assert bar.postfix == [{"loss": f"{float(mean.sum()):.4g}"}]
    assert trainer.record.history[-1]["step"] == 4


def test_a_run_resumed_after_it_completed_trains_no_more(bench, tmp_path):
    first = _trainer(bench, path=tmp_path / "ck.pt", steps=4)
    result = first.fit()
    assert result.status == "completed" and result.steps == 4
    again = _trainer(bench, path=tmp_path / "ck.pt", steps=4)
    again.train_segment = lambda bar=None: pytest.fail("trained again")
    again_result = again.fit()
    assert (again_result.status, again_result.steps, again.step) == ("completed", 4, 4)


class Explode(Method):
    """Sets the model's weights to NaN after step ``at``: the next losses are not finite."""

    name = "explode"
    needs = frozenset({LOSSES, AFTER_STEP})

    def __init__(self, model_ref, at):
        super().__init__()
        self.model_ref, self.at = model_ref, at

    def backward(self, context):
        context.backward(context.losses.mean())

    def after_step(self, context):
        if context.step == self.at:
            with torch.no_grad():
                for p in self.model_ref[0].parameters():
                    p.fill_(float("nan"))


@pytest.mark.parametrize(("at", "eval_every", "first", "checkpoints"), [(4, 2, 6, [2, 4]), (0, 4, 2, [])])
def test_divergence_stops_the_run_at_the_first_non_finite_loss(bench, tmp_path, at, eval_every, first, checkpoints):
    ref = []
    method = Explode(ref, at=at)
    trainer = _trainer(bench, method, path=tmp_path / "ck.pt", steps=8, eval_every=eval_every)
    ref.append(trainer.model)
    saved = []
    original = trainer.save_checkpoint
    trainer.save_checkpoint = lambda: (saved.append(trainer.step), original())
    result = trainer.fit()
    # NaN weights written after step ``at`` give the next steps non-finite losses: the first counts
    assert result.status == "diverged" and result.steps == first and trainer.diverged_at == first
    assert trainer.message == f"non-finite loss at step {first}" and result.message == trainer.message
    assert saved == checkpoints  # no checkpoint of the diverged segment
    assert [h["step"] for h in trainer.history] == checkpoints


def test_the_reported_model_is_saved_beside_the_checkpoint(bench, tmp_path):
    trainer = _trainer(bench, path=tmp_path / "run" / "ck.pt", steps=4, eval_every=2, selection="last")
    (tmp_path / "run").mkdir()
    trainer.fit()
    saved = load_checkpoint(tmp_path / "run" / MODEL_FILE)
    for key, value in trainer.model.state_dict().items():
        assert torch.equal(saved[key], value)
    assert trainer.result().steps == 4 and trainer.result("diverged").status == "diverged"


def test_bf16_losses_come_back_in_float32(bench):
    trainer = _trainer(bench, precision="bf16")
    losses = trainer.train_step()
    assert losses.dtype == torch.float32
    features, outputs = trainer._outputs(trainer.sampler.next_batch().inputs)
    assert features.dtype == torch.float32 and all(v.dtype == torch.float32 for v in outputs.values())


def test_mdl_shares_every_parameter_and_passes_the_batch_mixture(bench, digits):
    class Mixture(Recording):
        def backward(self, context):
            self.fractions = context.batch_fractions
            super().backward(context)

    method = Mixture()
    trainer = _trainer(digits, method, steps=2)
    assert method.task_names == ["a", "b"] and method.setting == "mdl"
    assert trainer.task_params == []
    assert len(trainer.shared_params) == len(list(trainer.model.parameters()))
    trainer.train_step()
    assert method.fractions is not None and float(method.fractions.sum()) == pytest.approx(1.0)
    mtl = Mixture()
    _trainer(bench, mtl).train_step()
    assert mtl.fractions is None


# -- device-side bookkeeping, exercised on the CPU ----------------------------------------------
def test_device_counters_are_read_at_the_evaluation(bench, monkeypatch):
    class Event:
        def __init__(self, ms):
            self.ms = ms

        def elapsed_time(self, end):
            return end.ms - self.ms

    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: None)
    trainer = _trainer(bench)
    trainer._timer.events = [(Event(0), Event(250)), (Event(1000), Event(1750))]
    trainer._guard.skip(torch.tensor(2.0))
    trainer.settle()
    assert trainer.timed_steps == 2 and trainer.train_seconds == pytest.approx(1.0)
    assert trainer.skipped_steps == 2 and trainer._timer.events == [] and trainer._guard.skipped is None


def test_the_device_guard_skips_a_non_finite_step_in_the_fused_kernel(bench):
    trainer = _trainer(bench, Recording(bad={1}), optimizer={"name": "adam", "lr": 0.01})
    trainer.optimizer = optim.fused_optimizer(trainer.optimizer)
    assert trainer.optimizer.defaults["fused"]
    trainer.schedule = optim.build_schedule(trainer.config, trainer.optimizer, 7, 3)
    trainer._device_guard = True
    trainer.train_step()
    moved = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.train_step()  # NaN gradients: the kernel leaves everything as it was
    assert all(torch.equal(p, q) for p, q in zip(moved, trainer.model.parameters()))
    assert not hasattr(trainer.optimizer, "found_inf")
    trainer.train_step()
    assert not all(torch.equal(p, q) for p, q in zip(moved, trainer.model.parameters()))
    assert float(trainer._guard.skipped) == 1.0
    trainer.settle()
    assert trainer.skipped_steps == 1


# -- resume ------------------------------------------------------------------------------------
def _comparable(trainer):
    state = trainer.state_dict()
    record = {k: v for k, v in state["record"].items() if k not in ("train_seconds", "timed_steps", "step_memory")}
    return {**state, "record": record}


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_resuming_at_any_evaluation_restores_every_piece_of_state(bench, tmp_path, interrupt_at_checkpoint, stop):
    """dwa (end-of-epoch hook) with a cosine schedule and RLW-like randomness: interrupted after
    evaluation ``stop`` (steps 2, 4, 6: mid-epoch), resumed: the whole state equals the run that
    was never interrupted, and so do the evaluations it made."""
    kw = {"steps": 7, "eval_every": 2, "schedule": {"name": "cosine"}}
    reference = _trainer(bench, build_method("dwa"), **kw)
    reference.fit()
    interrupt_at_checkpoint(Trainer, stop)
    with pytest.raises(KeyboardInterrupt):
        _trainer(bench, build_method("dwa"), path=tmp_path / "ck.pt", **kw).fit()
    saved = load_checkpoint(tmp_path / "ck.pt")
    assert saved["step"] == 2 * stop and saved["epoch_loss"][1] == (2 * stop) % 3
    resumed = _trainer(bench, build_method("dwa"), path=tmp_path / "ck.pt", **kw)
    assert resumed.try_resume()
    assert resumed.step == 2 * stop and resumed.evaluation == stop
    assert resumed._epoch_loss_steps == saved["epoch_loss"][1]
    resumed.fit()
    a, b = _comparable(resumed), _comparable(reference)
    for key in a:
        assert same_state(a[key], b[key]), key
    assert resumed.history == reference.history


def test_a_resumed_run_draws_the_same_random_numbers(bench, tmp_path, interrupt_at_checkpoint):
    """The global RNG is part of the checkpoint: a method drawing from it continues its stream."""

    class Noisy(Recording):
        def backward(self, context):
            self.draws = getattr(self, "draws", []) + [torch.rand(1).item()]
            context.backward((context.losses * torch.rand(2)).sum())

    reference = _trainer(bench, Noisy(), steps=4)
    reference.fit()
    interrupt_at_checkpoint(Trainer, 1)
    with pytest.raises(KeyboardInterrupt):
        _trainer(bench, Noisy(), path=tmp_path / "ck.pt", steps=4).fit()
    torch.manual_seed(1234)  # whatever ran in between
    method = Noisy()
    resumed = _trainer(bench, method, path=tmp_path / "ck.pt", steps=4)
    torch.manual_seed(4321)
    resumed.fit()
    assert method.draws == reference.method.draws[2:]
    for p, q in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(p, q)


def test_the_loss_scale_and_independent_sampler_are_restored(bench):
    class Independent(Recording):
        needs = frozenset({LOSSES, INDEPENDENT_BATCHES})

        def backward(self, context):
            context._independent_losses()
            super().backward(context)

    trainer = _trainer(bench, Independent())
    for _ in range(2):
        trainer.train_step()
    trainer.loss_scale.scale, trainer.loss_scale.good_steps = 8.0, 3
    state = trainer.state_dict()
    assert same_state(state["independent_sampler"], trainer.independent_sampler.state_dict())
    fresh = _trainer(bench, Independent())
    fresh.load_state_dict(state)
    assert (fresh.loss_scale.scale, fresh.loss_scale.good_steps) == (8.0, 3)
    assert same_state(fresh.independent_sampler.state_dict(), trainer.independent_sampler.state_dict())
    assert torch.equal(fresh.independent_sampler.next_batch().inputs, trainer.independent_sampler.next_batch().inputs)
    plain = _trainer(bench).state_dict()
    assert plain["independent_sampler"] is None


# -- data-parallel ranks, with a stand-in for the other processes ---------------------------------
class MirrorReducer:
    """Sums over ranks whose values are this rank's (the other processes mirror this one)."""

    def __init__(self, world):
        self.world = world

    def sum(self, tensor):
        return tensor.detach().clone() * self.world


class Mirror(trainer_module.Distributed):
    """A rank of ``world`` processes in one: collectives answer as if every other rank held what
    this one holds; on ranks > 0, ``inbox`` holds what rank 0 broadcasts, in order."""

    def __init__(self, rank, world=2, inbox=(), device="cpu"):
        super().__init__(rank, world, rank, "gloo", torch.device(device))
        self.reducer = MirrorReducer(world)
        self.inbox = list(inbox)
        self.tensor_broadcasts = 0

    def broadcast(self, value=None):
        return value if self.rank == 0 else self.inbox.pop(0)

    def gather(self, value):  # the others' generator states: each its own
        return [value] + [torch.Generator().manual_seed(1000 + i).get_state() for i in range(1, self.world)]

    def all_true(self, flag):
        return flag

    def broadcast_tensors(self, tensors):
        self.tensor_broadcasts += 1


def _ranked(bench, distributed, path=None, **kw):
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, width=0.05, depth=1)
    return Trainer(
        _config(**kw),
        bench,
        model,
        build_method("scalarization"),
        checkpoint_path=path,
        progress=False,
        distributed=distributed,
    )


class LoneReducer(MirrorReducer):
    """Sums over ranks whose values are all zero but this rank's."""

    def sum(self, tensor):
        return tensor.detach().clone()


class Lone(Mirror):
    """A rank of ``world`` processes in one whose other ranks contribute zero gradients and losses."""

    def __init__(self, rank, world=2, inbox=(), device="cpu"):
        super().__init__(rank, world, inbox, device)
        self.reducer = LoneReducer(world)


def test_a_rank_s_step_applies_the_mean_over_the_ranks(bench):
    """The step of a rank applies the process group's mean gradient and reports its mean losses:
    when the other rank contributes zero, half what a rank whose peers mirror it applies."""
    sgd = {"name": "sgd", "lr": 0.1, "momentum": 0.0}
    steps = {}
    for kind in (Mirror, Lone):
        trainer = _ranked(bench, kind(0), seed=3, optimizer=sgd)
        before = [p.detach().clone() for p in trainer.model.parameters()]
        losses = trainer.train_step()
        steps[kind] = (losses, [p.detach() - b for p, b in zip(trainer.model.parameters(), before)])
    (mirrored_losses, mirrored), (lone_losses, lone) = steps[Mirror], steps[Lone]
    assert torch.allclose(lone_losses, mirrored_losses / 2)
    assert any(d.abs().max() > 0 for d in mirrored)
    for full, half in zip(mirrored, lone):
        assert torch.allclose(half, full / 2, rtol=1e-4, atol=1e-7)  # float32 differences of ~0.1 weights


def test_a_single_process_world_is_no_distribution(bench):
    trainer = _ranked(bench, Mirror(0, world=1))
    assert trainer.distributed is None and trainer.is_writer
    assert not isinstance(trainer.sampler, trainer_module.ShardedSampler)


def test_every_process_must_run_on_the_device_it_was_started_for(bench):
    with pytest.raises(
        DistributedError, match=r"^device: 'cpu' resolves to cpu, but the processes were started for cuda \(gloo\)"
    ):
        _ranked(bench, Mirror(0, device="cuda"))


def test_a_rank_trains_on_its_shard_of_the_global_batches(bench):
    trainer = _ranked(bench, Mirror(1), seed=3)
    sampler = trainer.sampler
    assert isinstance(sampler, trainer_module.ShardedSampler) and (sampler.rank, sampler.world) == (1, 2)
    reference = trainer_module.ShardedSampler(build_sampler(trainer.benchmark, 30, 4, stream=False), 1, 2)
    for _ in range(3):
        assert torch.equal(sampler.next_batch().inputs, reference.next_batch().inputs)
    with pytest.raises(DistributedError, match="^batch_size: 1 is smaller than the 2 processes"):
        _ranked(bench, Mirror(0), batch_size=1)


def test_rank_0_alone_writes_and_the_checkpoint_holds_every_rank_s_generator(bench, tmp_path):
    zero = _ranked(bench, Mirror(0), path=tmp_path / "0" / "ck.pt", steps=4)
    assert zero.is_writer
    (tmp_path / "0").mkdir()
    result = zero.fit()
    assert result.status == "completed" and zero.step == 4 and zero.skipped_steps == 0
    assert zero.distributed.tensor_broadcasts == 3  # at the resume, then before each evaluation
    saved = load_checkpoint(tmp_path / "0" / "ck.pt")
    assert len(saved["rng_ranks"]) == 2 and not torch.equal(saved["rng_ranks"][0], saved["rng_ranks"][1])
    assert (tmp_path / "0" / MODEL_FILE).exists()
    one = _ranked(bench, Mirror(1, inbox=[None, True]), path=tmp_path / "1" / "ck.pt", steps=4)
    assert not one.is_writer
    (tmp_path / "1").mkdir()
    one.fit()
    assert list((tmp_path / "1").iterdir()) == [] and one.step == 4


def test_a_rank_without_a_checkpoint_starts_its_own_generator(bench):
    one = _ranked(bench, Mirror(1, inbox=[None, False]), seed=3)
    one._resume_distributed()
    assert torch.initial_seed() == trainer_module.rank_seed(3, 1)
    assert one._checkpointing is False and one.distributed.tensor_broadcasts == 1
    one.save_checkpoint()  # nothing to write, and no collective either
    zero = _ranked(bench, Mirror(0), seed=3)
    torch.manual_seed(11)
    zero._resume_distributed()
    assert torch.initial_seed() == 11 and zero._checkpointing is False


def test_a_rank_resumes_its_own_generator_or_a_fresh_one_for_another_world(bench, tmp_path):
    zero = _ranked(bench, Mirror(0), path=tmp_path / "ck.pt", steps=6)
    zero._checkpointing = True
    zero.train_segment()
    zero.save_checkpoint()
    state = load_checkpoint(tmp_path / "ck.pt")
    assert state["step"] == 2
    one = _ranked(bench, Mirror(1, inbox=[state, True]), steps=6, seed=5)
    one._resume_distributed()
    assert one.step == 2 and one._checkpointing is True
    assert torch.equal(torch.get_rng_state(), state["rng_ranks"][1])
    other_world = {**state, "rng_ranks": state["rng_ranks"] * 2}
    one = _ranked(bench, Mirror(1, inbox=[other_world, True]), steps=6, seed=5)
    one._resume_distributed()
    assert torch.initial_seed() == trainer_module.rank_seed(5 + 2, 1)
    zero_again = _ranked(bench, Mirror(0), path=tmp_path / "ck.pt", steps=6)
    zero_again._resume_distributed()
    assert zero_again.step == 2 and torch.equal(torch.get_rng_state(), state["rng"])


def test_a_distributed_run_resumed_equals_the_uninterrupted_one(bench, tmp_path, interrupt_at_checkpoint):
    reference = _ranked(bench, Mirror(0), path=tmp_path / "ref" / "ck.pt", steps=6, schedule={"name": "cosine"})
    (tmp_path / "ref").mkdir()
    reference.fit()
    (tmp_path / "run").mkdir()
    interrupt_at_checkpoint(Trainer, 2)
    with pytest.raises(KeyboardInterrupt):
        _ranked(bench, Mirror(0), path=tmp_path / "run" / "ck.pt", steps=6, schedule={"name": "cosine"}).fit()
    resumed = _ranked(bench, Mirror(0), path=tmp_path / "run" / "ck.pt", steps=6, schedule={"name": "cosine"})
    resumed.fit()
    for p, q in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(p, q)
    assert resumed.history == reference.history


# -- precision and preference-conditioned models ----------------------------------------------------
def test_fp16_seeds_the_backward_with_the_loss_scale_and_halves_it_on_a_skipped_step(bench):
    method = Recording(bad={1})
    trainer = _trainer(bench, method, precision="fp16")
    assert trainer.train_step().dtype == torch.float32
    assert method.contexts[0][3] == 2.0**16 and trainer.loss_scale.good_steps == 1
    trainer.train_step()  # NaN gradients
    assert (trainer.loss_scale.scale, trainer.loss_scale.good_steps) == (2.0**15, 0)
    assert trainer.skipped_steps == 1
    trainer.train_step()
    assert method.contexts[2][3] == 2.0**15
    assert _trainer(bench).loss_scale.value is None


def test_a_preference_method_needs_a_conditioned_model(bench):
    with pytest.raises(MethodError, match="^method.name: cosmos feeds the model a preference: build it with") as error:
        _trainer(bench, build_method("cosmos"))
    assert str(error.value).endswith("or wrap it in scalarize.models.conditioned.PreferenceConditioned")


def test_a_conditioned_model_is_fed_each_step_s_preference_and_evaluated_at_the_uniform_one(bench):
    from scalarize.train.setup import build_model_from_config

    config = _config(steps=2, eval_every=2, method={"name": "cosmos"})
    torch.manual_seed(0)
    model = build_model_from_config(config, bench)
    fed = []
    original = model.set_preference
    model.set_preference = lambda preference: (fed.append(torch.as_tensor(preference).clone()), original(preference))
    method = build_method("cosmos")
    trainer = Trainer(config, bench, model, method, progress=False)
    drawn = []
    draw = method.draw_preference
    method.draw_preference = lambda: drawn.append(draw().clone()) or drawn[-1]
    trainer.train_segment()
    assert len(drawn) == 2 and len(fed) == 3
    assert all(torch.equal(f, d) for f, d in zip(fed, drawn))
    assert torch.equal(fed[-1], torch.ones(2))


# -- what the trainer builds ---------------------------------------------------------------------
def test_a_step_is_the_optimizer_step_on_the_sampled_batch(bench):
    """Computed by hand: the model's losses on the first batch of the sampler seeded with
    ``seed + 1``, combined by the method, one SGD step."""
    import copy

    from scalarize.train.losses import objective_losses

    trainer = _trainer(bench, seed=2, optimizer={"name": "sgd", "lr": 0.5, "momentum": 0.0})
    model = copy.deepcopy(trainer.model)
    batch = build_sampler(trainer.benchmark, 30, 3).next_batch()
    _, outputs = model(batch.inputs)
    losses = objective_losses(trainer.benchmark, outputs, batch.targets, batch.counts)
    trainer.method.combine(losses).backward()
    returned = trainer.train_step()
    torch.testing.assert_close(returned, losses.detach(), rtol=0, atol=0)
    for p, q in zip(model.parameters(), trainer.model.parameters()):
        torch.testing.assert_close(q.detach(), p.detach() - 0.5 * p.grad, rtol=1e-6, atol=1e-7)


def test_on_the_cpu_the_host_guard_and_the_fused_optimizer_are_used(bench):
    trainer = _trainer(bench)
    assert not trainer._device_guard and trainer.optimizer.defaults.get("fused") is True
    assert trainer.loss_scale.value is None and not trainer._channels_last
    assert _trainer(bench, channels_last=True)._channels_last is False  # a GPU layout only


def test_per_task_gradient_methods_go_through_the_heads_in_one_pass(bench, digits):
    assert _trainer(bench, build_method("pcgrad"))._split_heads
    assert _trainer(bench, build_method("mgda_ub"))._split_heads
    assert not _trainer(bench, build_method("uw"))._split_heads
    assert not _trainer(digits, build_method("pcgrad"))._split_heads  # MDL: one head


def test_a_method_s_own_parameters_and_optimizer_are_trained(bench):
    uw = _trainer(bench, build_method("uw"))
    before = [p.detach().clone() for p in uw.method.parameters()]
    assert before and all(p.requires_grad for p in uw.method.parameters())
    uw.train_step(), uw.train_step()
    assert any(not torch.equal(b, p) for b, p in zip(before, uw.method.parameters()))
    half = _trainer(bench, build_method("uw"), precision="fp16")  # the scaled backward reaches them too
    before = [p.detach().clone() for p in half.method.parameters()]
    half.train_step(), half.train_step()
    assert any(not torch.equal(b, p) for b, p in zip(before, half.method.parameters()))
    own = _trainer(bench, build_method("mtadam"))
    assert own.optimizer.param_groups[0]["lr"] == 0.01
    assert {id(p) for g in own.optimizer.param_groups for p in g["params"]} >= {id(p) for p in own.model.parameters()}


def test_mdl_batches_follow_the_method_s_mixture_on_both_samplers(bench, digits):
    class Independent(Recording):
        needs = frozenset({LOSSES, INDEPENDENT_BATCHES})

        def sampling_weights(self):
            return torch.tensor([0.9, 0.1])

    trainer = _trainer(digits, Independent(), steps=2, eval_every=2, batch_size=40)
    trainer.train_segment()
    for sampler in (trainer.sampler, trainer.independent_sampler):
        counts = torch.stack([sampler.next_batch().counts for _ in range(4)]).sum(0)
        assert counts[0] > 3 * counts[1], counts


def test_the_record_s_views(bench, tmp_path):
    from scalarize.store import Store

    with Store(tmp_path) as store:
        store.start_run("r", "main", {}, "f")
        torch.manual_seed(0)
        model = build_model("mlp", bench.input_shape, bench.tasks, width=0.05, depth=1)
        trainer = Trainer(
            _config(steps=2), bench, model, build_method("scalarization"), run_name="r", store=store, progress=False
        )
        assert trainer.store is store and trainer.record.name == "r"
        trainer.fit()
        assert trainer.evaluation == 1 and trainer.message == trainer.record.message
        assert store.history("r", "val")


def test_a_rank_s_losses_are_the_mean_losses_of_its_shard(bench):
    from scalarize.train.losses import objective_losses

    trainer = _ranked(bench, Mirror(1), seed=3)
    shard = trainer_module.ShardedSampler(build_sampler(trainer.benchmark, 30, 4, stream=False), 1, 2).next_batch()
    with torch.no_grad():
        expected = objective_losses(trainer.benchmark, trainer.model(shard.inputs)[1], shard.targets, shard.counts)
    torch.testing.assert_close(trainer.train_step(), expected, rtol=1e-6, atol=1e-7)


def test_augmented_training_batches_come_from_the_seeded_augmenting_sampler(bench):
    trainer = _trainer(bench, seed=5, data={"workers": 0, "augment": {"flip": True}})
    reference = build_sampler(trainer.benchmark, 30, 6, trainer.config.data.augmentation())
    plain = build_sampler(trainer.benchmark, 30, 6)
    for _ in range(2):
        inputs = trainer.sampler.next_batch().inputs
        assert torch.equal(inputs, reference.next_batch().inputs)
        assert not torch.equal(inputs, plain.next_batch().inputs)  # flipped images


def test_any_module_that_follows_the_contract_trains(bench):
    """A plain module returning ``(features, {task: output})``, without the multi-task model's
    one-pass head inputs: wrapped, and trained by a per-task gradient method too."""
    from torch import nn

    class Plain(nn.Module):
        def __init__(self):
            super().__init__()
            self.trunk = nn.Sequential(nn.Flatten(), nn.Linear(784, 8), nn.ReLU())
            self.left, self.right = nn.Linear(8, 10), nn.Linear(8, 10)

        def forward(self, inputs):
            features = self.trunk(inputs)
            return features, {"left": self.left(features), "right": self.right(features)}

    torch.manual_seed(0)
    trainer = Trainer(_config(steps=2), bench, Plain(), build_method("pcgrad"), progress=False)
    assert trainer._forward_heads is None and not trainer._split_heads
    before = [p.detach().clone() for p in trainer.model.parameters()]
    assert trainer.fit().status == "completed"
    assert all(not torch.equal(b, p) for b, p in zip(before, trainer.model.parameters()))


def test_a_rank_s_shard_is_augmented_like_the_global_batch(bench):
    trainer = _ranked(bench, Mirror(1), seed=3, data={"workers": 0, "augment": {"flip": True}})
    augmentation = trainer.config.data.augmentation()
    reference = trainer_module.ShardedSampler(build_sampler(trainer.benchmark, 30, 4, augmentation, stream=False), 1, 2)
    plain = trainer_module.ShardedSampler(build_sampler(trainer.benchmark, 30, 4, stream=False), 1, 2)
    for _ in range(2):
        inputs = trainer.sampler.next_batch().inputs
        assert torch.equal(inputs, reference.next_batch().inputs)
        assert not torch.equal(inputs, plain.next_batch().inputs)
