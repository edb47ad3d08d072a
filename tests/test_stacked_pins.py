"""The stacked population engine pinned by behaviour (issue #18): each member's weights (given,
uniform, changed), its learning-rate scale, its own batches and model slice, PBT's exploit
(everything a member is, but its batch stream), the evaluation schedule and what is saved,
divergence (marked at its step, gradient cut, no more evaluations), the timing/memory split of
the steps, and a state round trip that restores every piece of state."""

from __future__ import annotations

import pytest
import torch
from helpers import same_state, tiny_mdl

from scalarize.data import load_benchmark
from scalarize.data.sampling import build_sampler
from scalarize.population import Member, StackedPopulation
from scalarize.store import Store
from scalarize.train import TrainConfig
from scalarize.train.checkpoint import MODEL_FILE, load_checkpoint, run_directory

OPTIONS = {"train_size": 90, "test_size": 30}  # batch 30: 3 steps per epoch


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("multimnist", **OPTIONS)


def _members(weights=((0.2, 0.8), (0.5, 0.5), (0.9, 0.1)), **kw):
    settings = {
        "benchmark": {"name": "multimnist", "options": OPTIONS},
        "model": {"width": 0.05, "depth": 1},
        "steps": 6,
        "eval_every": 2,
        "batch_size": 30,
        "stl": False,
        "device": "cpu",
        "optimizer": {"lr": 0.01},
    }
    base = TrainConfig(**{**settings, **kw})
    return [
        Member(
            f"m{i}",
            base.model_copy(
                update={"method": base.method.model_copy(update={"weights": None if w is None else list(w)}), "seed": i}
            ),
        )
        for i, w in enumerate(weights)
    ]


def _population(bench, weights=((0.2, 0.8), (0.5, 0.5), (0.9, 0.1)), **kw):
    store = kw.pop("store", None)
    path = kw.pop("checkpoint_path", None)
    return StackedPopulation(_members(weights, **kw), bench, store=store, checkpoint_path=path, progress=False)


def test_members_weights_are_normalized_uniform_by_default_and_changeable(bench):
    population = _population(bench, weights=((1.0, 3.0), None))
    assert population.size == 2 and (population.step, population.evaluation) == (0, 0)
    assert population.alive.tolist() == [True, True] and population.diverged_at == {}
    assert population.lr_scale.tolist() == [1.0, 1.0] and population.extra_state == {}
    assert population.on_evaluation is None and [r.name for r in population.records] == ["m0", "m1"]
    assert population.weights.tolist() == [[0.25, 0.75], [0.5, 0.5]]
    population.set_weights(1, [2.0, 6.0])
    assert population.weights.tolist() == [[0.25, 0.75], [0.25, 0.75]]


def test_each_member_reads_its_own_seeded_batches(bench):
    population = _population(bench, weights=((0.5, 0.5), (0.5, 0.5)))
    inputs, targets, counts = population._next_batches()
    assert inputs.shape[:2] == (2, 30) and counts.tolist() == [[30], [30]]
    for index, seed in enumerate((0, 1)):
        alone = build_sampler(population.benchmark, 30, seed + 1, stream=False).next_batch()
        assert torch.equal(inputs[index], alone.inputs)
        for key, value in alone.targets.items():
            assert torch.equal(targets[key][index], value)
    assert not torch.equal(inputs[0], inputs[1])


def test_member_model_holds_that_members_slice(bench):
    population = _population(bench)
    population.run_until(1)
    for index in (2, 0, 1):
        state = population.member_model(index).state_dict()
        for key, value in population.params.items():
            assert torch.equal(state[key], value[index].detach()), (index, key)


