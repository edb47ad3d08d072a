"""Behaviours of the samplers (scalarize.data.sampling) that a run relies on: the augmentation
stream, forks, draws, reading draws (one or stacked), mixture weights and ``build_sampler``.

Small in-memory splits whose samples name themselves: sample ``i`` of a split built with
``first`` has the id ``first + i`` (its target ``y``) and an image whose pixels are all distinct
and non-zero (so that any crop or flip is visible). Everything here is deterministic.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scalarize.data import ArrayImages, Benchmark, ImageSplit, Split, StreamingSampler, Task
from scalarize.data.augment import Augmentation
from scalarize.data.sampling import (
    Draw,
    EpochSampler,
    MixtureSampler,
    augmentation_seed,
    build_sampler,
    read_draws,
)

C, H, W = 1, 4, 5
AUG = Augmentation(crop=2, flip=True)


def images(n: int, first: int = 0) -> Split:
    """Sample i: id ``first + i``; image ``1000·id + (1 .. C·H·W)``: distinct, non-zero pixels."""
    ids = torch.arange(first, first + n)
    pixels = torch.arange(1, C * H * W + 1, dtype=torch.float32).reshape(C, H, W)
    inputs = ids.float()[:, None, None, None] * 1000 + pixels
    return Split(inputs, {"y": ids, "half": ids.float() / 2})


def domains(sizes) -> list[Split]:
    """Domain d holds the ids ``100·d + i``."""
    return [images(n, 100 * d) for d, n in enumerate(sizes)]


def epoch_sampler(seed: int = 3, augment: Augmentation | None = None, n: int = 10, batch_size: int = 4):
    return EpochSampler(images(n), batch_size, seed, augment)


def mixture_sampler(seed: int = 3, augment: Augmentation | None = None, sizes=(5, 7, 3), batch_size: int = 6):
    return MixtureSampler(domains(sizes), batch_size, seed, augment)


MAKERS = {"epoch": epoch_sampler, "mixture": mixture_sampler}
kinds = pytest.mark.parametrize("kind", sorted(MAKERS))


def take(sampler, n: int) -> list[Draw]:
    return [sampler.next_draw() for _ in range(n)]


def rows(draw: Draw):
    """What a draw selects, without its augmentation."""
    return [(d, r.tolist()) for d, r in draw.groups], draw.counts.tolist()


def all_same(a: list[Draw], b: list[Draw]) -> bool:
    return len(a) == len(b) and all(x.same_as(y) for x, y in zip(a, b))


def expected_augmentation(augment: Augmentation, seed: int, sizes: list[int]) -> list[torch.Tensor]:
    """The augmentation stream a sampler of ``seed`` must give: ``augment.draw`` on a generator
    seeded with ``augmentation_seed(seed)``, one call per draw."""
    generator = torch.Generator().manual_seed(augmentation_seed(seed))
    return [augment.draw(size, generator) for size in sizes]


def crop_flip(image: torch.Tensor, dy: int, dx: int, flipped: int, pad: int) -> torch.Tensor:
    """The augmentation rule, written out for one image ``[C, H, W]``."""
    padded = F.pad(image, (pad, pad, pad, pad))
    window = padded[:, dy : dy + image.shape[-2], dx : dx + image.shape[-1]]
    return window.flip(-1) if flipped else window


# ------------------------------------------------------------------ augmentation stream


@kinds
def test_turning_augmentation_on_does_not_change_the_rows_drawn(kind):
    plain, augmented = MAKERS[kind](5), MAKERS[kind](5, AUG)
    for a, b in zip(take(plain, 9), take(augmented, 9)):  # several epochs / domain cycles
        assert rows(a) == rows(b)
        assert a.augment is None
        assert b.augment.dtype == torch.long and b.augment.shape == (int(b.counts.sum()), 3)


@kinds
def test_augmentation_is_drawn_from_the_samplers_own_generator_derived_from_its_seed(kind):
    torch.manual_seed(0)
    first = MAKERS[kind](5, AUG)
    draws = take(first, 7)
    torch.manual_seed(1)  # the global generator plays no part
    again = take(MAKERS[kind](5, AUG), 7)
    assert all_same(draws, again)
    sizes = [len(d.augment) for d in draws]
    expected = expected_augmentation(AUG, 5, sizes)
    assert all(torch.equal(d.augment, e) for d, e in zip(draws, expected))
    other = take(MAKERS[kind](6, AUG), 7)
    assert not all(torch.equal(d.augment, o.augment) for d, o in zip(draws, other))


@kinds
@pytest.mark.parametrize("augment", [None, Augmentation(), Augmentation(crop=0, flip=False)])
def test_no_or_inactive_augmentation_means_none(kind, augment):
    sampler = MAKERS[kind](5, augment)
    assert sampler.augmentation is None
    assert all(d.augment is None for d in take(sampler, 4))
    assert "augment_generator" not in sampler.state_dict()
    twin = sampler.fork()
    draw = twin.next_draw()
    raw = read_draws(sampler.splits, [draw], None)
    assert torch.equal(sampler.next_batch().inputs, raw.inputs)


@kinds
@pytest.mark.parametrize("augment", [Augmentation(crop=1), Augmentation(flip=True), AUG])
def test_active_augmentation_is_kept_and_drawn_per_sample(kind, augment):
    sampler = MAKERS[kind](5, augment)
    assert sampler.augmentation == augment
    draws = take(sampler, 5)
    expected = expected_augmentation(augment, 5, [int(d.counts.sum()) for d in draws])
    assert all(torch.equal(d.augment, e) for d, e in zip(draws, expected))
    assert "augment_generator" in sampler.state_dict()


@kinds
def test_a_resumed_state_continues_the_augmentation_stream(kind):
    reference = MAKERS[kind](5, AUG)
    take(reference, 4)
    state = reference.state_dict()
    expected = take(reference, 6)
    resumed = MAKERS[kind](99, AUG)  # another seed: the state restores rows and augmentation
    take(resumed, 2)
    resumed.load_state_dict(state)
    assert all_same(take(resumed, 6), expected)


@kinds
def test_states_load_across_augmentation_settings(kind):
    plain, augmented = MAKERS[kind](5), MAKERS[kind](5, AUG)
    take(plain, 4)
    take(augmented, 4)
    plain_state, augmented_state = plain.state_dict(), augmented.state_dict()
    expected_rows = [rows(d) for d in take(plain, 5)]

    # a state without augmentation into an augmenting sampler: the rows continue, and the
    # augmentation goes on with the sampler's own stream (nothing to restore)
    resumed = MAKERS[kind](99, AUG)
    resumed.load_state_dict(plain_state)
    draws = take(resumed, 5)
    assert [rows(d) for d in draws] == expected_rows
    stream = expected_augmentation(AUG, 99, [len(d.augment) for d in draws])
    assert all(torch.equal(d.augment, e) for d, e in zip(draws, stream))

    # a state with augmentation into a sampler without: the rows continue, no augmentation
    resumed = MAKERS[kind](99)
    resumed.load_state_dict(augmented_state)
    draws = take(resumed, 5)
    assert [rows(d) for d in draws] == expected_rows and all(d.augment is None for d in draws)


# ------------------------------------------------------------------ seeds and fork


@kinds
def test_the_seed_alone_decides_the_rows(kind):
    torch.manual_seed(0)
    a = MAKERS[kind](7)
    torch.manual_seed(1)  # the global generator plays no part, at construction or after
    b = MAKERS[kind](7)
    assert [rows(d) for d in take(a, 9)] == [rows(d) for d in take(b, 9)]
    assert [rows(d) for d in take(MAKERS[kind](7), 9)] != [rows(d) for d in take(MAKERS[kind](8), 9)]


@kinds
@pytest.mark.parametrize("augment", [None, AUG])
def test_a_fork_draws_the_same_batches_without_advancing_the_original(kind, augment):
    sampler, reference = MAKERS[kind](5, augment), MAKERS[kind](5, augment)
    if kind == "mixture":
        for s in (sampler, reference):
            s.set_weights(torch.tensor([1.0, 0.0, 3.0]))
    take(sampler, 2)
    take(reference, 2)
    twin = sampler.fork()
    assert twin is not sampler
    ahead = take(twin, 9)  # past the end of epochs / domain cycles
    expected = take(reference, 9)
    assert all_same(ahead, expected)
    assert all_same(take(sampler, 9), expected)  # the original was not moved by its twin
    assert all_same(take(twin, 3), take(reference, 3))  # ... nor the twin by the original


# ------------------------------------------------------------------ Draw.same_as


def test_draw_same_as():
    rows_a, rows_b = torch.tensor([0, 2]), torch.tensor([1])
    counts = torch.tensor([2, 1])
    params = torch.tensor([[0, 1, 0], [2, 2, 1], [1, 0, 1]])
    base = Draw([(0, rows_a), (1, rows_b)], counts, params)
    assert base.same_as(Draw([(0, rows_a.clone()), (1, rows_b.clone())], counts.clone(), params.clone()))
    plain = Draw([(0, rows_a), (1, rows_b)], counts)
    assert plain.same_as(Draw([(0, rows_a.clone()), (1, rows_b.clone())], counts.clone()))
    different = [
        Draw([(0, torch.tensor([0, 2, 1]))], torch.tensor([3, 0]), params),  # fewer groups
        Draw([(0, rows_a), (1, rows_b)], torch.tensor([1, 2]), params),  # other counts
        Draw([(0, rows_a), (2, rows_b)], counts, params),  # other domain
        Draw([(0, torch.tensor([0, 3])), (1, rows_b)], counts, params),  # other rows
        Draw([(0, rows_a), (1, rows_b)], counts, params + 1),  # other augmentation
        plain,  # augmentation against none
    ]
    for other in different:
        assert not base.same_as(other) and not other.same_as(base)
    assert not plain.same_as(Draw([(0, rows_a), (1, torch.tensor([2]))], counts))


# ------------------------------------------------------------------ read_draws


class CountingSplit(Split):
    """A split that records the index of each read."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.reads: list[tuple[int, ...]] = []

    def batch(self, index):
        self.reads.append(tuple(index.shape))
        return super().batch(index)


