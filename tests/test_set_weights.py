"""``Scalarization.set_weights`` normalises what it is given, as the constructor does: a user's own
loop (or a PBT explore) may hand it any non-negative numbers, and the loss it then minimises, the
weights it logs and the objective its best evaluation is judged by all sum the weights to one."""

from __future__ import annotations

import pytest
import torch

from scalarize.methods import MethodError, Scalarization, build_method


def _method(tasks=("a", "b", "c"), **options) -> Scalarization:
    method = Scalarization(**options)
    method.setup(list(tasks))
    return method


@pytest.mark.parametrize(
    "raw", [[1.0, 2.0, 5.0], torch.tensor([1.0, 2.0, 5.0]), torch.tensor([10, 20, 50]), [1e300, 2e300, 5e300]]
)
def test_set_weights_normalises_any_positive_scale(raw):
    method = _method()
    method.set_weights(raw)
    expected = torch.tensor([0.125, 0.25, 0.625])
    torch.testing.assert_close(method.weights, expected)
    torch.testing.assert_close(method.current_weights(), expected)
    torch.testing.assert_close(method.objective_weights(), expected)
    # the loss minimised is the normalised weighted sum: 0.125·1 + 0.25·2 + 0.625·4
    assert method.combine(torch.tensor([1.0, 2.0, 4.0])).item() == pytest.approx(3.125)


def test_set_weights_equals_the_constructor_s_weights_and_changes_them_in_place():
    method = _method()
    buffer = method.weights
    method.set_weights([3.0, 0.0, 1.0])
    assert method.weights is buffer  # in place: whoever holds the buffer sees the new weights
    assert torch.equal(method.weights, _method(weights=[3.0, 0.0, 1.0]).weights)
    assert method.weights.sum().item() == pytest.approx(1.0)
    assert method.weights.dtype == torch.get_default_dtype()


def test_set_weights_in_mdl_gives_the_sampler_a_distribution():
    method = _method(("d0", "d1"))
    method.setup(["d0", "d1"], "mdl")
    method.set_weights([1.0, 3.0])
    torch.testing.assert_close(method.sampling_weights(), torch.tensor([0.25, 0.75]))


def test_a_scalarization_built_by_name_normalises_too():
    method = build_method("scalarization")
    method.setup(["a", "b"])
    method.set_weights(torch.tensor([4.0, 12.0]))
    torch.testing.assert_close(method.weights, torch.tensor([0.25, 0.75]))


@pytest.mark.parametrize("raw", [[1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 2.0]])
def test_set_weights_refuses_what_cannot_be_normalised(raw):
    method = _method()
    before = method.weights.clone()
    with pytest.raises(MethodError):
        method.set_weights(raw)
    assert torch.equal(method.weights, before)
