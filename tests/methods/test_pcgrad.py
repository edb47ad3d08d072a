"""PCGrad: two conflicting 2-D gradients by hand, non-conflicting ones untouched, and the same
rule as torchjd's PCGrad with the method's own generator."""

import torch
from torchjd.aggregation import PCGrad as TorchJDPCGrad

from scalarize.methods import build_method


def _method(num_tasks=2, **options):
    method = build_method("pcgrad", **options)
    method.setup([f"t{i}" for i in range(num_tasks)])
    return method


def test_two_conflicting_gradients_by_hand(gradient_context):
    # g1 = (1, 0), g2 = (−1, 1): g1·g2 = −1 < 0.
    # g1' = g1 − (−1/2) g2 = (0.5, 0.5);  g2' = g2 − (−1/1) g1 = (0, 1);  sum = (0.5, 1.5).
    G = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    method = _method()
    ctx = gradient_context(G)
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([2.0, 1.5]))


def test_non_conflicting_gradients_are_summed_unchanged():
    method = _method(3)
    for G in (
        torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]),  # orthogonal
        torch.tensor([[1.0, 1.0, 0.0], [2.0, 0.5, 1.0], [0.1, 0.3, 0.2]]),  # positive
    ):
        torch.testing.assert_close(method.aggregate(G, torch.ones(3)), G.sum(dim=0))


def test_same_as_torchjd_and_the_global_rng_is_untouched():
    G = torch.randn(4, 7, generator=torch.Generator().manual_seed(0))
    method = _method(4, seed=5)
    state = torch.get_rng_state()
    ours = method.aggregate(G, torch.ones(4))
    assert torch.equal(state, torch.get_rng_state())
    torch.manual_seed(5)
    theirs = TorchJDPCGrad()(G)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