def members(kind: str, count: int, augment=None):
    """The first draw of ``count`` members (seeds 1, 2, ...) of one population, and the splits."""
    samplers = [MAKERS[kind](seed, augment, **({"n": 12} if kind == "epoch" else {})) for seed in range(1, count + 1)]
    return samplers[0].splits, [s.next_draw() for s in samplers]


@kinds
@pytest.mark.parametrize("count", [1, 3])
def test_a_stacked_read_is_the_stack_of_single_reads(kind, count):
    splits, draws = members(kind, count)
    singles = [read_draws(splits, [d], None) for d in draws]
    stacked = read_draws(splits, draws, None, stacked=True)
    batch_size = len(draws[0].groups[0][1]) if kind == "epoch" else 6
    assert stacked.inputs.shape == (count, batch_size, C, H, W)
    assert torch.equal(stacked.inputs, torch.stack([s.inputs for s in singles]))
    assert set(stacked.targets) == {"y", "half"}
    for key in ("y", "half"):
        assert torch.equal(stacked.targets[key], torch.stack([s.targets[key] for s in singles]))
    domains_count = 1 if kind == "epoch" else 3
    assert stacked.counts.shape == (count, domains_count)
    assert torch.equal(stacked.counts, torch.stack([d.counts for d in draws]))
    for single, draw in zip(singles, draws):
        assert single.counts.shape == (domains_count,) and torch.equal(single.counts, draw.counts)
        ids = [int(i) for _, r in draw.groups for i in r]
        domain_of = [d for d, r in draw.groups for _ in r]
        assert single.targets["y"].tolist() == [100 * d + i for d, i in zip(domain_of, ids)]


