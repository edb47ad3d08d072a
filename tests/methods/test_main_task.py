"""Every method with a ``main_task`` option honours a main task that is not the first task: naming
the main task equals putting it first (the same update, the same weights, permuted), and
MetaBalance's target is the named task, by hand, over several steps."""

from __future__ import annotations

import pytest
import torch

from scalarize.methods import MethodError, StepContext, available_methods, build_method
from scalarize.methods.registry import method_options

MAIN_TASK_METHODS = sorted(n for n in available_methods() if "main_task" in (method_options(n) or []))

# three tasks of distinct norms and directions: whichever is the main one matters
G = torch.tensor([[1.0, 0.0, 0.5], [0.2, 2.0, -0.1], [-0.3, 0.6, 3.0]], dtype=torch.float64)
STEPS = [G, 0.5 * G.flip(1), G + 0.25]


def test_the_methods_with_a_main_task_are_found():
    assert {"metabalance", "gradient_similarity"} <= set(MAIN_TASK_METHODS)


def _run(name: str, tasks: list[str], main: str | None, gradients: list[torch.Tensor]):
    method = build_method(name, main_task=main)
    method.setup(tasks)
    directions = [method.aggregate(g.clone(), torch.ones(len(tasks), dtype=g.dtype)) for g in gradients]
    return directions, method.current_weights()


@pytest.mark.parametrize("name", MAIN_TASK_METHODS)
@pytest.mark.parametrize("position", [1, 2])
def test_a_named_main_task_equals_that_task_put_first(name, position):
    tasks = ["x", "y", "z"]
    main = tasks[position]
    order = [position] + [i for i in range(3) if i != position]  # the main task first, the others in order
    named, named_weights = _run(name, tasks, main, STEPS)
    first, first_weights = _run(name, [tasks[i] for i in order], None, [g[order] for g in STEPS])
    for a, b in zip(named, first):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(named_weights[order], first_weights)
    assert named_weights[position].item() == pytest.approx(1.0)  # the main task's own gradient is kept whole
    # and the first task is not treated as the main one
    default, _ = _run(name, tasks, None, STEPS)
    assert not torch.allclose(named[-1], default[-1])


def test_metabalance_rescales_the_first_task_toward_a_main_task_named_second(gradient_context):
    # tasks (aux, target): ‖g_target‖ = 5, ‖g_aux‖ = 1; averages 0.5 and 0.1 after one step (β = 0.9)
    # g_aux ← 0.7·5·g_aux + 0.3·g_aux = 3.8·g_aux; the target's gradient is unchanged
    method = build_method("metabalance", main_task="target")
    method.setup(["aux", "target"])
    ctx = gradient_context(torch.tensor([[1.0, 0.0], [3.0, 4.0]]))
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([3.8 + 3.0, 4.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([3.8, 1.0]))
    torch.testing.assert_close(method.norm_averages, torch.tensor([[0.1], [0.5]]))


def test_metabalance_main_task_per_shared_tensor_and_after_a_round_trip():
    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(1))
    # tasks (aux, target). tensor a: target (3, 4), aux (1, 0) → scale 3.8;
    # tensor b: target 2, aux 4 → ratio ½, scale 0.7·½ + 0.3 = 0.65
    losses = torch.stack([a[0] + 4 * b[0] + 1, 3 * a[0] + 4 * a[1] + 2 * b[0] + 1])
    method = build_method("metabalance", main_task="target")
    method.setup(["aux", "target"])
    again = build_method("metabalance", main_task="target")
    again.setup(["aux", "target"])
    again.load_state_dict(method.state_dict())
    assert again.main_index == 1
    again.backward(StepContext(losses, features=None, shared_params=[a, b], task_params=[[], []]))
    torch.testing.assert_close(a.grad, torch.tensor([3.0 + 3.8, 4.0]))
    torch.testing.assert_close(b.grad, torch.tensor([2.0 + 0.65 * 4.0]))


def test_gradient_similarity_keeps_a_main_task_named_last_whole():
    # main z = (0, 1): x = (1, 1) agrees (cos 1/√2), y = (1, −1) conflicts (dropped)
    method = build_method("gradient_similarity", main_task="z")
    method.setup(["x", "y", "z"])
    g = torch.tensor([[1.0, 1.0], [1.0, -1.0], [0.0, 1.0]], dtype=torch.float64)
    k = 2**-0.5
    torch.testing.assert_close(method.aggregate(g, torch.ones(3)), torch.tensor([k, 1.0 + k], dtype=torch.float64))
    torch.testing.assert_close(method.current_weights(), torch.tensor([k, 0.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize("name", MAIN_TASK_METHODS)
def test_a_main_task_that_is_not_a_task_name_is_refused_with_the_method_s_name(name):
    with pytest.raises(MethodError) as error:
        build_method(name, main_task=1)
    assert str(error.value) == f"method {name}: main_task must be a task name, got 1"
    method = build_method(name, main_task="w")
    with pytest.raises(MethodError) as error:
        method.setup(["x", "y"])
    assert str(error.value) == f"method {name}: main_task 'w' is not a task; tasks: x, y"
