"""GradNorm: the weights' gradient on a two-task toy computed by hand, the model's gradient,
the choice of the last shared layer, and renormalisation after the step."""

import math

import pytest
import torch
from torch import nn

from scalarize.methods import StepContext, build_method


def _problem(w_values, b_value):
    """Shared W (1×2) and bias b; L1 = 2 ΣW + b², L2 = W₀₀² + 3b."""
    W = nn.Parameter(torch.tensor([w_values]))
    b = nn.Parameter(torch.tensor([b_value]))
    losses = torch.stack([2 * W.sum() + b[0] ** 2, W[0, 0] ** 2 + 3 * b[0]])
    ctx = StepContext(losses, features=None, shared_params=[W, b], task_params=[[], []])
    return W, b, ctx


def _expected_weight_gradient(w, norms, ratios, alpha):
    g = [wi * ni for wi, ni in zip(w, norms)]
    g_bar = sum(g) / len(g)
    r = [x / (sum(ratios) / len(ratios)) for x in ratios]
    target = [g_bar * ri**alpha for ri in r]
    return [math.copysign(ni, gi - ti) for ni, gi, ti in zip(norms, g, target)]


def test_first_step_by_hand():
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    W, b, ctx = _problem([1.0, 1.0], 0.5)
    method.backward(ctx)
    # ∇_W L1 = (2, 2): ‖·‖ = 2√2; ∇_W L2 = (2, 0): ‖·‖ = 2; r = (1, 1) on the first step;
    # Ḡ = √2 + 1, so G1 > Ḡ > G2 and dL_grad/dw = (+2√2, −2).
    expected = _expected_weight_gradient([1, 1], [2 * math.sqrt(2), 2], [1, 1], 1.5)
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor(expected))
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor([2 * math.sqrt(2), -2.0]))
    # the model's gradient is that of w·L with w held constant
    torch.testing.assert_close(W.grad, torch.tensor([[4.0, 2.0]]))
    torch.testing.assert_close(b.grad, torch.tensor([2 * 0.5 + 3.0]))
    torch.testing.assert_close(method.initial_losses, torch.tensor([4.25, 2.5]))


def test_later_step_uses_inverse_training_rates():
    method = build_method("gradnorm", alpha=1.5)
    method.setup(["a", "b"])
    method.initial_losses = torch.tensor([4.25, 2.5])
    method.initialised.fill_(True)
    with torch.no_grad():
        method.loss_weights.copy_(torch.tensor([1.2, 0.8]))
    W, b, ctx = _problem([0.5, 1.0], 0.5)
    method.backward(ctx)
    losses = [2 * 1.5 + 0.25, 0.25 + 1.5]
    ratios = [losses[0] / 4.25, losses[1] / 2.5]
    expected = _expected_weight_gradient([1.2, 0.8], [2 * math.sqrt(2), 1.0], ratios, 1.5)
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor(expected))
    torch.testing.assert_close(W.grad, torch.tensor([[1.2 * 2 + 0.8 * 1.0, 1.2 * 2]]))


def test_weights_are_renormalised_to_sum_to_the_number_of_tasks():
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    W, b, ctx = _problem([1.0, 1.0], 0.5)
    opt = torch.optim.SGD([W, b, *method.parameters()], lr=0.1)
    method.backward(ctx)
    opt.step()
    method.after_step(ctx)
    w = method.current_weights()
    assert math.isclose(float(w.sum()), 2.0, rel_tol=1e-6)
    raw = torch.tensor([1.0, 1.0]) - 0.1 * torch.tensor([2 * math.sqrt(2), -2.0])
    torch.testing.assert_close(w, 2 * raw / raw.sum())
    assert w[1] > w[0]  # the task with the smaller gradient norm gains weight


def test_the_layer_is_the_last_shared_weight_matrix(toy):
    from scalarize.methods.gradnorm import last_shared_layer

    run = toy(build_method("gradnorm"))
    params = list(run.model.trunk.parameters())
    assert last_shared_layer(params) is params[-2]  # the Linear's weight, not its bias


@pytest.mark.parametrize("split", [True, False])
def test_representation_layer_takes_the_norms_on_the_features(split):
    """``layer: representation``: n_i = ‖∂L_i/∂Z‖ on the trunk's output; first step, r = 1."""
    from scalarize.models.multitask import MultiTaskModel

    torch.manual_seed(0)
    model = MultiTaskModel(nn.Sequential(nn.Linear(3, 4), nn.Tanh()), {"a": nn.Linear(4, 1), "b": nn.Linear(4, 2)})
    x = torch.randn(8, 3)
    if split:
        z, head_inputs, out = model.forward_with_head_inputs(x)
    else:
        (z, out), head_inputs = model(x), None
    losses = torch.stack([(out["a"] ** 2).mean(), ((out["b"] - 1) ** 2).mean()])
    norms = torch.stack([torch.autograd.grad(loss, z, retain_graph=True)[0].norm() for loss in losses])
    ctx = StepContext(
        losses,
        features=z,
        shared_params=model.shared_parameters(),
        task_params=model.task_parameters(),
        head_inputs=head_inputs,
    )
    method = build_method("gradnorm", layer="representation")
    method.setup(["a", "b"])
    method.backward(ctx)
    expected = _expected_weight_gradient([1, 1], norms.tolist(), [1, 1], 1.5)
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor(expected))
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    _, again = model(x)
    (again["a"] ** 2).mean().add(((again["b"] - 1) ** 2).mean()).backward()
    for a, p in zip(grads, model.parameters()):
        torch.testing.assert_close(a, p.grad)


