"""Data at scale: images held as uint8 in storage, streamed by loader workers, with exact resume.

The rule under test everywhere: whatever the storage (float32 in memory, the decoded cache, the
JPEG files), the number of loader workers and the prefetching, the same pixels reach the model
and a run gives the same numbers, and a checkpoint holds the state of the batches consumed.
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scalarize.data import (
    Augmentation,
    Benchmark,
    BenchmarkError,
    DatasetSplit,
    ImageSplit,
    Split,
    Task,
    load_benchmark,
    population_stream,
)
from scalarize.data.cache import cache_dir
from scalarize.data.loaders import DataFileError
from scalarize.data.sampling import EpochSampler, MixtureSampler, build_sampler
from scalarize.data.storage import CachedImages, choose_storage, memory_budget
from scalarize.data.streaming import StreamingSampler
from scalarize.data.workers import ordered_batches
from scalarize.train.config import ConfigError, TrainConfig, build_config

CLASSES = ("airplane", "bus", "zebra")


def _domainnet(root: Path, domains=("clipart", "sketch"), train=40, test=12) -> Path:
    """DomainNet layout: textured JPEGs of varying sizes; the class shifts the red level."""
    rng = np.random.default_rng(0)
    for d, domain in enumerate(domains):
        for split, count in (("train", train + 3 * d), ("test", test)):
            lines = []
            for i in range(count):
                k = i % 3
                rel = f"{domain}/{CLASSES[k]}/{domain}_{split}_{i:04d}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                image = rng.integers(0, 200, (24 + i % 5, 20 + d, 3), dtype=np.uint8)
                image[..., 0] = np.clip(image[..., 0].astype(int) // 4 + 60 * k, 0, 255)
                Image.fromarray(image).save(root / rel, quality=92)
                lines.append(f"{rel} {k}")
            (root / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def domainnet_root(tmp_path_factory):
    return _domainnet(tmp_path_factory.mktemp("domainnet"))


def _load(root, storage, **options):
    options = {"domains": ["clipart", "sketch"], "resize": 12, **options}
    return load_benchmark("domainnet", root=str(root), storage=storage, **options)


def _same_batch(a, b) -> bool:
    inputs_a, targets_a = (a.inputs, a.targets) if hasattr(a, "inputs") else a
    inputs_b, targets_b = (b.inputs, b.targets) if hasattr(b, "inputs") else b
    return torch.equal(inputs_a, inputs_b) and all(torch.equal(targets_a[k], targets_b[k]) for k in targets_a)


# ---------------------------------------------------------------- storage


def test_every_storage_gives_the_same_pixels(domainnet_root):
    benches = {s: _load(domainnet_root, s) for s in ("memory", "cache", "jpeg")}
    assert {s: b.extras["storage"] for s, b in benches.items()} == {
        "memory": "memory",
        "cache": "cache",
        "jpeg": "jpeg",
    }
    assert isinstance(benches["memory"].split("train", "sketch"), Split)
    assert isinstance(benches["cache"].split("train", "sketch"), ImageSplit)
    assert all(b.sizes() == benches["memory"].sizes() for b in benches.values())
    assert all(b.input_shape == (3, 12, 12) for b in benches.values())
    index = torch.tensor([[5, 0, 17], [2, 2, 30]])  # [P, B]: two members' rows
    for domain in ("clipart", "sketch"):
        for split in ("train", "val", "test"):
            reference = benches["memory"].split(split, domain)
            for storage in ("cache", "jpeg"):
                streamed = benches[storage].split(split, domain)
                assert streamed.batch(torch.arange(len(streamed)))[0].dtype == torch.float32
                assert _same_batch(
                    streamed.batch(torch.arange(len(streamed))), reference.batch(torch.arange(len(reference)))
                )
                assert all(_same_batch(x, y) for x, y in zip(streamed.batches(5), reference.batches(5), strict=True))
    for storage in ("cache", "jpeg"):
        stacked, reference = (
            benches[storage].split("train", "sketch").batch(index),
            benches["memory"].split("train", "sketch").batch(index),
        )
        assert stacked[0].shape == (2, 3, 3, 12, 12) and _same_batch(stacked, reference)


def test_auto_holds_what_fits_in_memory_and_streams_the_rest(domainnet_root, monkeypatch):
    assert _load(domainnet_root, "auto").extras["storage"] == "memory"
    monkeypatch.setenv("SCALARIZE_MEMORY_BUDGET", "0")
    assert _load(domainnet_root, "auto").extras["storage"] == "cache"
    monkeypatch.setenv("SCALARIZE_MEMORY_BUDGET", "3.5KiB")
    assert memory_budget() == 3584
    # 1 image of 3x16x16 float32 is 3 KiB: fits; 2 do not
    assert choose_storage("auto", 1, (3, 16, 16)) == "memory" and choose_storage("auto", 2, (3, 16, 16)) == "cache"
    assert choose_storage("jpeg", 10**9, (3, 16, 16)) == "jpeg"
    monkeypatch.setenv("SCALARIZE_MEMORY_BUDGET", "a lot")
    with pytest.raises(ValueError, match=r"SCALARIZE_MEMORY_BUDGET: expected bytes, e.g. 1073741824, 512MiB or 2GiB"):
        memory_budget()
    monkeypatch.delenv("SCALARIZE_MEMORY_BUDGET")
    with pytest.raises(BenchmarkError, match=r"storage: expected one of auto, memory, cache, jpeg; got 'disk'"):
        _load(domainnet_root, "disk")


def test_the_decoded_cache_is_a_plain_npy_written_once_and_rebuilt_when_damaged(tmp_path, monkeypatch):
    root = _domainnet(tmp_path / "data", domains=("clipart",), train=20, test=5)
    monkeypatch.setenv("SCALARIZE_CACHE", str(tmp_path / "cache"))
    first = _load(root, "cache", domains=["clipart"])
    entries = list(cache_dir().glob("domainnet-clipart-*/meta.json"))
    assert len(entries) == 1
    folder = entries[0].parent
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "test.npy", "train.npy", "val.npy"]
    train = np.load(folder / "train.npy", mmap_mode="r")  # any numpy reads it
    assert train.dtype == np.uint8 and train.shape == (18, 3, 12, 12)
    split = first.split("train")
    expected = split.batch(torch.arange(18))[0]
    assert torch.equal(torch.from_numpy(np.array(train)).float().div(255), expected)
    stamp = (folder / "train.npy").stat().st_mtime_ns
    _load(root, "cache", domains=["clipart"])
    assert (folder / "train.npy").stat().st_mtime_ns == stamp  # read, not written again

    # truncated under a running split: one line naming the file and what to do
    with open(folder / "train.npy", "r+b") as file:
        file.truncate(file.seek(0, 2) - 100)
    with pytest.raises(
        DataFileError, match=r"train.npy: truncated \(the decoded cache ends before row 17\); delete .* to decode again"
    ):
        split.batch(torch.tensor([3, 17]))
    # the next load notices and decodes again
    again = _load(root, "cache", domains=["clipart"])
    assert (folder / "train.npy").stat().st_mtime_ns != stamp
    assert torch.equal(again.split("train").batch(torch.arange(18))[0], expected)
    assert not list(cache_dir().glob("*.tmp"))
    with pytest.raises(DataFileError, match=r"nowhere.npy: missing \(the decoded cache\)"):
        CachedImages.open(tmp_path / "nowhere.npy")


def test_a_truncated_jpeg_met_by_a_loader_worker_is_one_line_naming_it(tmp_path, monkeypatch):
    from scalarize.data import workers

    root = _domainnet(tmp_path / "data", domains=("clipart",), train=30, test=5)
    bench = _load(root, "jpeg", domains=["clipart"]).to("cpu", workers=2)
    train = bench.split("train")
    broken = Path(train.images.paths[train.rows[5]])
    broken.write_bytes(broken.read_bytes()[:60])
    sampler = build_sampler(bench, 8, seed=0)
    assert isinstance(sampler, StreamingSampler)
    with pytest.raises(DataFileError) as error:
        for _ in range(sampler.steps_per_epoch):
            sampler.next_batch()
    message = str(error.value)
    assert "\n" not in message and f"{broken}: truncated or not an image" in message
    assert "replace the file, or remove its line from the index files" in message
    assert isinstance(error.value, BenchmarkError)  # the command-line tool prints it as one line
    monkeypatch.setattr(workers, "WORKER_START_SECONDS", 0.0)  # evaluation: rows 1.. read by the workers
    with pytest.raises(DataFileError, match=broken.name):
        list(ordered_batches(train, 1))
    with pytest.raises(BenchmarkError, match=broken.name):  # a cache cannot be built from it either
        _load(root, "cache", domains=["clipart"])


# ---------------------------------------------------------------- augmentation


def test_augmentation_crops_after_padding_and_flips_as_drawn():
    images = torch.arange(2 * 1 * 4 * 5, dtype=torch.float32).reshape(2, 1, 4, 5)
    augmentation = Augmentation(crop=2, flip=True)
    params = torch.tensor([[2, 2, 0], [0, 3, 1]])  # (dy, dx, flipped): the first is the identity
    out = augmentation.apply(images, params)
    assert torch.equal(out[0], images[0])
    padded = torch.nn.functional.pad(images[1], (2, 2, 2, 2))
    assert torch.equal(out[1], padded[:, 0:4, 3:8].flip(-1))  # shifted down 2, left 1, mirrored
    assert torch.equal(out[1, 0, :2], torch.zeros(2, 5))  # the padding came in from the top
    flip_only = Augmentation(flip=True)
    assert torch.equal(flip_only.apply(images, params), torch.stack([images[0], images[1].flip(-1)]))
    # [P, B, ...] batches take one draw per sample, in order
    stacked = augmentation.apply(images[None].expand(3, -1, -1, -1, -1), params.repeat(3, 1))
    assert torch.equal(stacked[2], out)
    generator = torch.Generator().manual_seed(0)
    draws = augmentation.draw(1000, generator)
    assert draws[:, :2].min() == 0 and draws[:, :2].max() == 4 and set(draws[:, 2].tolist()) == {0, 1}
    assert torch.equal(
        augmentation.draw(5, torch.Generator().manual_seed(1)), augmentation.draw(5, torch.Generator().manual_seed(1))
    )
    with pytest.raises(ValueError, match=r"augment.crop: expected an integer >= 0"):
        Augmentation(crop=-1)


def test_augmentation_draws_are_the_samplers_state_and_leave_the_sample_order_alone(domainnet_root):
    bench = _load(domainnet_root, "memory")
    plain = MixtureSampler([s["train"] for s in bench.domains.values()], 8, seed=3)
    augmented = MixtureSampler(
        [s["train"] for s in bench.domains.values()], 8, seed=3, augment=Augmentation(crop=2, flip=True)
    )
    for _ in range(5):
        a, b = plain.next_draw(), augmented.next_draw()
        assert all(torch.equal(x, y) for (_, x), (_, y) in zip(a.groups, b.groups)) and b.augment.shape == (8, 3)
    state = augmented.state_dict()
    assert "augment_generator" in state and "augment_generator" not in plain.state_dict()
    expected = [augmented.next_batch() for _ in range(4)]
    augmented.load_state_dict(state)
    assert all(_same_batch(augmented.next_batch(), e) for e in expected)


# ---------------------------------------------------------------- streaming and exact state


def test_streamed_batches_are_the_in_process_ones_and_the_state_is_that_of_the_batches_consumed(domainnet_root):
    augment = Augmentation(crop=2, flip=True)
    reference_bench = _load(domainnet_root, "memory")
    for storage in ("cache", "jpeg"):
        bench = _load(domainnet_root, storage).to("cpu", workers=2)
        streamed, plain = build_sampler(bench, 8, 5, augment), build_sampler(reference_bench, 8, 5, augment)
        assert isinstance(streamed, StreamingSampler) and isinstance(plain, MixtureSampler)
        states = []
        for step in range(24):
            if step == 9:  # new sampling ratios mid-run: what was read ahead is dropped
                for sampler in (streamed, plain):
                    sampler.set_weights(torch.tensor([4.0, 1.0]))
            assert _same_batch(streamed.next_batch(), plain.next_batch())
            states.append((streamed.state_dict(), plain.state_dict()))
            # the workers have read ahead, but the state is that of the batches consumed
            assert streamed.state_dict()["positions"] == plain.state_dict()["positions"]
            assert torch.equal(streamed.state_dict()["generator"], plain.state_dict()["generator"])
        assert streamed.stream.restarts == 1
        # resume from a state saved mid-stream: the same batches as the run that went on
        resumed = build_sampler(bench, 8, 99, augment)
        resumed.load_state_dict(states[13][0])
        plain.load_state_dict(states[13][1])
        assert all(_same_batch(resumed.next_batch(), plain.next_batch()) for _ in range(12))
        # a state loaded into a running stream is noticed too
        streamed.load_state_dict(states[2][0])
        plain.load_state_dict(states[2][1])
        assert all(_same_batch(streamed.next_batch(), plain.next_batch()) for _ in range(5))


class Squares(torch.utils.data.Dataset):
    """A user's own Dataset: item i is a 2x3x3 input and its two targets."""

    def __len__(self):
        return 37

    def __getitem__(self, i):
        return torch.full((2, 3, 3), float(i)).add_(torch.arange(3.0)), {"parity": i % 2, "size": float(i) / 37}