def test_members_drawn_from_one_split_are_read_in_one_gather():
    split = CountingSplit(images(12).inputs, images(12).targets)
    draws = [EpochSampler(split, 4, seed).next_draw() for seed in (1, 2, 3)]
    batch = read_draws([split], draws, None, stacked=True)
    assert split.reads == [(3, 4)]
    assert batch.targets["y"].tolist() == [d.groups[0][1].tolist() for d in draws]


def test_a_stacked_read_of_single_domain_draws_reads_that_domain():
    splits = domains([4, 5])
    draws = [
        Draw([(1, torch.tensor([3, 0, 2]))], torch.tensor([0, 3])),
        Draw([(1, torch.tensor([1, 4, 4]))], torch.tensor([0, 3])),
    ]
    batch = read_draws(splits, draws, None, stacked=True)
    assert batch.targets["y"].tolist() == [[103, 100, 102], [101, 104, 104]]
    assert torch.equal(batch.inputs[1, 2], splits[1].inputs[4])
    assert batch.counts.tolist() == [[0, 3], [0, 3]]


@kinds
@pytest.mark.parametrize("count", [1, 3])
def test_a_stacked_read_augments_each_sample_as_its_draw_says(kind, count):
    splits, draws = members(kind, count, AUG)
    raw = read_draws(splits, draws, None, stacked=True).inputs
    out = read_draws(splits, draws, AUG, stacked=True).inputs
    assert out.shape == raw.shape and not torch.equal(out, raw)
    for p, draw in enumerate(draws):
        for i, (dy, dx, flipped) in enumerate(draw.augment.tolist()):
            assert torch.equal(out[p, i], crop_flip(raw[p, i], dy, dx, flipped, AUG.crop))


