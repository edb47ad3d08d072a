"""Properties of the samplers (scalarize.data.sampling, Hypothesis): epochs, mixtures, resume."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from scalarize.data.benchmark import Split
from scalarize.data.sampling import EpochSampler, MixtureSampler

FAST = settings(max_examples=25, deadline=None)


def numbered(n: int, first: int = 0) -> Split:
    """A split whose input ``i`` is the number ``first + i``, so a batch names its samples."""
    ids = torch.arange(first, first + n, dtype=torch.float32)
    return Split(ids[:, None], {"y": ids.long()})


def ids(batch) -> list[int]:
    return batch.inputs[:, 0].long().tolist()


def domains(sizes: list[int]) -> list[Split]:
    """Domain d holds the numbers ``1000·d + i``: a sample's domain is its number // 1000."""
    return [numbered(n, 1000 * d) for d, n in enumerate(sizes)]


@FAST
@given(st.integers(10, 60), st.integers(1, 64), st.integers(0, 2**31 - 1))
def test_each_epoch_is_a_new_permutation_of_the_split(n, batch_size, seed):
    sampler = EpochSampler(numbered(n), batch_size, seed)
    assert sampler.steps_per_epoch == math.ceil(n / batch_size)
    epochs = []
    for _ in range(3):
        batches = list(sampler.epoch())
        assert len(batches) == sampler.steps_per_epoch
        assert all(len(ids(b)) == batch_size for b in batches[:-1])
        order = [i for b in batches for i in ids(b)]
        assert sorted(order) == list(range(n))  # every sample exactly once
        assert all(b.counts.tolist() == [len(ids(b))] for b in batches)
        assert all(b.targets["y"].tolist() == ids(b) for b in batches)
        epochs.append(order)
    assert epochs[0] != epochs[1] and epochs[1] != epochs[2]


@FAST
@given(
    st.lists(st.integers(3, 40), min_size=1, max_size=4),
    st.integers(1, 32),
    st.integers(0, 2**31 - 1),
)
def test_mixture_epoch_length_and_batch_composition(sizes, batch_size, seed):
    sampler = MixtureSampler(domains(sizes), batch_size, seed)
    assert sampler.steps_per_epoch == math.ceil(sum(sizes) / batch_size)
    batches = list(sampler.epoch())
    assert len(batches) == sampler.steps_per_epoch
    for b in batches:
        numbers = ids(b)
        assert len(numbers) == batch_size
        per_domain = np.bincount([i // 1000 for i in numbers], minlength=len(sizes))
        assert b.counts.tolist() == per_domain.tolist()
        assert numbers == sorted(numbers, key=lambda i: i // 1000)  # grouped by domain
        assert all(i % 1000 < sizes[i // 1000] for i in numbers)
        assert b.targets["y"].tolist() == numbers


@FAST
@given(st.lists(st.integers(1, 20), min_size=2, max_size=4), st.integers(0, 2**31 - 1))
def test_mixture_frequencies_converge_to_the_weights(raw_weights, seed):
    weights = torch.tensor(raw_weights, dtype=torch.float64)
    sampler = MixtureSampler(domains([7] * len(raw_weights)), 50, seed)
    sampler.set_weights(weights * 3.0)  # any positive scale: normalised
    p = (weights / weights.sum()).numpy()
    draws = sum(b.counts for b in (sampler.next_batch() for _ in range(60))).numpy()
    total = draws.sum()
    assert total == 60 * 50
    tolerance = 5 * np.sqrt(p * (1 - p) / total)  # five binomial standard deviations
    assert np.all(np.abs(draws / total - p) <= tolerance), (draws / total, p)


@FAST
@given(st.lists(st.integers(2, 9), min_size=1, max_size=3), st.integers(0, 2**31 - 1))
def test_each_domain_is_visited_without_replacement(sizes, seed):
    sampler = MixtureSampler(domains(sizes), 5, seed)
    seen: list[list[int]] = [[] for _ in sizes]
    for _ in range(12):
        for i in ids(sampler.next_batch()):
            seen[i // 1000].append(i)
    for d, numbers in enumerate(seen):
        for start in range(0, len(numbers) - sizes[d] + 1, sizes[d]):
            cycle = numbers[start : start + sizes[d]]
            assert sorted(cycle) == [1000 * d + i for i in range(sizes[d])]


@FAST
@given(
    st.integers(5, 30),
    st.integers(1, 8),
    st.integers(0, 2**31 - 1),
    st.integers(0, 20),
)
def test_epoch_sampler_resumes_exactly(n, batch_size, seed, stop):
    reference = EpochSampler(numbered(n), batch_size, seed)
    for _ in range(stop):
        reference.next_batch()
    state = reference.state_dict()
    expected = [ids(reference.next_batch()) for _ in range(12)]
    resumed = EpochSampler(numbered(n), batch_size, seed + 1)
    resumed.load_state_dict(state)
    assert [ids(resumed.next_batch()) for _ in range(12)] == expected


@FAST
@given(
    st.lists(st.integers(2, 12), min_size=1, max_size=3),
    st.integers(1, 8),
    st.integers(0, 2**31 - 1),
    st.integers(0, 15),
    st.lists(st.integers(1, 5), min_size=3, max_size=3),
)
def test_mixture_sampler_resumes_exactly(sizes, batch_size, seed, stop, raw_weights):
    def make(s: int) -> MixtureSampler:
        return MixtureSampler(domains(sizes), batch_size, s)

    reference = make(seed)
    reference.set_weights(torch.tensor(raw_weights[: len(sizes)], dtype=torch.float64))
    for _ in range(stop):
        reference.next_batch()
    state = reference.state_dict()
    expected = [(ids(b), b.counts.tolist()) for b in (reference.next_batch() for _ in range(10))]
    resumed = make(seed + 1)  # another seed and the default weights: the state restores both
    resumed.load_state_dict(state)
    assert [(ids(b), b.counts.tolist()) for b in (resumed.next_batch() for _ in range(10))] == expected