def test_a_users_dataset_streams_through_the_workers():
    tasks = [Task("parity", "multiclass", 2), Task("size", "regression", 1)]
    bench = Benchmark.from_datasets("squares", tasks, {"train": Squares(), "val": Squares(), "test": Squares()})
    streamed = build_sampler(bench.to("cpu", workers=2), 8, 1, Augmentation(flip=True))
    plain = build_sampler(bench.to("cpu", workers=0), 8, 1, Augmentation(flip=True))
    assert isinstance(streamed, StreamingSampler) and isinstance(plain, EpochSampler)
    for _ in range(12):  # more than an epoch
        assert _same_batch(streamed.next_batch(), plain.next_batch())
    split = bench.split("test")
    assert isinstance(split, DatasetSplit) and split.workers >= 1
    batches = list(split.batches(5))
    assert len(batches) == 8 and torch.equal(torch.cat([b[0] for b in batches])[:, 0, 0, 0], torch.arange(37.0))


@pytest.mark.parametrize("setting", ["mdl", "mtl"])
def test_a_population_reads_every_members_batch_from_one_storage(domainnet_root, setting):
    augment = Augmentation(crop=1, flip=True)
    memory, cache = _load(domainnet_root, "memory"), _load(domainnet_root, "cache").to("cpu", workers=2)
    if setting == "mtl":  # one domain's splits as an MTL benchmark
        memory = Benchmark("one", "mtl", memory.tasks, {"all": memory.domains["sketch"]})
        cache = Benchmark("one", "mtl", cache.tasks, {"all": cache.domains["sketch"]})
    members = [build_sampler(cache, 8, seed, augment, stream=False) for seed in (1, 2, 3)]
    alone = [build_sampler(memory, 8, seed, augment) for seed in (1, 2, 3)]
    stream = population_stream(members)
    assert stream.workers == 2 and population_stream([build_sampler(memory, 8, 1, stream=False)]) is None
    for step in range(10):
        batch = stream.next_batch()
        size = 7 if setting == "mtl" and step % 5 == 4 else 8  # MTL: an epoch of 39 samples ends with 7
        assert batch.inputs.shape == (3, size, 3, 12, 12) and batch.counts.shape == (3, 1 if setting == "mtl" else 2)
        for p, sampler in enumerate(alone):
            expected = sampler.next_batch()
            assert torch.equal(batch.inputs[p], expected.inputs) and torch.equal(batch.counts[p], expected.counts)
            assert torch.equal(batch.targets["category"][p], expected.targets["category"])
    assert not torch.equal(batch.inputs[0], batch.inputs[1])  # each member its own batch and augmentation


