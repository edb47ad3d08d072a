"""What a method keeps between steps: no weights reported before its first step unless they are
fixed ones (then one per task), step and epoch counters that are exact integers (a float32
counter stops at 2²⁴ steps) and survive a checkpoint, and the persistent state's keys (a
checkpoint written by one version of a method must load into the next, strictly)."""

import io

import pytest
import torch
from registered import build, setting_of
from test_method_contract import LR, MTO

from scalarize.methods import MethodError

#: Methods whose weights exist before any step (parameters or fixed weights), one per task.
WEIGHTS_BEFORE_A_STEP = {
    "uw",
    "imtl_l",
    "dwa",
    "gradnorm",
    "excess_mtl",
    "modo",
    "moco",
    "frozen",
    "scalarization",
    "scheduled_scalarization",
    "doremi",
    "aioli",
}

#: Counters after 7 steps of 5-step epochs (one epoch ended): (key, value).
COUNTERS = {
    "dwa": ("epochs_seen", 1),
    "stch": ("epochs_seen", 1),
    "famo": ("adam_steps", 7),
    "nash_mtl": ("calls", 7),
    "db_mtl": ("steps", 7),
    "excess_mtl": ("steps", 7),
    "doremi": ("updates", 7),
    "aioli": ("steps", 7),
}

#: The persistent state of each method with state (every other method's state_dict is empty).
STATE_KEYS = {
    "scalarization": ["weights"],
    "scheduled_scalarization": ["weights"],
    "uw": ["scalarizer.log_var"],
    "imtl_l": ["scalarizer.log_scale"],
    "dwa": ["epochs_seen", "history"],
    "rlw": ["_extra_state"],
    "famo": ["adam_steps", "exp_avg", "exp_avg_sq", "logits", "min_losses", "prev_losses"],
    "gradnorm": ["initial_losses", "initialised", "loss_weights"],
    "pcgrad": ["_extra_state"],
    "gradvac": ["_extra_state", "phi_hat"],
    "graddrop": ["_extra_state"],
    "nash_mtl": ["alpha", "calls"],
    "metabalance": ["_extra_state"],
    "mtadam": ["_extra_state", "ranks"],
    "stch": ["epochs_seen", "reference"],
    "db_mtl": ["_extra_state", "steps"],
    "excess_mtl": ["_extra_state", "baseline", "loss_weights", "steps", "warmup_sum"],
    "sdmgrad": ["inner_weights"],
    "modo": ["lambd"],
    "moco": ["_extra_state", "lambd"],
    "doremi": ["reference", "scores", "seen", "smoothed", "updates", "weight_sum", "weights"],
    "aioli": ["gains", "smoothed", "smoothed_ready", "steps", "weights"],
    "frozen": ["weights"],
}


@pytest.mark.parametrize("name", MTO)
def test_no_weights_before_the_first_step_unless_they_exist(name):
    method = build(name, num_tasks=3)
    method.setup(["a", "b", "c"], setting_of(method))
    weights = method.current_weights()
    if name in WEIGHTS_BEFORE_A_STEP:
        assert weights is not None and weights.shape == (3,) and torch.isfinite(weights).all()
    else:
        assert weights is None


@pytest.mark.parametrize("name", MTO)
def test_counters_are_exact_integers_and_the_state_keys_are_stable(name, toy):
    torch.manual_seed(0)
    run = toy(build(name), lr=LR.get(name, 0.05))
    run.train(7)
    state = run.method.state_dict()
    assert sorted(state) == STATE_KEYS.get(name, [])
    integers = sorted(
        k
        for k, v in state.items()
        if isinstance(v, torch.Tensor) and v.shape == () and v.dtype in (torch.int32, torch.int64)
    )
    assert integers == ([COUNTERS[name][0]] if name in COUNTERS else []), "every counter has its value in COUNTERS"
    if name in COUNTERS:
        key, value = COUNTERS[name]
        assert state[key].dtype == torch.int64 and state[key].shape == () and int(state[key]) == value
        buffer = io.BytesIO()
        torch.save(state, buffer)
        buffer.seek(0)
        fresh = build(name)
        fresh.setup(["a", "b"], setting_of(fresh))
        fresh.load_state_dict(torch.load(buffer), strict=True)
        restored = fresh.state_dict()[key]
        assert restored.dtype == torch.int64 and int(restored) == value


@pytest.mark.parametrize("name", MTO)
def test_the_default_setting_is_multi_task_learning(name):
    method = build(name)
    if setting_of(method) == "mdl":  # a mixture method refuses MTL in one line
        with pytest.raises(MethodError, match="multi-domain") as error:
            method.setup(["a", "b"])
        assert "\n" not in str(error.value)
        return
    method.setup(["a", "b"])
    assert method.setting == "mtl" and method.task_names == ["a", "b"]
    assert method.sampling_weights() is None


@pytest.mark.parametrize("name", MTO)
def test_a_loaded_checkpoint_does_not_share_state_with_its_source(name, toy):
    """Training the method that loaded a checkpoint leaves the checkpoint (and its source) as
    they were: the state is copied, never aliased."""
    import copy

    torch.manual_seed(2)
    first = toy(build(name), lr=LR.get(name, 0.05))
    first.train(3)
    state = first.method.state_dict()
    snapshot = copy.deepcopy(state)
    fresh = build(name)
    fresh.setup(["a", "b"], setting_of(fresh))
    fresh.load_state_dict(state)
    second = first.clone(fresh)
    second.train(3)

    def same(a, b):
        if isinstance(a, torch.Tensor):
            assert isinstance(b, torch.Tensor) and torch.equal(a, b)
        elif isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                same(a[key], b[key])
        elif isinstance(a, (list, tuple)):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)

    same(state, snapshot)
    same(first.method.state_dict(), snapshot)
