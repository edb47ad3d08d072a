"""Data at the paper's scale: load time, memory and throughput of images streamed from storage.

Writes DomainNet-layout fixtures (``<domain>/<class>/<file>.jpg`` and ``<domain>_train.txt`` /
``<domain>_test.txt``, 70/30) with N images per domain, and measures, each in a fresh process:

* ``first_load``: ``load_benchmark("domainnet", storage="cache")`` with an empty cache: the JPEGs
  are decoded and written to the decoded cache (seconds, peak RSS, and the cache build's own
  account: seconds decoding, seconds writing, bytes written);
* ``cached_load``: the same with the cache in place;
* ``loader``: samples/s of the training stream (MDL mixture, batch 128) with ``--workers``
  loader workers, from the decoded cache and from the JPEGs (``storage: jpeg``), and from memory
  where the float32 images fit;
* ``train``: steps/s of training the default ResNet (``resnet``, width 1, depth 2, as
  configs/domainnet.yaml; batch 128 at 64 px, 32 at 224 px, ``--train-batch``) through the run
  core on streamed data (and on in-memory data where it fits), with augmentation, the process's
  peak RSS and its CPU seconds per step (steadier than the wall clock on a shared machine);
* ``population`` (largest N at 64 px): a stacked population of 4 members (width 0.25) on the same
  storage: steps/s and peak RSS (one loaded copy of the data for every member);
* ``gpu`` (``--only gpu --device cuda``): a ResNet-50 (``resnet_bottleneck``, depth 50) loop on
  batches streamed from a decoded cache against the same loop on device-resident data, with the
  same sampler and augmentation (the GPU target: a ratio >= 0.9). On a many-core GPU machine give
  it more workers: ``--only gpu --device cuda --workers 8 --bf16 --channels-last``.

The results go to ``--output`` (JSON), with ``extrapolation``: per resolution, the least-squares
slopes of the load times and peak RSS over the measured sizes and what they give for the full
DomainNet (586,575 images) and CelebA (202,599). ``--update`` merges a partial run into it.

Peak RSS is the process's high-water mark (``VmHWM``); the workers' own (which share pages with
the process they were forked from) and the proportional set size (``Pss``) of the process and its
workers are reported too.

The fixture images are few distinct JPEGs (``--distinct`` per domain, 200-480 px, photo-like
gradients and noise, ~35 KB) hard-linked under N names: decoding costs what it costs on real
files, reading them comes from the page cache.

    python benchmarks/data_scale.py                                  # the full sweep (long)
    python benchmarks/data_scale.py --sizes 1000 --resizes 64 --domains 2 --seconds 5   # a quick look
    python benchmarks/data_scale.py --only gpu --device cuda --workers 8   # the GPU loop
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
BATCH = 128


# ---------------------------------------------------------------- fixtures


def _picture(rng: np.random.Generator, height: int, width: int, label: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3)
    base = np.stack([127 + 100 * np.sin(x / (20 + 7 * c) + y / (31 + 5 * c) + phase[c] + label) for c in range(3)], -1)
    blocks = rng.normal(0, 25, (height // 8 + 1, width // 8 + 1, 3)).repeat(8, 0).repeat(8, 1)[:height, :width]
    return np.clip(base + blocks + rng.normal(0, 6, (height, width, 3)), 0, 255).astype(np.uint8)


def make_pool(folder: Path, domain: str, distinct: int, seed: int = 0) -> list[Path]:
    """``distinct`` JPEGs of one domain (made once)."""
    from PIL import Image

    folder = folder / domain
    done = folder / ".complete"
    paths = [folder / f"{i:06d}.jpg" for i in range(distinct)]
    if done.exists():
        return paths
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, DOMAINS.index(domain)])
    for i, path in enumerate(paths):
        height, width = (int(v) for v in rng.integers(200, 481, 2))
        Image.fromarray(_picture(rng, height, width, i)).save(path, quality=90)
    done.write_text("")
    return paths


def make_fixture(root: Path, pool: Path, domains: list[str], count: int, distinct: int) -> Path:
    """DomainNet layout under ``root`` with ``count`` images per domain (hard links into the pool)."""
    done = root / ".complete"
    if done.exists():
        return root
    shutil.rmtree(root, ignore_errors=True)
    for domain in domains:
        sources = make_pool(pool, domain, distinct)
        lines = {"train": [], "test": []}
        for i in range(count):
            label = i % 345
            rel = f"{domain}/class_{label:03d}/{domain}_{i:06d}.jpg"
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(sources[i % distinct], target)
            lines["test" if i % 10 >= 7 else "train"].append(f"{rel} {label}")
        for split, rows in lines.items():
            (root / f"{domain}_{split}.txt").write_text("\n".join(rows) + "\n")
    done.write_text("")
    return root


# ---------------------------------------------------------------- memory


def _status(pid: int | str, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _pss(pid: int | str) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def memory() -> dict:
    """This process's peak RSS, its live workers' peak RSS and the PSS of all of them (GiB)."""
    pid = os.getpid()
    workers = _children(pid)
    gib = 1 << 30
    return {
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib, 3),
        "live_workers": len(workers),
        "worker_peak_rss_gib": round(max([_status(w, "VmHWM") for w in workers], default=0) / gib, 3),
        "pss_with_workers_gib": round((_pss(pid) + sum(_pss(w) for w in workers)) / gib, 3),
    }


# ---------------------------------------------------------------- children (one measurement each)


def _benchmark(args, storage: str):
    from scalarize.data import load_benchmark

    return load_benchmark("domainnet", root=args.root, domains=args.domain_names, resize=args.resize, storage=storage)


def child_load(args) -> dict:
    from scalarize.data.storage import cache_folder  # noqa: F401  (import cost outside the timing)

    started = time.perf_counter()
    bench = _benchmark(args, args.storage)
    seconds = time.perf_counter() - started
    result = {"seconds": round(seconds, 3), "storage": bench.extras["storage"], **memory()}
    builds = [
        json.loads(p.read_text())["build"] for p in Path(os.environ["SCALARIZE_CACHE"]).glob("domainnet-*/meta.json")
    ]
    if builds and args.first:
        total = {k: sum(b[k] for b in builds) for k in ("decode_seconds", "write_seconds", "bytes")}
        total["write_mib_per_s"] = round(total["bytes"] / max(total["write_seconds"], 1e-9) / (1 << 20), 1)
        total["decode_images_per_s"] = round(
            sum(len(bench.split(s, d)) for d in bench.domains for s in ("train", "val", "test"))
            / total["decode_seconds"],
            1,
        )
        result["build"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in total.items()}
    result["images"] = sum(len(bench.split(s, d)) for d in bench.domains for s in ("train", "val", "test"))
    return result


def child_loader(args) -> dict:
    import torch

    from scalarize.data.sampling import build_sampler

    torch.set_num_threads(1)
    bench = _benchmark(args, args.storage).to("cpu", workers=args.workers)
    sampler = build_sampler(bench, BATCH, seed=1)
    for _ in range(3):
        sampler.next_batch()
    started, count = time.perf_counter(), 0
    while time.perf_counter() - started < args.seconds or count < 5:
        count += len(sampler.next_batch().inputs)
    seconds = time.perf_counter() - started
    return {
        "storage": bench.extras["storage"],
        "workers": args.workers,
        "samples_per_s": round(count / seconds, 1),
        **memory(),
    }


def _config(args, width: float = 1.0):
    from scalarize.train.config import build_config

    return build_config(
        {
            "name": "scale",
            "benchmark": {
                "name": "domainnet",
                "options": {
                    "root": args.root,
                    "domains": args.domain_names,
                    "resize": args.resize,
                    "storage": args.storage,
                },
            },
            "model": {"family": "resnet", "width": width, "depth": 2},
            "method": {"name": "scalarization", "weights": [1.0] * len(args.domain_names)},
            "batch_size": args.batch,
            "steps": 10**6,
            "device": args.device,
            "stl": False,
            "data": {"workers": args.workers, "augment": {"crop": 4, "flip": True}},
        }
    )


def _workers_cpu_seconds() -> float:
    """CPU seconds used so far by this process's live children (the loader workers)."""
    total = 0
    for pid in _children(os.getpid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def child_train(args) -> dict:
    from scalarize.train.run import RunSpec, build_trainer

    trainer = build_trainer(RunSpec("scale", _config(args)), None)
    for _ in range(2):
        trainer.train_step()
    started, steps = time.perf_counter(), 0
    cpu, workers_cpu = time.process_time(), _workers_cpu_seconds()
    while time.perf_counter() - started < args.seconds or steps < 3:
        trainer.train_step()
        steps += 1
    seconds = time.perf_counter() - started
    cpu, workers_cpu = time.process_time() - cpu, _workers_cpu_seconds() - workers_cpu
    # on a shared machine the wall clock depends on the other jobs; the CPU time per step much less
    return {
        "storage": trainer.benchmark.extras["storage"],
        "batch": args.batch,
        "steps_per_s": round(steps / seconds, 3),
        "samples_per_s": round(steps * args.batch / seconds, 1),
        "steps": steps,
        "cpu_seconds_per_step": round(cpu / steps, 3),
        "workers_cpu_seconds_per_step": round(workers_cpu / steps, 4),
        "load_average": load_average(),
        **memory(),
    }


def child_population(args) -> dict:
    from scalarize.population.stacked import StackedPopulation
    from scalarize.train.run import RunSpec
    from scalarize.train.setup import benchmark_from_config

    config = _config(args, width=args.width)
    benchmark = benchmark_from_config(config.benchmark)
    members = []
    for i in range(args.members):
        weights = np.random.default_rng(i).dirichlet([1.0] * len(args.domain_names)).tolist()
        method = config.method.model_copy(update={"weights": weights})
        members.append(RunSpec(f"m{i}", config.model_copy(update={"seed": i, "method": method})))
    population = StackedPopulation(members, benchmark, progress=False)
    for _ in range(2):
        population.train_step()
    started, steps = time.perf_counter(), 0
    while time.perf_counter() - started < args.seconds or steps < 3:
        population.train_step()
        steps += 1
    seconds = time.perf_counter() - started
    return {
        "members": args.members,
        "width": args.width,
        "batch": args.batch,
        "storage": benchmark.extras["storage"],
        "steps_per_s": round(steps / seconds, 3),
        "steps": steps,
        "member_samples_per_s": round(steps * args.batch * args.members / seconds, 1),
        **memory(),
    }


def child_gpu(args) -> dict:
    """A ResNet-50 loop on streamed batches against the same loop on device-resident data."""
    import torch

    from scalarize.data import Augmentation, Benchmark, ImageSplit, Split, Task
    from scalarize.data.sampling import build_sampler
    from scalarize.data.storage import ImageSource, decoded_images, to_float_tensor
    from scalarize.models.registry import build_model

    device = torch.device(args.device)
    size, count = args.resize, args.gpu_images
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (64, 3, size, size), dtype=np.uint8)

    def fill(start, stop, out):
        out[:] = tile[np.arange(start, stop) % len(tile)]

    store = decoded_images(
        "gpu-fixture", {"size": size, "count": count}, {"train": ImageSource(count, (3, size, size), fill)}
    )["train"]
    labels = {"category": torch.as_tensor(rng.integers(0, 345, count))}
    tasks = [Task("category", "multiclass", 345)]
    streamed = ImageSplit(store, labels, workers=args.workers)
    resident = Split(to_float_tensor(store), labels)
    augment = Augmentation(crop=4 * size // 32, flip=True)
    results = {}
    for name, split in (("resident", resident), ("streamed", streamed)):
        bench = Benchmark("gpu", "mtl", tasks, {"all": {"train": split, "val": split, "test": split}}).to(device)
        torch.manual_seed(0)
        model = build_model("resnet_bottleneck", (3, size, size), tasks, 1.0, 50).to(device)
        if args.channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        sampler = build_sampler(bench, args.gpu_batch, 1, augment)

        def step(sampler=sampler, model=model, optimizer=optimizer):
            batch = sampler.next_batch()
            inputs = batch.inputs.to(memory_format=torch.channels_last) if args.channels_last else batch.inputs
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16):
                _, outputs = model(inputs)
                loss = torch.nn.functional.cross_entropy(outputs["category"], batch.targets["category"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        for _ in range(5):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        started, steps = time.perf_counter(), 0
        while time.perf_counter() - started < args.seconds or steps < 5:
            step()
            steps += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        results[name] = {
            "steps_per_s": round(steps / seconds, 3),
            "images_per_s": round(steps * args.gpu_batch / seconds, 1),
        }
        del sampler, model, optimizer
    results["ratio"] = round(results["streamed"]["steps_per_s"] / results["resident"]["steps_per_s"], 3)
    results.update(
        {
            "device": str(torch.cuda.get_device_name() if device.type == "cuda" else "cpu"),
            "batch": args.gpu_batch,
            "resize": size,
            "images": count,
            "workers": args.workers,
            "bf16": args.bf16,
            "channels_last": args.channels_last,
            **memory(),
        }
    )
    return results


CHILDREN = {
    "load": child_load,
    "loader": child_loader,
    "train": child_train,
    "population": child_population,
    "gpu": child_gpu,
}


# ---------------------------------------------------------------- the sweep


def run_child(kind: str, args, cache: Path, **extra) -> dict:
    command = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--workers",
        str(args.workers),
        "--seconds",
        str(args.seconds),
        "--device",
        args.device,
    ]
    for key, value in extra.items():
        if value is True:
            command += [f"--{key.replace('_', '-')}"]
        elif value is not False:
            command += [f"--{key.replace('_', '-')}", str(value)]
    env = {
        **os.environ,
        "SCALARIZE_CACHE": str(cache),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    shown = json.dumps({k: v for k, v in extra.items() if k != "root"})
    print(f"  {kind:<10} {shown:<50} {json.dumps(result)}  [{time.perf_counter() - started:.0f} s]", flush=True)
    return result


def _median_trial(trials: list[dict]) -> dict:
    """The trial of median speed, with every trial's steps/s and CPU seconds per step."""
    ordered = sorted(trials, key=lambda t: t["steps_per_s"])
    return {
        **ordered[len(ordered) // 2],
        "trials_steps_per_s": [t["steps_per_s"] for t in trials],
        "trials_cpu_seconds_per_step": [t.get("cpu_seconds_per_step") for t in trials],
        "peak_rss_gib": max(t["peak_rss_gib"] for t in trials),
    }


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,16000,64000", help="images per domain")
    parser.add_argument("--resizes", default="64,224")
    parser.add_argument("--domains", default="2,1", help="domains per resize (paired with --resizes)")
    parser.add_argument("--distinct", type=int, default=1000, help="distinct JPEGs per domain")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0, help="timing window of each throughput measurement")
    parser.add_argument("--memory-sizes", default="1000", help="sizes also measured with storage: memory")
    parser.add_argument("--train-sizes", default="1000,64000", help="sizes whose training speed is measured")
    parser.add_argument("--train-batch", default="128,32", help="training batch per resize (paired with --resizes)")
    parser.add_argument("--repeats", type=int, default=1, help="training measurements per storage (alternated)")
    parser.add_argument("--members", type=int, default=4)
    parser.add_argument("--population-width", type=float, default=0.25)
    parser.add_argument("--workdir", default="/tmp/scalarize-data-scale")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "data_scale.json"))
    parser.add_argument("--only", default="", help="comma-separated: load,loader,train,population,gpu")
    parser.add_argument("--keep", action="store_true", help="keep the fixtures and caches")
    parser.add_argument(
        "--update",
        action="store_true",
        help="merge into the existing output: a run's measurements replace those of the same size",
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--gpu-images", type=int, default=8192)
    parser.add_argument("--gpu-resize", type=int, default=224)
    parser.add_argument("--gpu-batch", type=int, default=128)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--channels-last", action="store_true")
    # a child's arguments
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("--root")
    parser.add_argument("--resize", type=int, default=64)
    parser.add_argument("--domain-count", type=int, default=2)
    parser.add_argument("--storage", default="cache")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--width", type=float, default=1.0)
    args = parser.parse_args()
    if args.child:
        args.domain_names = list(DOMAINS[: args.domain_count])
        print(json.dumps(CHILDREN[args.child](args)))
        return

    only = set(filter(None, args.only.split(","))) or {"load", "loader", "train", "population"}
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {
        "machine": {"cpus": os.cpu_count(), "load_average_start": load_average()},
        "settings": {
            k: getattr(args, k) for k in ("sizes", "resizes", "domains", "distinct", "workers", "seconds", "device")
        },
        "runs": [],
        "update": args.update,
    }
    if "gpu" in only:
        cache = work / "cache-gpu"
        report["gpu"] = run_child(
            "gpu",
            args,
            cache,
            resize=args.gpu_resize,
            gpu_images=args.gpu_images,
            gpu_batch=args.gpu_batch,
            bf16=args.bf16,
            channels_last=args.channels_last,
        )
        only.discard("gpu")
    sizes = [int(s) for s in args.sizes.split(",") if s] if only else []
    memory_sizes = {int(s) for s in args.memory_sizes.split(",") if s}
    train_sizes = {int(s) for s in args.train_sizes.split(",") if s}
    resizes = [int(r) for r in args.resizes.split(",")]
    batches = dict(zip(resizes, [int(b) for b in args.train_batch.split(",")]))
    for resize, domains in zip(resizes, [int(d) for d in args.domains.split(",")]):
        for count in sizes:
            root = make_fixture(
                work / f"fixture-{domains}x{count}", work / "pool", list(DOMAINS[:domains]), count, args.distinct
            )
            cache = work / f"cache-{resize}-{domains}x{count}"
            common = {"root": str(root), "resize": resize, "domain_count": domains}
            entry: dict = {
                "resize": resize,
                "domains": domains,
                "images_per_domain": count,
                "load_average": load_average(),
            }
            print(f"{resize} px, {domains} domain(s) x {count} images", flush=True)
            if "load" in only:
                shutil.rmtree(cache, ignore_errors=True)
                entry["first_load"] = run_child("load", args, cache, first=1, **common)
                entry["cached_load"] = run_child("load", args, cache, **common)
                entry["auto_load"] = run_child("load", args, cache, storage="auto", **common)
            if "loader" in only:
                entry["loader"] = {s: run_child("loader", args, cache, storage=s, **common) for s in ("cache", "jpeg")}
                if count in memory_sizes:
                    entry["loader"]["memory"] = run_child("loader", args, cache, storage="memory", **common)
            if "train" in only and count in train_sizes:
                batch = batches.get(resize, BATCH)
                storages = ["cache", "memory"] if count in memory_sizes else ["cache"]
                trials = {s: [] for s in storages}
                for _ in range(args.repeats):  # alternated: a busy machine slows both alike
                    for storage in storages:
                        trials[storage].append(run_child("train", args, cache, storage=storage, batch=batch, **common))
                entry["train"] = {s: _median_trial(t) for s, t in trials.items()}
            if "population" in only and count == max(sizes) and resize == 64:
                entry["population"] = run_child(
                    "population",
                    args,
                    cache,
                    storage="cache",
                    width=args.population_width,
                    members=args.members,
                    **common,
                )
            report["runs"].append(entry)
            _save(report, args.output)
            if not args.keep:
                shutil.rmtree(cache, ignore_errors=True)
    report["machine"]["load_average_end"] = load_average()
    _save(report, args.output)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


#: Images in the full datasets (train + test lists; CelebA: all three official splits).
FULL = {"domainnet": 586_575, "celeba": 202_599}


def _fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of y on x."""
    x, y = np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float)
    if len(x) < 2:
        return float(y.mean()), 0.0
    slope, intercept = np.polyfit(x, y, 1)
    return float(intercept), float(slope)


def extrapolate(runs: list[dict]) -> dict:
    """Per resize: the measured slopes (per image) and what they give for the full datasets."""
    out = {}
    for resize in sorted({r["resize"] for r in runs}):
        rows = [r for r in runs if r["resize"] == resize and "first_load" in r]
        if not rows:
            continue
        images = lambda r: r["first_load"]["images"]  # noqa: E731
        first = _fit([(images(r), r["first_load"]["seconds"]) for r in rows])
        cached = _fit([(images(r), r["cached_load"]["seconds"]) for r in rows])
        rss = _fit([(images(r), r["first_load"]["peak_rss_gib"]) for r in rows])
        cached_rss = _fit([(images(r), r["cached_load"]["peak_rss_gib"]) for r in rows])
        pixels = 3 * resize * resize
        entry = {
            "measured_images": [images(r) for r in rows],
            "first_load_seconds_per_1k_images": round(1000 * first[1], 3),
            "cached_load_seconds_per_1k_images": round(1000 * cached[1], 4),
            "first_load_peak_rss_gib_per_100k_images": round(1e5 * rss[1], 4),
            "cached_load_peak_rss_gib_per_100k_images": round(1e5 * cached_rss[1], 4),
        }
        for name, count in FULL.items():
            entry[name] = {
                "images": count,
                "first_load_hours": round((first[0] + first[1] * count) / 3600, 2),
                "cached_load_seconds": round(cached[0] + cached[1] * count, 1),
                "load_peak_rss_gib": round(max(rss[0] + rss[1] * count, cached_rss[0] + cached_rss[1] * count), 3),
                "cache_gib": round(count * pixels / (1 << 30), 1),
                "float32_in_memory_gib": round(4 * count * pixels / (1 << 30), 1),
            }
        out[str(resize)] = entry
    return out


def _save(report: dict, output: str) -> None:
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    if report.get("update") and path.exists():
        merged = json.loads(path.read_text())
        key = lambda e: (e["resize"], e["domains"], e["images_per_domain"])  # noqa: E731
        runs = {key(e): e for e in merged["runs"]}
        for entry in report["runs"]:
            runs.setdefault(key(entry), {}).update(entry)
        merged["runs"] = sorted(runs.values(), key=key)
        for name in ("gpu",):
            if name in report:
                merged[name] = report[name]
        update = {"machine": report["machine"], "settings": report["settings"]}
        if update not in merged.setdefault("updates", []):
            merged["updates"] = [u for u in merged["updates"] if u["settings"] != update["settings"]] + [update]
        report = merged
    report["extrapolation"] = extrapolate(report["runs"])
    path.write_text(json.dumps({k: v for k, v in report.items() if k != "update"}, indent=1) + "\n")


if __name__ == "__main__":
    main()