# ---------------------------------------------------------------- the run core on streamed data


def _train_config(root, storage, workers, **extra):
    return build_config(
        {
            "name": "s",
            "benchmark": {
                "name": "domainnet",
                "options": {"root": str(root), "domains": ["clipart", "sketch"], "resize": 12, "storage": storage},
            },
            "model": {"family": "resnet", "width": 0.25, "depth": 1},
            "method": {"name": "scalarization", "weights": [1.0, 2.0]},
            "epochs": 2,
            "eval_every": 3,
            "batch_size": 16,
            "stl": False,
            "device": "cpu",
            "optimizer": {"lr": 0.01},
            "data": {"workers": workers, "augment": {"crop": 2, "flip": True}},
            **extra,
        }
    )


def test_training_gives_the_same_numbers_whatever_the_storage_and_workers(domainnet_root, one_thread):
    from scalarize.population.stacked import StackedPopulation
    from scalarize.train.run import RunSpec, build_trainer
    from scalarize.train.setup import benchmark_from_config

    results = {}
    for storage, workers in (("memory", 0), ("cache", 2), ("jpeg", 1)):
        trainer = build_trainer(RunSpec("s", _train_config(domainnet_root, storage, workers)), None)
        assert trainer.benchmark.extras["storage"] == storage
        results[storage] = trainer.fit()
    assert results["memory"].history == results["cache"].history == results["jpeg"].history
    assert results["memory"].test == results["cache"].test == results["jpeg"].test
    plain = build_trainer(RunSpec("s", _train_config(domainnet_root, "memory", 0, data={"workers": 0})), None).fit()
    assert plain.history != results["memory"].history  # augmentation changes the numbers (the test can fail)

    def members(storage, workers):
        config = _train_config(domainnet_root, storage, workers, epochs=1)
        return [
            RunSpec(
                f"m{i}",
                config.model_copy(update={"seed": i, "method": config.method.model_copy(update={"weights": w})}),
            )
            for i, w in enumerate(([1.0, 1.0], [3.0, 1.0]))
        ]

    stacked = {}
    for storage, workers in (("memory", 0), ("cache", 2)):
        specs = members(storage, workers)
        population = StackedPopulation(specs, benchmark_from_config(specs[0].config.benchmark), progress=False)
        assert (population.batch_stream.workers, storage) in ((0, "memory"), (2, "cache"))
        stacked[storage] = population.fit()
    assert [r.history for r in stacked["memory"]] == [r.history for r in stacked["cache"]]


