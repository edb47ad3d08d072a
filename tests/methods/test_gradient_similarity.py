"""Gradient similarity: an auxiliary gradient with negative cosine is dropped; a positive one is
added weighted by its cosine (or whole, in binary mode)."""

import math

import torch

from scalarize.methods import build_method


def _method(tasks=("main", "aux"), **options):
    method = build_method("gradient_similarity", **options)
    method.setup(list(tasks))
    return method


def test_conflicting_auxiliary_gradient_is_dropped(gradient_context):
    method = _method()
    ctx = gradient_context(torch.tensor([[1.0, 0.0], [-1.0, 1.0]]))
    method.backward(ctx)
    torch.testing.assert_close(ctx.shared_params[0].grad, torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([1.0, 0.0]))


def test_agreeing_auxiliary_gradient_weighted_by_cosine_or_whole():
    G = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    k = 1 / math.sqrt(2)
    weighted = _method(mode="weighted").aggregate(G, torch.ones(2))
    torch.testing.assert_close(weighted, torch.tensor([1 + k, k]))
    binary = _method(mode="binary").aggregate(G, torch.ones(2))
    torch.testing.assert_close(binary, torch.tensor([2.0, 1.0]))


def test_main_task_by_name_and_several_auxiliaries():
    method = _method(("aux1", "main", "aux2"), main_task="main", mode="binary")
    G = torch.tensor([[-1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    # aux1 is orthogonal to main (cos 0: not positive, dropped); aux2 agrees.
    torch.testing.assert_close(method.aggregate(G, torch.ones(3)), torch.tensor([0.5, 1.5]))
    torch.testing.assert_close(method.current_weights(), torch.tensor([0.0, 1.0, 1.0]))
