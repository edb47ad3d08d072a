"""The shared helpers by hand: the simplex projection, seeded generators and the global RNG,
devices of a method, task names; and the registry's refusals, each one line naming what is
allowed."""

import pytest
import torch
from torch import nn

from scalarize.methods import MethodError, available_methods, build_method
from scalarize.methods._common import (
    device_of,
    global_rng_from,
    make_generator,
    project_onto_simplex,
    same_device,
    task_index,
)
from scalarize.methods.registry import method_class, method_options, register


@pytest.mark.parametrize(
    ("v", "expected"),
    [
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),  # already on the simplex
        ([1.0, 1.0, 1.0], [1 / 3, 1 / 3, 1 / 3]),  # shifted by 2/3
        ([2.0, 0.0, -1.0], [1.0, 0.0, 0.0]),  # one coordinate left
        ([0.5, 0.5, -3.0], [0.5, 0.5, 0.0]),
        ([0.9, 0.6, 0.1], [0.65, 0.35, 0.0]),  # θ = 0.25: (0.65, 0.35, −0.15 → 0)
        ([-1.0, -2.0], [1.0, 0.0]),
    ],
)
def test_projection_onto_the_simplex_by_hand(v, expected):
    out = project_onto_simplex(torch.tensor(v, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor(expected, dtype=torch.float64))


def test_projection_is_the_nearest_point():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        v = torch.randn(5, generator=gen, dtype=torch.float64) * 2
        p = project_onto_simplex(v)
        assert p.min() >= 0 and abs(float(p.sum()) - 1) < 1e-12
        e = -torch.log(torch.rand(500, 5, generator=gen, dtype=torch.float64))
        others = e / e.sum(dim=1, keepdim=True)
        assert (others - v).norm(dim=1).min() >= (p - v).norm() - 1e-12


def test_generators_are_seeded_or_follow_the_global_rng():
    a, b = make_generator("m", 7), make_generator("m", 7)
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    assert torch.equal(
        torch.rand(3, generator=make_generator("m", 7)), torch.rand(3, generator=torch.Generator().manual_seed(7))
    )
    torch.manual_seed(3)
    c = make_generator("m", None)
    torch.manual_seed(3)
    d = make_generator("m", None)
    assert torch.equal(torch.rand(3, generator=c), torch.rand(3, generator=d))
    with pytest.raises(MethodError) as error:
        make_generator("m", -1)
    assert str(error.value) == "method m: seed must be >= 0, got -1"


def test_global_rng_draws_come_from_the_generator_and_leave_the_global_rng():
    generator = torch.Generator().manual_seed(5)
    torch.manual_seed(9)
    before = torch.get_rng_state()
    with global_rng_from(generator):
        inside = torch.rand(4)
    assert torch.equal(torch.get_rng_state(), before)  # untouched
    assert torch.equal(inside, torch.rand(4, generator=torch.Generator().manual_seed(5)))
    # the generator advanced past the draws
    reference = torch.Generator().manual_seed(5)
    torch.rand(4, generator=reference)
    assert torch.equal(torch.rand(2, generator=generator), torch.rand(2, generator=reference))


def test_devices_of_a_method():
    assert device_of(nn.Module()) == torch.device("cpu")
    module = nn.Linear(2, 2).to("meta")
    assert device_of(module).type == "meta"
    holder = nn.Module()
    holder.register_buffer("b", torch.zeros(1, device="meta"))
    assert device_of(holder).type == "meta"
    with same_device(holder):
        holder.c = nn.Parameter(torch.zeros(2))  # created on the host
    assert holder.c.device.type == "meta"


def test_task_index():
    assert task_index("m", "main_task", None, ["a", "b"]) == 0
    assert task_index("m", "main_task", "b", ["a", "b"]) == 1
    with pytest.raises(MethodError) as error:
        task_index("m", "main_task", "c", ["a", "b"])
    assert str(error.value) == "method m: main_task 'c' is not a task; tasks: a, b"


def test_registry_refusals_and_lookups():
    with pytest.raises(MethodError) as error:
        build_method("nope")
    assert str(error.value) == f"method.name: unknown method 'nope'; allowed: {', '.join(available_methods())}"
    assert available_methods() == sorted(available_methods())
    with pytest.raises(MethodError) as error:
        build_method("mgda", weights=[1, 2])
    assert str(error.value) == "method.weights: mgda takes no weights (they are for scalarization)"
    with pytest.raises(MethodError) as error:
        build_method("mgda", lr=1)
    assert str(error.value) == (
        "method.options.lr: unknown option for method 'mgda'; allowed: normalization, solver, epsilon, max_iters"
    )
    with pytest.raises(MethodError) as error:
        build_method("gls", c=1)
    assert str(error.value) == "method.options.c: unknown option for method 'gls'; allowed: none"
    with pytest.raises(MethodError) as error:
        build_method("frozen")  # a required option missing
    assert str(error.value).startswith("method 'frozen': ") and "source" in str(error.value)
    assert method_class("mgda").name == "mgda" and method_class("nope") is None
    assert method_options("frozen") == ["source", "run", "reduce", "beta", "start_step"]

    class Nameless(nn.Module):
        name = ""

    with pytest.raises(ValueError) as error:
        register(Nameless)
    assert str(error.value) == "Nameless has no name"
