"""The MDL mixture sampler's passes: each domain cycles through its own order, and after every full
pass over a domain that order is reshuffled from the sampler's generator, whether or not the
sampler was resumed from a state in between. Checked on each domain's stream of rows (a pass is a
permutation, no two passes alike), against a model of the rule written out here, and across a
resume at every draw."""

from __future__ import annotations

import math

import pytest
import torch

from scalarize.data import Split
from scalarize.data.sampling import MixtureSampler

SIZES = (4, 6, 5)
BATCH = 5
DRAWS = 48  # 240 rows: about 20 passes over each domain with these weights
WEIGHTS = torch.tensor([0.3, 0.4, 0.3], dtype=torch.float64)


def _domains(sizes=SIZES) -> list[Split]:
    """Domain d's row i has the target 100·d + i."""
    return [Split(torch.zeros(n, 1), {"y": 100 * d + torch.arange(n)}) for d, n in enumerate(sizes)]


def _sampler(seed: int = 7, sizes=SIZES, weights=WEIGHTS) -> MixtureSampler:
    sampler = MixtureSampler(_domains(sizes), BATCH, seed)
    sampler.set_weights(weights)
    return sampler


def _streams(draws, domains: int) -> list[list[int]]:
    """Each domain's rows, in the order the draws took them."""
    streams: list[list[int]] = [[] for _ in range(domains)]
    for draw in draws:
        for domain, rows in draw.groups:
            streams[domain].extend(rows.tolist())
    return streams


def _passes(stream: list[int], size: int) -> list[tuple[int, ...]]:
    return [tuple(stream[i : i + size]) for i in range(0, len(stream) - size + 1, size)]


def _repeats(passes) -> int:
    """How many passes repeat the one before."""
    return sum(a == b for a, b in zip(passes, passes[1:]))


def _check_passes(streams: list[list[int]], sizes=SIZES) -> None:
    for domain, (stream, size) in enumerate(zip(streams, sizes)):
        passes = _passes(stream, size)
        assert len(passes) >= 8, (domain, len(passes))
        for one in passes:
            assert sorted(one) == list(range(size)), (domain, one)
        # reshuffled after every pass: a new random order each time (a repeat now and then, as
        # chance gives it; never the same order pass after pass)
        assert _repeats(passes) <= len(passes) // 4, (domain, passes)
        assert len(set(passes)) >= min(len(passes) // 2, math.factorial(size)), (domain, passes)


def _model(seed: int, sizes=SIZES, weights=WEIGHTS, draws: int = DRAWS) -> list[list[int]]:
    """The rule written out: one generator; each domain's first order drawn in domain order; each
    batch's domains drawn (multinomial), then each drawn domain's rows taken in domain order from
    its order, a new order drawn the moment a pass is complete."""
    generator = torch.Generator().manual_seed(seed)
    orders = [torch.randperm(n, generator=generator).tolist() for n in sizes]
    positions = [0] * len(sizes)
    streams: list[list[int]] = [[] for _ in sizes]
    for _ in range(draws):
        picks = torch.multinomial(weights / weights.sum(), BATCH, replacement=True, generator=generator)
        for domain, count in enumerate(torch.bincount(picks, minlength=len(sizes)).tolist()):
            for _ in range(count):
                streams[domain].append(orders[domain][positions[domain]])
                positions[domain] += 1
                if positions[domain] == sizes[domain]:
                    orders[domain] = torch.randperm(sizes[domain], generator=generator).tolist()
                    positions[domain] = 0
    return streams


@pytest.mark.parametrize("seed", [0, 7])
def test_each_domain_is_reshuffled_after_every_full_pass(seed):
    sampler = _sampler(seed)
    streams = _streams([sampler.next_draw() for _ in range(DRAWS)], len(SIZES))
    _check_passes(streams)


@pytest.mark.parametrize("seed", [0, 7])
def test_each_domain_s_order_is_the_rule_s(seed):
    sampler = _sampler(seed)
    assert _streams([sampler.next_draw() for _ in range(DRAWS)], len(SIZES)) == _model(seed)


def test_a_batch_larger_than_a_domain_spans_several_passes_each_reshuffled():
    sizes, weights = (2, 3), torch.tensor([0.5, 0.5], dtype=torch.float64)
    sampler = MixtureSampler(_domains(sizes), 12, 3)  # ~6 rows of each per batch: 2 or 3 passes in one draw
    sampler.set_weights(weights)
    streams = _streams([sampler.next_draw() for _ in range(12)], 2)
    for stream, size in zip(streams, sizes):
        passes = _passes(stream, size)
        assert len(passes) >= 20 and all(sorted(p) == list(range(size)) for p in passes)
        assert len(set(passes)) == {2: 2, 3: 6}[size]  # every order of so small a domain comes up


def test_a_domain_of_one_row_and_an_unvisited_domain():
    sizes = (1, 3, 4)
    sampler = MixtureSampler(_domains(sizes), BATCH, 0)
    sampler.set_weights(torch.tensor([1.0, 1.0, 0.0]))
    streams = _streams([sampler.next_draw() for _ in range(20)], 3)
    assert set(streams[0]) == {0} and len(streams[0]) > 20 and streams[2] == []
    assert sampler.positions[2] == 0 and sampler.positions[0] == 0
    _check_passes(streams[1:2], sizes[1:2])


@pytest.mark.parametrize("stop", range(0, DRAWS, 3))
def test_a_resumed_sampler_reshuffles_as_the_uninterrupted_one(stop):
    reference = _sampler(7)
    expected = [reference.next_draw() for _ in range(stop + DRAWS)]
    first = _sampler(7)
    before = [first.next_draw() for _ in range(stop)]
    state = first.state_dict()
    resumed = _sampler(123, weights=torch.tensor([1.0, 1.0, 1.0]))  # another seed and mixture: the state decides
    resumed.load_state_dict(state)
    after = [resumed.next_draw() for _ in range(DRAWS)]
    streams = _streams(before + after, len(SIZES))
    assert streams == _streams(expected, len(SIZES))
    _check_passes(streams)
    # the resumed part alone is reshuffled after each of its own passes too
    resumed_streams = _streams(after, len(SIZES))
    for domain, size in enumerate(SIZES):
        offset = (size - state["positions"][domain]) % size
        passes = _passes(resumed_streams[domain][offset:], size)
        assert len(passes) >= 2 and _repeats(passes) <= len(passes) // 4, (domain, passes)


def test_a_state_taken_at_the_end_of_a_pass_holds_the_next_order():
    sampler = _sampler(7)
    while True:
        sampler.next_draw()
        if 0 in sampler.positions:
            break
    domain = sampler.positions.index(0)
    state = sampler.state_dict()
    resumed = _sampler(99)
    resumed.load_state_dict(state)
    assert torch.equal(resumed.orders[domain], sampler.orders[domain])
    taken = _streams([resumed.next_draw() for _ in range(10)], len(SIZES))[domain]
    assert taken[: SIZES[domain]] == sampler.orders[domain].tolist()[: len(taken[: SIZES[domain]])]