def test_a_members_learning_rate_scale_scales_its_step(bench):
    """SGD without momentum: member 1 at scale 0.5 moves half as far as at scale 1; the others
    are untouched by its scale."""
    kw = {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0}}
    plain, scaled = _population(bench, **kw), _population(bench, **kw)
    scaled.lr_scale[1] = 0.5
    before = {k: v.detach().clone() for k, v in plain.params.items()}
    plain.train_step(), scaled.train_step()
    for key, old in before.items():
        full, half = plain.params[key].detach() - old, scaled.params[key].detach() - old
        torch.testing.assert_close(half[1], 0.5 * full[1], rtol=1e-5, atol=1e-7)
        assert torch.equal(half[0], full[0]) and torch.equal(half[2], full[2])


def test_an_exploit_copies_weights_lr_scale_best_and_life(bench):
    population = _population(bench)
    population.run_until(2)
    population.lr_scale[0] = 0.3
    population.alive[2] = False
    population.diverged_at[2] = 1
    sampler_state = population.samplers[2].state_dict()
    population.copy_member(0, 2)
    assert population.lr_scale.tolist() == pytest.approx([0.3, 1.0, 0.3])
    assert population.records[2].best == population.records[0].best
    assert population.records[2].best is not population.records[0].best
    assert bool(population.alive[2]) and 2 not in population.diverged_at
    assert torch.equal(population.weights[2], population.weights[0])
    assert same_state(population.samplers[2].state_dict(), sampler_state)  # keeps its own batch stream
    for value in population.params.values():
        assert torch.equal(value[2], value[0]) and not torch.equal(value[1], value[0])


def test_evaluations_follow_the_schedule_and_call_back(bench, tmp_path):
    population = _population(bench, steps=5, eval_every=2, checkpoint_path=tmp_path / "p.pt")
    seen, saved = [], []
    population.on_evaluation = lambda p: seen.append((p is population, p.step, p.evaluation))
    original = population.save_checkpoint
    population.save_checkpoint = lambda: (saved.append(population.step), original())
    population.run_until(3)
    assert population.step == 3 and seen == [(True, 2, 1)] and saved == [2]
    population.run_until(99)  # at most the total
    assert population.step == 5 and seen == [(True, 2, 1), (True, 4, 2), (True, 5, 3)] and saved == [2, 4, 5]
    assert [[h["step"] for h in history] for history in population.histories] == [[2, 4, 5]] * 3
    assert load_checkpoint(tmp_path / "p.pt")["step"] == 5


def test_the_epochs_and_evaluation_interval_follow_the_config(bench):
    population = _population(bench, steps=None, eval_every=None, epochs=2)
    assert (population.steps_per_epoch, population.total_steps, population.eval_every) == (3, 6, 3)
    population.fit()
    assert [h["step"] for h in population.histories[0]] == [3, 6]


def test_the_second_step_of_each_long_interval_is_measured_not_timed(bench):
    population = _population(bench, steps=12, eval_every=10, weights=((0.5, 0.5), (0.5, 0.5)))
    memory = []
    for _ in range(12):
        population.train_step()
        memory.append(population.records[0].step_memory)
    assert [r.timed_steps for r in population.records] == [9, 9]  # 0: warm-up; 1, 11: memory
    assert memory[0] is None and memory[1] is not None
    short = _population(bench, steps=5, eval_every=3, weights=((0.5, 0.5), (0.5, 0.5)))
    for _ in range(5):
        short.train_step()
    assert [r.timed_steps for r in short.records] == [3, 3]


def test_the_stack_s_memory_and_time_are_shared_out_among_members(bench, monkeypatch):
    from scalarize.train import loop

    monkeypatch.setattr(loop, "step_memory", lambda step, device: (step(), 3000))
    ticks = iter(range(0, 1000, 6))
    monkeypatch.setattr(loop.time, "perf_counter", lambda: next(ticks))
    population = _population(bench)
    population.train_step(), population.train_step(), population.train_step()
    assert [r.step_memory for r in population.records] == [1000] * 3
    assert [r.train_seconds for r in population.records] == [2.0] * 3