def test_the_data_section_is_validated_and_workers_do_not_change_the_fingerprint(domainnet_root):
    base = _train_config(domainnet_root, "cache", 2)
    assert base.fingerprint() == _train_config(domainnet_root, "cache", 0).fingerprint()
    assert (
        base.fingerprint() != _train_config(domainnet_root, "cache", 2, data={"augment": {"flip": True}}).fingerprint()
    )
    # runs stored before the data section keep their fingerprint (values from before it existed)
    assert TrainConfig().fingerprint() == TrainConfig(data={"workers": 3}).fingerprint() == "b67945b1a09b46a3"
    assert TrainConfig(benchmark={"name": "digits"}, epochs=3).fingerprint() == "679e0e36b5665969"
    with pytest.raises(ConfigError, match=r"data.augment.shift: unknown key; allowed: crop, flip"):
        build_config({"data": {"augment": {"shift": 2}}})
    with pytest.raises(ConfigError, match=r"data.workers: Input should be greater than or equal to 0"):
        build_config({"data": {"workers": -1}})


# ---------------------------------------------------------------- kill -9 and resume


def _finals(directory):
    with sqlite3.connect(directory / "scalarize.db") as db:
        return sorted(db.execute("SELECT run, split, name, value FROM final").fetchall()), sorted(
            db.execute("SELECT run, evaluation, step, split, name, value FROM metrics").fetchall()
        )


