"""DWA: weights from a given loss history, and the same rule as torchjd's DWA."""

import math

import torch
from torchjd.scalarization import DWA as TorchJDDWA

from scalarize.methods import build_method


def _method(**options):
    method = build_method("dwa", **options)
    method.setup(["a", "b"])
    return method


def test_unit_weights_until_two_epochs_have_ended():
    method = _method()
    torch.testing.assert_close(method.current_weights(), torch.ones(2))
    method.end_epoch(0, torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(method.current_weights(), torch.ones(2))


def test_weights_from_the_last_two_epochs():
    method = _method()
    method.end_epoch(0, torch.tensor([9.0, 9.0]))  # forgotten after two more epochs
    method.end_epoch(1, torch.tensor([1.0, 2.0]))
    method.end_epoch(2, torch.tensor([0.5, 1.8]))
    r = [0.5 / 1.0, 1.8 / 2.0]
    e = [math.exp(x / 2.0) for x in r]
    expected = torch.tensor([2 * e[0] / sum(e), 2 * e[1] / sum(e)])
    torch.testing.assert_close(method.current_weights(), expected)
    losses = torch.tensor([3.0, 4.0])
    assert math.isclose(method.combine(losses).item(), float(expected @ losses), rel_tol=1e-6)
    assert math.isclose(float(method.current_weights().sum()), 2.0, rel_tol=1e-6)


def test_temperature():
    method = _method(temperature=0.5)
    method.end_epoch(0, torch.tensor([1.0, 1.0]))
    method.end_epoch(1, torch.tensor([1.0, 0.5]))
    e = [math.exp(1.0 / 0.5), math.exp(0.5 / 0.5)]
    torch.testing.assert_close(method.current_weights(), torch.tensor([2 * e[0] / sum(e), 2 * e[1] / sum(e)]))


def test_same_rule_as_torchjd():
    torch.manual_seed(0)
    ours, theirs = _method(), TorchJDDWA()
    for epoch in range(4):
        batches = [torch.rand(2) + 0.1 for _ in range(3)]
        for losses in batches:
            torch.testing.assert_close(ours.combine(losses), theirs(losses))
        ours.end_epoch(epoch, torch.stack(batches).mean(dim=0))
        theirs.step()


def test_four_epochs_by_hand():
    """The ratios slide: epoch t uses L̄(t−1)/L̄(t−2)."""
    method = _method()
    means = [[4.0, 2.0], [2.0, 2.0], [1.0, 1.5], [0.9, 0.5]]
    for epoch, m in enumerate(means):
        method.end_epoch(epoch, torch.tensor(m))
        if epoch == 0:
            torch.testing.assert_close(method.current_weights(), torch.ones(2))
            continue
        r = [a / b for a, b in zip(m, means[epoch - 1])]
        e = [math.exp(x / 2.0) for x in r]
        torch.testing.assert_close(method.current_weights(), torch.tensor([2 * x / sum(e) for x in e]))