def test_a_diverged_member_stops_learning_and_is_no_longer_evaluated(bench, tmp_path):
    with Store(tmp_path) as store:
        for m in _members():
            store.start_run(m.name, "member", {}, "x")
        population = _population(bench, steps=6, eval_every=2, store=store, selection="last")
        population.run_until(2)
        with torch.no_grad():
            for value in population.params.values():
                value[1] = float("nan")
        population.run_until(4)
        assert population.diverged_at == {1: 3} and population.alive.tolist() == [True, False, True]
        assert population.evaluation == 2
        assert [len(h) for h in population.histories] == [2, 1, 2]
        assert population.skipped_steps == [0, 0, 0]  # its gradient is cut, not skipped as non-finite
        for value in population.params.values():
            assert torch.isfinite(value[0]).all() and torch.isfinite(value[2]).all()
        interim = population.results()
        assert [r.status for r in interim] == ["completed", "diverged", "completed"]
        assert [r.steps for r in interim] == [4, 3, 4] and [r.seconds for r in interim] == [0.0] * 3
        results = population.fit()
        assert [r.status for r in results] == ["completed", "diverged", "completed"]
        assert [r.steps for r in results] == [6, 3, 6] and all(r.seconds > 0 for r in results)
        assert results[1].message == "non-finite loss at step 3"
        for index in (0, 2):  # each member's reported model, in the store's run directory
            saved = load_checkpoint(run_directory(store.directory, f"m{index}") / MODEL_FILE)
            model = population.member_model(index).state_dict()
            assert saved.keys() == model.keys() and all(torch.equal(saved[k], model[k]) for k in saved)


def test_training_stops_when_every_member_diverged(bench):
    population = _population(bench, steps=6, eval_every=2)
    with torch.no_grad():
        for value in population.params.values():
            value.fill_(float("nan"))
    population.run_until(6)
    assert population.step == 2 and not population.alive.any()
    assert population.diverged_at == {0: 1, 1: 1, 2: 1}


def test_mdl_members_follow_their_mixture(bench):
    digits = tiny_mdl(bench)
    population = StackedPopulation(_members(((0.9, 0.1), (0.1, 0.9)), batch_size=40), digits, progress=False)
    population.run_until(2)
    _, _, counts = population._next_batches()
    assert counts.shape == (2, 2) and counts.sum(1).tolist() == [40, 40]
    assert counts[0, 0] > counts[0, 1] and counts[1, 1] > counts[1, 0]


def test_a_state_round_trip_restores_everything(bench):
    population = _population(bench, schedule={"name": "cosine"})
    population.run_until(3)
    population.lr_scale[2] = 0.5
    population.alive[1] = False
    population.diverged_at[1] = 2
    population.loss_scale.scale, population.loss_scale.good_steps = 4.0, 7
    population.set_weights(0, [0.6, 0.4])
    population.extra_state = {"lineage": [0, 1]}
    state = population.state_dict()
    state_copy = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in state.items()}
    fresh = _population(bench, schedule={"name": "cosine"})
    torch.manual_seed(99)
    fresh.load_state_dict(state)
    again = fresh.state_dict()
    for key in state:
        if key == "records":
            continue
        assert same_state(again[key], state_copy[key]), key
    assert again["records"][0]["history"] == state["records"][0]["history"]
    assert fresh.step == 3 and fresh.evaluation == 1 and fresh.lr_scale.tolist() == [1.0, 1.0, 0.5]
    assert fresh.alive is not population.alive and fresh.lr_scale is not population.lr_scale
    assert fresh.optimizer.param_groups[0]["lr"] == population.optimizer.param_groups[0]["lr"]
    assert fresh.extra_state == {"lineage": [0, 1]}
    population.alive[1] = True  # the saved state is a copy
    assert not bool(state["alive"][1])
    assert torch.equal(torch.get_rng_state(), state["rng"])


def test_a_diverged_member_is_frozen_while_the_others_train(bench):
    """SGD without momentum: a member marked diverged gets a zero gradient, so it stays exactly
    where it was, and its step is not counted as skipped."""
    population = _population(bench, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.0})
    population.train_step()
    population.alive[1] = False
    before = {k: v.detach().clone() for k, v in population.params.items()}
    population.train_step()
    for key, value in population.params.items():
        assert torch.equal(value[1].detach(), before[key][1]), key
    assert any(not torch.equal(value[0].detach(), before[key][0]) for key, value in population.params.items())
    assert population.skipped_steps == [0, 0, 0] and population.diverged_at == {}