@kinds
def test_a_read_augments_each_sample_in_batch_order(kind):
    sampler = MAKERS[kind](5, AUG)
    draw = sampler.fork().next_draw()
    raw = read_draws(sampler.splits, [draw], None)
    out = read_draws(sampler.splits, [draw], AUG)
    assert not torch.equal(out.inputs, raw.inputs)
    assert torch.equal(out.targets["y"], raw.targets["y"])  # targets are not augmented
    for i, (dy, dx, flipped) in enumerate(draw.augment.tolist()):
        assert torch.equal(out.inputs[i], crop_flip(raw.inputs[i], dy, dx, flipped, AUG.crop))
    assert torch.equal(out.inputs, AUG.apply(raw.inputs, draw.augment))
    # next_batch is the read of next_draw with the sampler's augmentation
    batch = sampler.next_batch()
    assert torch.equal(batch.inputs, out.inputs) and torch.equal(batch.counts, draw.counts)


# ------------------------------------------------------------------ MixtureSampler


def test_mixture_weights_start_uniform_and_are_normalised_to_cpu_float64():
    sampler = mixture_sampler()
    assert sampler.weights.dtype == torch.float64
    assert torch.equal(sampler.weights, torch.full((3,), 1 / 3, dtype=torch.float64))
    assert torch.equal(mixture_sampler(sizes=(4, 4)).weights, torch.tensor([0.5, 0.5], dtype=torch.float64))

    raw = torch.tensor([2.0, 6.0, 0.0], requires_grad=True)  # float32, with a gradient
    sampler.set_weights(raw)
    assert sampler.weights.dtype == torch.float64 and sampler.weights.device.type == "cpu"
    assert not sampler.weights.requires_grad
    assert torch.equal(sampler.weights, torch.tensor([0.25, 0.75, 0.0], dtype=torch.float64))
    assert torch.equal(sampler.state_dict()["weights"], sampler.weights)

    sampler.set_weights(None)
    assert sampler.weights.dtype == torch.float64
    assert torch.allclose(sampler.weights, torch.full((3,), 1 / 3, dtype=torch.float64), rtol=0, atol=1e-15)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_mixture_weights_on_the_gpu_are_moved_to_the_cpu():
    sampler = mixture_sampler()
    sampler.set_weights(torch.tensor([1.0, 1.0, 2.0], device="cuda"))
    assert sampler.weights.device.type == "cpu" and sampler.weights.dtype == torch.float64
    sampler.next_draw()


def test_mixture_draws_group_only_the_drawn_domains_in_domain_order():
    sizes = (5, 7, 3)
    sampler = mixture_sampler(sizes=sizes, batch_size=6)
    sampler.set_weights(torch.tensor([1.0, 0.0, 2.0]))
    seen = set()
    for draw in take(sampler, 20):
        assert draw.counts.dtype == torch.long and draw.counts.shape == (3,)
        assert int(draw.counts.sum()) == 6 and draw.counts[1] == 0
        domains_drawn = [d for d, _ in draw.groups]
        assert domains_drawn == sorted(set(domains_drawn))  # each once, in domain order
        assert domains_drawn == [d for d in range(3) if draw.counts[d] > 0]
        for d, r in draw.groups:
            assert len(r) == draw.counts[d] and all(0 <= i < sizes[d] for i in r.tolist())
        seen.update(domains_drawn)
    assert seen == {0, 2}


# ------------------------------------------------------------------ EpochSampler


def test_epoch_counts_are_one_long_count_of_the_batch_and_the_last_batch_is_smaller():
    sampler = epoch_sampler(n=10, batch_size=4)
    for expected in (4, 4, 2, 4, 4, 2):
        draw = sampler.next_draw()
        assert [d for d, _ in draw.groups] == [0]  # one split: domain 0
        assert draw.counts.dtype == torch.long and draw.counts.tolist() == [expected]
        assert len(draw.groups[0][1]) == expected
    batch = epoch_sampler(n=10, batch_size=4).next_batch()
    assert batch.counts.dtype == torch.long and batch.counts.tolist() == [4]