def _kill_after(command, database, evaluations, env):
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    try:
        while time.time() < deadline and process.poll() is None:
            time.sleep(0.05)
            if not database.exists():
                continue
            try:
                with sqlite3.connect(database) as db:
                    if db.execute("SELECT COUNT(DISTINCT evaluation) FROM metrics").fetchone()[0] >= evaluations:
                        break
            except sqlite3.OperationalError:  # tables not created yet
                continue
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "sweep"])
def test_kill_9_mid_epoch_then_resume_matches_an_uninterrupted_streamed_run(tmp_path, command):
    """A run (the trainer) or a sweep (a stacked population) on images streamed from the decoded
    cache by two workers, with augmentation, killed after an evaluation in the middle of an epoch
    (eval_every 4 steps, 6 steps per epoch) and run again: the same numbers as a run never killed."""
    root = _domainnet(tmp_path / "data", train=40, test=10)
    config = tmp_path / "run.yaml"
    config.write_text(
        "name: k\n"
        f"benchmark: {{name: domainnet, options: {{root: {root}, domains: [clipart, sketch], resize: 12, storage: cache}}}}\n"
        "model: {family: resnet, width: 0.25, depth: 1}\n"
        "method: {name: scalarization, weights: [1, 2]}\n"
        "data: {workers: 2, augment: {crop: 2, flip: true}}\n"
        "epochs: 3\neval_every: 4\nbatch_size: 14\nstl: false\ndevice: cpu\n"
        + ("sweep: {step: 0.5, engine: vectorized, chunk_size: 4}\n" if command == "sweep" else "")
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "scalarize.cli.main", command, str(config), "-q"]
    reference = tmp_path / "reference"
    subprocess.run([*base, f"output={reference}"], check=True, capture_output=True, env=env)
    for attempt in range(3):  # on a loaded machine the small run can finish before the kill lands
        killed = tmp_path / f"killed{attempt}"
        _kill_after([*base, f"output={killed}"], killed / "scalarize.db", 2, env)
        with sqlite3.connect(killed / "scalarize.db") as db:
            statuses = [row[0] for row in db.execute("SELECT status FROM runs")]
            steps = db.execute("SELECT MAX(step) FROM metrics").fetchone()[0]
        if "running" in statuses:
            break
    assert "running" in statuses and steps % 6 != 0  # killed in the middle of an epoch
    subprocess.run([*base, f"output={killed}"], check=True, capture_output=True, env=env)
    assert _finals(killed) == _finals(reference)
