"""The population engine against P sequential runs (Sweeps issue).

For each model family (the MLP and the small ResNet of ``configs/multimnist*.yaml``) and each
population size P, on ``multimnist``:

* ``loop``: P ordinary :class:`scalarize.train.Trainer` runs one after another (what a sweep
  without the population engine does), ``steps`` training steps each;
* ``vectorized``: one :class:`scalarize.population.StackedPopulation` of the P members,
  ``steps`` steps (the ResNet's batch-norm statistics are stacked buffers);
* ``engine``: what ``choose_engine(members, benchmark, "auto")`` picks for this group (its
  choice and reason are printed). Where it picks the loop (P = 1, or stacking measured
  slower) the engine *is* the loop, so a second, independent set of P trainers is timed against
  the reference loop: that ratio is the fallback's, ≈ 1.0 up to noise.

Every variant is timed side by side in one process, in ``rounds`` short rounds: in each round
every variant trains ``ceil(member_steps / P)`` steps of each member (so a round costs about the
same for every P), the order of the variants flipping from round to round. Samples/s come from
the median round time (P × steps × batch size / s); a ratio is the median over rounds of the
*paired* ratio (this round's loop time over this round's other time), so that load from other
processes, which changes from minute to minute on a shared machine, cancels out; the ratio of
the best rounds is given too (the least disturbed timings). Training steps
only, after a warm-up round: evaluation is the same per-member work in both engines. The load
average before and after is recorded.

Targets (2-core CPU): vectorized ≥ 1.3× the loop at P = 16 for the MLP; the engine's choice never
below 0.95× the loop anywhere.

    python benchmarks/population_speed.py [--member-steps 256] [--resnet-member-steps 16]
        [--rounds 10] [--sizes 1 4 16] [--families mlp resnet] [--device cpu]
        [--output benchmarks/results/population_speed.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation, choose_engine
from scalarize.train import TrainConfig, Trainer

FAMILIES = {
    # configs/multimnist-sweep.yaml and configs/multimnist-resnet.yaml
    "mlp": {"family": "mlp", "width": 1.0, "depth": 2},
    "resnet": {"family": "resnet", "width": 1.0, "depth": 1},
}
LR = {"mlp": 1e-3, "resnet": 2e-3}


def make_members(family: str, size: int, batch_size: int, device: str) -> list[Member]:
    base = TrainConfig(
        benchmark={"name": "multimnist"},
        model=FAMILIES[family],
        batch_size=batch_size,
        epochs=10,
        optimizer={"name": "adam", "lr": LR[family]},
        schedule={"name": "cosine"},
        device=device,
        stl=False,
    )
    members = []
    for i in range(size):
        first = i / (size - 1) if size > 1 else 0.5
        method = base.method.model_copy(update={"weights": [first, 1.0 - first]})
        members.append(Member(f"{family}-{i:03d}", base.model_copy(update={"method": method, "seed": i})))
    return members


def make_trainers(members: list[Member], bench) -> list[Trainer]:
    trainers = []
    for member in members:
        config = member.config
        torch.manual_seed(config.seed)
        model = build_model(config.model.family, bench.input_shape, bench.tasks, config.model.width, config.model.depth)
        trainers.append(Trainer(config, bench, model, Scalarization(member.weights), progress=False))
    return trainers


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_loop(trainers: list[Trainer], steps: int, device: str) -> float:
    """Seconds for ``steps`` steps of each trainer, one trainer after the other."""
    _sync(device)
    started = time.perf_counter()
    for trainer in trainers:
        for _ in range(steps):
            trainer.train_step()
    _sync(device)
    return time.perf_counter() - started


def time_stacked(population: StackedPopulation, steps: int, device: str) -> float:
    _sync(device)
    started = time.perf_counter()
    for _ in range(steps):
        population.train_step()
    _sync(device)
    return time.perf_counter() - started


def measure_case(family: str, size: int, bench, args) -> dict:
    members = make_members(family, size, args.batch_size, args.device)
    chosen, reason = choose_engine(members, bench, "auto")
    print(f"{family} P={size}: auto engine = {chosen} ({reason})", flush=True)

    steps = math.ceil(args.member_steps / size)
    loop_trainers = make_trainers(members, bench)
    timers = {"loop": lambda: time_loop(loop_trainers, steps, args.device)}
    population = StackedPopulation(members, bench, progress=False)
    timers["vectorized"] = lambda: time_stacked(population, steps, args.device)
    if chosen == "loop":  # the engine is the loop: an independent second loop, timed alongside
        engine_trainers = make_trainers(members, bench)
        timers["engine"] = lambda: time_loop(engine_trainers, steps, args.device)
    for timer in timers.values():  # warm-up (allocator, first-call paths, vmap tracing)
        timer()
    times: dict[str, list[float]] = {name: [] for name in timers}
    names = list(timers)
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            times[name].append(timers[name]())
    samples = size * steps * args.batch_size
    rate = {name: samples / statistics.median(values) for name, values in times.items()}
    paired = {
        name: statistics.median([a / b for a, b in zip(times["loop"], values)])
        for name, values in times.items()
        if name != "loop"
    }
    if "engine" not in rate:
        rate["engine"], paired["engine"] = rate[chosen], paired.get(chosen, 1.0)
    row = {
        "family": family,
        "model": FAMILIES[family],
        "population": size,
        "auto_engine": chosen,
        "auto_reason": reason,
        "loop_samples_per_s": round(rate["loop"]),
        "vectorized_samples_per_s": round(rate["vectorized"]) if "vectorized" in rate else None,
        "engine_samples_per_s": round(rate["engine"]),
        "ratio_vectorized_over_loop": round(paired["vectorized"], 3) if "vectorized" in paired else None,
        "ratio_engine_over_loop": round(paired["engine"], 3),
        "ratio_vectorized_over_loop_best_rounds": (
            round(min(times["loop"]) / min(times["vectorized"]), 3) if "vectorized" in times else None
        ),
        "ratio_engine_over_loop_best_rounds": round(min(times["loop"]) / min(times.get("engine", times[chosen])), 3),
        "steps_per_member_per_round": steps,
        "seconds": {name: [round(v, 4) for v in values] for name, values in times.items()},
    }
    print(json.dumps({k: v for k, v in row.items() if k not in ("seconds", "model")}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--member-steps", type=int, default=256, help="MLP steps per round, over all members")
    parser.add_argument("--resnet-member-steps", type=int, default=16, help="the same for the (slower) ResNet")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--families", nargs="+", default=["mlp", "resnet"], choices=sorted(FAMILIES))
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "population_speed.json"))
    args = parser.parse_args()
    bench = load_benchmark("multimnist")
    started, load_before = time.perf_counter(), os.getloadavg()
    rows = []
    for family in args.families:
        steps = args.member_steps if family == "mlp" else args.resnet_member_steps
        for size in args.sizes:
            rows.append(measure_case(family, size, bench, argparse.Namespace(**{**vars(args), "member_steps": steps})))
    mlp16 = [r for r in rows if r["family"] == "mlp" and r["population"] == 16 and r["ratio_vectorized_over_loop"]]
    worst = min(rows, key=lambda r: r["ratio_engine_over_loop"])
    result = {
        "benchmark": "multimnist",
        "sizes": {k: v for k, v in bench.sizes()["multimnist"].items()},
        "batch_size": args.batch_size,
        "member_steps_per_round": {"mlp": args.member_steps, "resnet": args.resnet_member_steps},
        "rounds": args.rounds,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "seconds_total": round(time.perf_counter() - started, 1),
        "load_average_1_5_15min": {
            "before": [round(x, 2) for x in load_before],
            "after": [round(x, 2) for x in os.getloadavg()],
        },
        "cases": rows,
        "targets": {
            "mlp_p16_vectorized_over_loop": {
                "target": ">= 1.3",
                "value": mlp16[0]["ratio_vectorized_over_loop"] if mlp16 else None,
                "met": bool(mlp16) and mlp16[0]["ratio_vectorized_over_loop"] >= 1.3,
            },
            "engine_over_loop_everywhere": {
                "target": ">= 0.95",
                "worst": {
                    "family": worst["family"],
                    "population": worst["population"],
                    "engine": worst["auto_engine"],
                    "ratio": worst["ratio_engine_over_loop"],
                },
                "met": worst["ratio_engine_over_loop"] >= 0.95,
            },
        },
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