def test_epoch_order_is_reshuffled_every_epoch():
    sampler = epoch_sampler(n=12, batch_size=5)
    epochs = []
    for _ in range(4):
        order = [i for _ in range(sampler.steps_per_epoch) for i in sampler.next_draw().groups[0][1].tolist()]
        assert sorted(order) == list(range(12))
        epochs.append(order)
    assert len({tuple(e) for e in epochs}) == 4


# ------------------------------------------------------------------ build_sampler


def benchmark(setting: str) -> Benchmark:
    def splits(first: int, n: int) -> dict[str, Split]:
        return {"train": images(n, first), "val": images(3, first + 50), "test": images(3, first + 60)}

    if setting == "mtl":
        tasks = [Task("y", "multiclass", 10), Task("half", "regression", 1)]
        return Benchmark("tiny", "mtl", tasks, {"all": splits(0, 10)})
    return Benchmark(
        "tiny-mdl", "mdl", [Task("y", "multiclass", 300)], {"a": splits(0, 5), "b": splits(100, 7), "c": splits(200, 3)}
    )


@pytest.mark.parametrize("augment", [None, AUG])
def test_build_sampler_mtl_is_an_epoch_sampler_over_the_train_split(augment):
    bench = benchmark("mtl")
    sampler = build_sampler(bench, 4, 5, augment)
    assert type(sampler) is EpochSampler
    assert len(sampler.splits) == 1 and sampler.splits[0] is bench.split("train") and sampler.batch_size == 4
    assert sampler.augmentation == augment
    assert all_same(take(sampler, 5), take(EpochSampler(bench.split("train"), 4, 5, augment), 5))
    assert type(build_sampler(bench, 4, 5, augment, stream=False)) is EpochSampler


@pytest.mark.parametrize("augment", [None, AUG])
def test_build_sampler_mdl_is_a_mixture_over_the_train_splits_in_domain_order(augment):
    bench = benchmark("mdl")
    sampler = build_sampler(bench, 6, 5, augment)
    assert type(sampler) is MixtureSampler
    trains = [bench.domains[d]["train"] for d in ("a", "b", "c")]
    assert len(sampler.splits) == 3 and all(s is t for s, t in zip(sampler.splits, trains))
    assert sampler.batch_size == 6 and sampler.augmentation == augment
    assert all_same(take(sampler, 5), take(MixtureSampler(trains, 6, 5, augment), 5))
    assert type(build_sampler(bench, 6, 5, augment, stream=False)) is MixtureSampler


@pytest.mark.parametrize("setting", ["mtl", "mdl"])
def test_build_sampler_wraps_storage_splits_with_workers_in_a_stream_of_the_same_draws(setting):
    def stored(n: int, first: int, workers: int) -> ImageSplit:
        pixels = (np.arange(n * C * H * W) % 251).astype(np.uint8).reshape(n, C, H, W)
        return ImageSplit(ArrayImages(pixels), {"y": torch.arange(first, first + n)}, workers=workers)

    def bench(workers: int) -> Benchmark:
        def splits(first: int, n: int) -> dict:
            return {s: stored(n, first, workers) for s in ("train", "val", "test")}

        if setting == "mtl":
            return Benchmark("stored", "mtl", [Task("y", "multiclass", 300)], {"all": splits(0, 10)})
        return Benchmark("stored", "mdl", [Task("y", "multiclass", 300)], {"a": splits(0, 6), "b": splits(100, 5)})

    bare_type = EpochSampler if setting == "mtl" else MixtureSampler
    streamed = build_sampler(bench(2), 4, 5, AUG)  # no batch is read: no worker starts
    assert isinstance(streamed, StreamingSampler)
    assert type(streamed.sampler) is bare_type and streamed.sampler.augmentation == AUG
    bare = build_sampler(bench(2), 4, 5, AUG, stream=False)
    assert type(bare) is bare_type
    assert all_same(take(streamed.sampler, 4), take(bare, 4))
    assert type(build_sampler(bench(0), 4, 5, AUG)) is bare_type  # no workers: nothing to stream