def test_each_step_logs_every_members_weights(bench):
    population = _population(bench, weights=((1.0, 3.0), (0.5, 0.5)))
    population.train_step(), population.train_step()
    for record, expected in zip(population.records, ([0.25, 0.75], [0.5, 0.5])):
        assert [(step, w.tolist()) for step, w in record.weight_log] == [(1, expected), (2, expected)]


def test_a_state_without_buffers_loads(bench):
    """Checkpoints written before buffers were stacked hold none."""
    population = _population(bench)
    population.run_until(1)
    state = population.state_dict()
    del state["buffers"]
    fresh = _population(bench)
    fresh.load_state_dict(state)
    assert fresh.step == 1
    fresh.alive[0] = False
    fresh.lr_scale[0] = 0.1
    assert bool(state["alive"][0]) and state["lr_scale"][0] == 1.0  # the loaded state is copied


def test_bf16_members_report_float32_losses(bench):
    population = _population(bench, precision="bf16")
    assert population.loss_scale.value is None
    assert population.train_step().dtype == torch.float32


def test_an_fp16_population_scales_its_loss_and_unscales_the_gradients(bench):
    """fp16: the backward pass is seeded with the loss scale and the gradients divided by it at
    once, so an SGD step is the fp32 step to fp16 rounding; a finite step counts towards the
    scale's growth, a skipped one halves it."""
    kw = {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.0}}
    half, full = _population(bench, precision="fp16", **kw), _population(bench, **kw)
    assert half.loss_scale.enabled and not full.loss_scale.enabled
    before = {k: v.detach().clone() for k, v in full.params.items()}
    half.train_step(), full.train_step()
    for key, old in before.items():
        torch.testing.assert_close(
            half.params[key].detach() - old, full.params[key].detach() - old, rtol=0.05, atol=2e-4
        )
    assert (half.loss_scale.scale, half.loss_scale.good_steps) == (2.0**16, 1)
    first = next(iter(half.params.values()))
    first.register_hook(lambda g: g.index_fill(0, torch.tensor([1]), float("nan")))
    half.train_step()
    assert (half.loss_scale.scale, half.loss_scale.good_steps) == (2.0**15, 0)
    assert half.skipped_steps == [0, 1, 0]


def test_each_member_is_evaluated_with_its_own_mean_training_losses(bench, tmp_path):
    with Store(tmp_path) as store:
        for m in _members():
            store.start_run(m.name, "member", {}, "x")
        population = _population(bench, steps=6, eval_every=3, store=store)
        seen = []
        original = population.train_step
        population.train_step = lambda: seen.append(original()) or seen[-1]
        population.run_until(3)
        mean = torch.stack(seen).mean(0)
        for index in range(3):
            train = store.history(f"m{index}", "train")
            for task, objective in enumerate(bench.objectives):
                assert train[f"{objective}/loss"] == [(3, pytest.approx(float(mean[index, task]), rel=1e-6))]


def test_augmented_members_read_their_own_augmented_batches(bench):
    population = _population(bench, weights=((0.5, 0.5), (0.5, 0.5)), data={"workers": 0, "augment": {"flip": True}})
    assert population.batch_stream is not None
    augmentation = population.config.data.augmentation()
    alone = [build_sampler(population.benchmark, 30, seed + 1, augmentation, stream=False) for seed in (0, 1)]
    for _ in range(2):
        inputs, targets, counts = population._next_batches()
        for index, sampler in enumerate(alone):
            batch = sampler.next_batch()
            assert torch.equal(inputs[index], batch.inputs) and torch.equal(counts[index], batch.counts)
            for key, value in batch.targets.items():
                assert torch.equal(targets[key][index], value)