def test_unknown_layer_is_refused():
    from scalarize.methods import MethodError

    with pytest.raises(MethodError, match="method gradnorm: layer must be one of 'last_shared', 'representation'"):
        build_method("gradnorm", layer="first")


def _rule(w, norms, losses, initial, alpha=1.5):
    """GradNorm's gradient on w, written from the paper: G_i = w_i n_i, r_i = L̃_i / mean L̃,
    L̃_i = L_i / L_i(0), ∂/∂w_i Σ_j |G_j − Ḡ r_j^α| with the target held constant."""
    g = [wi * ni for wi, ni in zip(w, norms)]
    g_bar = sum(g) / len(g)
    rates = [li / l0 for li, l0 in zip(losses, initial)]
    r = [x / (sum(rates) / len(rates)) for x in rates]
    return [math.copysign(ni, gi - g_bar * ri**alpha) for ni, gi, ri in zip(norms, g, r)]


def test_three_steps_by_hand():
    """Weights learned by SGD (lr 0.1) and renormalised to sum to T after each step, while the
    model moves (each step's parameters given), against the paper's rule step by step."""
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    opt = torch.optim.SGD(method.parameters(), lr=0.1)
    w, initial = [1.0, 1.0], None
    for w00, w01, b0 in [(1.0, 1.0, 0.5), (0.5, 1.0, 0.5), (0.8, 0.2, 0.3)]:
        W, b, ctx = _problem([w00, w01], b0)
        losses = [2 * (w00 + w01) + b0**2, w00**2 + 3 * b0]
        initial = initial or losses
        norms = [2 * math.sqrt(2), 2 * abs(w00)]  # ‖∇_W L1‖, ‖∇_W L2‖ on the last shared layer W
        opt.zero_grad()
        method.backward(ctx)
        expected = _rule(w, norms, losses, initial)
        torch.testing.assert_close(method.loss_weights.grad, torch.tensor(expected))
        torch.testing.assert_close(W.grad, torch.tensor([[2 * w[0] + 2 * w00 * w[1], 2 * w[0]]]))
        opt.step()
        method.after_step(ctx)
        raw = [max(wi - 0.1 * gi, 1e-6) for wi, gi in zip(w, expected)]
        w = [2 * x / sum(raw) for x in raw]
        torch.testing.assert_close(method.current_weights(), torch.tensor(w))
    torch.testing.assert_close(method.initial_losses, torch.tensor([4.25, 2.5]))


def test_inverse_training_rates_are_normalised():
    """Both losses halved: the raw rates (½, ½) would put the targets at 0.35 Ḡ, below both
    G_i (signs +, +); normalised, r = (1, 1) and the target is Ḡ itself (signs +, −)."""
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    method.initial_losses = torch.tensor([8.5, 5.0])
    method.initialised.fill_(True)
    W, b, ctx = _problem([1.0, 1.0], 0.5)  # L = (4.25, 2.5)
    method.backward(ctx)
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor([2 * math.sqrt(2), -2.0]))


def test_default_alpha_is_1_5_and_is_used():
    """n = (1.25, 0.75)·c with w = 1 and rates normalised to (1.2, 0.8): with α = 1 the targets
    (1.2, 0.8) Ḡ give signs (+, −); with α = 1.5, (1.315, 0.716) Ḡ give (−, +)."""
    assert build_method("gradnorm").alpha == 1.5
    grads = {}
    for alpha in (1.0, 1.5):
        method = build_method("gradnorm", alpha=alpha)
        method.setup(["a", "b"])
        method.initial_losses = torch.tensor([1.0, 1.0])
        method.initialised.fill_(True)
        W = nn.Parameter(torch.tensor([[0.0]]))
        # L1 = 1.25 W + 1.2, L2 = 0.75 W + 0.8 at W = 0: rates (1.2, 0.8), n = (1.25, 0.75)
        losses = torch.stack([1.25 * W[0, 0] + 1.2, 0.75 * W[0, 0] + 0.8])
        method.backward(StepContext(losses, features=None, shared_params=[W], task_params=[[], []]))
        grads[alpha] = method.loss_weights.grad.sign().tolist()
    assert grads == {1.0: [1.0, -1.0], 1.5: [-1.0, 1.0]}


def test_the_layer_is_the_last_shared_layer_not_the_first():
    """A two-layer trunk: the norms are taken on the second Linear's weight."""
    from scalarize.methods.gradnorm import last_shared_layer

    torch.manual_seed(0)
    trunk = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    params = list(trunk.parameters())
    assert last_shared_layer(params) is trunk[2].weight
    x = torch.randn(5, 3)
    z = trunk(x)
    losses = torch.stack([(z[:, 0] ** 2).mean(), ((z[:, 1] - 1) ** 2).mean() + 0.5 * (z[:, 0]).mean()])
    norms = [torch.autograd.grad(loss, trunk[2].weight, retain_graph=True)[0].norm().item() for loss in losses]
    method = build_method("gradnorm")
    method.setup(["a", "b"])
    method.backward(StepContext(losses, features=None, shared_params=params, task_params=[[], []]))
    expected = _rule([1.0, 1.0], norms, [1.0, 1.0], [1.0, 1.0])
    torch.testing.assert_close(method.loss_weights.grad, torch.tensor(expected))
