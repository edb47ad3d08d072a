"""The trainer against hand-written loops on the paper's models, and every method's step cost.

    python benchmarks/gpu_throughput.py [--device cpu|cuda] [--quick] [--rounds 5]
        [--sections loops,methods] [--out benchmarks/results/gpu_throughput.json]

``loops``: for each model (today's small ``resnet``, ResNet-50 at 64 and 224 px, ViT-S/16 at
224 px; ``--quick`` shrinks widths and sizes for a CPU), the same model, batches, optimizer and
precision trained by

* ``plain``: a hand-written loop (data on the device, forward, mean of the task losses,
  backward, Adam step);
* ``expert`` (GPU only): the loop a PyTorch expert writes: bf16 autocast, channels-last, fused
  Adam, no host sync;
* ``trainer``: :class:`scalarize.train.Trainer` with uniform scalarization at the same precision
  (fp32 against ``plain``; ``precision: bf16`` and ``channels_last`` against ``expert``).

Steps are timed in alternating rounds (order flipped every round) after a warm-up, each round
ends with a device synchronisation, and the ratio is the median of the paired ratios.
Targets: trainer / plain >= 0.95 (CPU and GPU); trainer (bf16, channels-last) / expert >= 0.9
(GPU).

``methods`` (GPU, or CPU with ``--quick``): every method's step time and peak step memory on a
ResNet-50 trunk (width 0.25 with ``--quick``) at K in {2, 10, 40} tasks, relative to uniform
scalarization's, as ``benchmarks/methods_scaling.py`` measures them on an MLP.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from scalarize.data import Benchmark, Split, Task
from scalarize.methods import available_methods, build_method
from scalarize.models import build_model
from scalarize.train import TrainConfig, Trainer
from scalarize.train.measure import step_memory

EXCLUDED = {"frozen", "scheduled_scalarization"}


def image_benchmark(tasks: int, size: int, count: int, device) -> Benchmark:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.rand(count, 3, size, size, generator=generator)
    targets = {f"t{i}": torch.randint(0, 10, (count,), generator=generator) for i in range(tasks)}
    split = Split(inputs, targets).to(device)
    return Benchmark(
        "images",
        "mtl",
        [Task(f"t{i}", "multiclass", 10) for i in range(tasks)],
        {"all": {"train": split, "val": split, "test": split}},
    )


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class PlainLoop:
    """The hand-written loop: the trainer's batches (same sampler), forward, mean loss, Adam."""

    def __init__(self, bench, family, width, depth, options, device, batch, expert=False):
        torch.manual_seed(0)
        self.model = build_model(family, bench.input_shape, bench.tasks, width, depth, **options).to(device)
        self.expert = expert
        if expert:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3, fused=expert or None)
        self.split, self.names, self.batch, self.device = (
            bench.split("train"),
            [t.name for t in bench.tasks],
            batch,
            device,
        )
        self.generator = torch.Generator().manual_seed(1)
        self.order, self.position = torch.randperm(len(self.split), generator=self.generator), 0

    def step(self) -> None:
        if self.position + self.batch > len(self.order):
            self.order, self.position = torch.randperm(len(self.split), generator=self.generator), 0
        index = self.order[self.position : self.position + self.batch].to(self.device, non_blocking=True)
        self.position += self.batch
        x, y = self.split.inputs[index], {k: v[index] for k, v in self.split.targets.items()}
        if self.expert:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                _, outputs = self.model(x)
        else:
            _, outputs = self.model(x)
        loss = sum(F.cross_entropy(outputs[n].float(), y[n]) for n in self.names) / len(self.names)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def trainer_for(bench, family, width, depth, options, device, batch, method="scalarization", **config):
    torch.manual_seed(0)
    model = build_model(family, bench.input_shape, bench.tasks, width, depth, **options)
    settings = TrainConfig(steps=10**9, batch_size=batch, device=device.type, **config)
    trainer = Trainer(settings, bench, model, build_method(method), progress=False)
    trainer.step = 2  # past the warm-up and memory steps: every step below is an ordinary one
    return trainer


def paired_ratio(fast, slow, steps: int, rounds: int, device) -> tuple[float, float, float]:
    """Median over rounds of (slow's time / fast's time), and each side's median steps/s."""
    for step in (fast, slow):
        for _ in range(3):
            step()
    sync(device)
    ratios, rates = [], {"a": [], "b": []}
    for round_ in range(rounds):
        timings = {}
        order = [("a", fast), ("b", slow)]
        for key, step in order if round_ % 2 == 0 else order[::-1]:
            sync(device)
            started = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            timings[key] = time.perf_counter() - started
            rates[key].append(steps / timings[key])
        ratios.append(timings["b"] / timings["a"])
    return statistics.median(ratios), statistics.median(rates["a"]), statistics.median(rates["b"])


def loops(args, device) -> list[dict]:
    quick = args.quick
    cases = [
        ("resnet", dict(width=1.0 if not quick else 0.5, depth=2, options={}), 32, 2),
        ("resnet_bottleneck", dict(width=1.0 if not quick else 0.125, depth=50, options={}), 64, 2),
        (
            "resnet_bottleneck",
            dict(width=1.0 if not quick else 0.125, depth=50, options={}),
            224 if not quick else 96,
            2,
        ),
        (
            "vit",
            dict(width=1.0 if not quick else 0.5, depth=12 if not quick else 4, options={"patch_size": 16}),
            224 if not quick else 64,
            2,
        ),
    ]
    batch = args.batch or (256 if device.type == "cuda" else 16)
    out = []
    for family, model, size, tasks in cases:
        bench = image_benchmark(tasks, size, 4 * batch, device)
        row = {
            "model": f"{family} w{model['width']:g} d{model['depth']}",
            "image": size,
            "batch": batch,
            "tasks": tasks,
        }
        plain = PlainLoop(bench, family, model["width"], model["depth"], model["options"], device, batch)
        trainer = trainer_for(bench, family, model["width"], model["depth"], model["options"], device, batch)
        ratio, plain_rate, trainer_rate = paired_ratio(plain.step, trainer.train_step, args.steps, args.rounds, device)
        row.update(
            plain_steps_per_s=round(plain_rate, 2),
            trainer_steps_per_s=round(trainer_rate, 2),
            trainer_over_plain=round(1 / ratio, 3),
        )
        if device.type == "cuda":
            expert = PlainLoop(
                bench, family, model["width"], model["depth"], model["options"], device, batch, expert=True
            )
            fast = trainer_for(
                bench,
                family,
                model["width"],
                model["depth"],
                model["options"],
                device,
                batch,
                precision="bf16",
                channels_last=True,
            )
            ratio, expert_rate, fast_rate = paired_ratio(expert.step, fast.train_step, args.steps, args.rounds, device)
            row.update(
                expert_steps_per_s=round(expert_rate, 2),
                trainer_bf16_steps_per_s=round(fast_rate, 2),
                trainer_bf16_over_expert=round(1 / ratio, 3),
            )
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def methods(args, device) -> list[dict]:
    width = 0.25 if args.quick else 1.0
    size, batch = (32, 16) if args.quick else (64, 128)
    out = []
    for tasks in (2, 10, 40):
        bench = image_benchmark(tasks, size, 4 * batch, device)
        costs = {}
        for name in sorted(set(available_methods()) - EXCLUDED):
            trainer = trainer_for(bench, "resnet_bottleneck", width, 50, {}, device, batch, method=name)
            for _ in range(2):
                trainer._step()
            sync(device)
            started = time.perf_counter()
            for _ in range(args.steps):
                trainer._step()
            sync(device)
            seconds = (time.perf_counter() - started) / args.steps
            _, peak = step_memory(trainer._step, device)
            costs[name] = {"ms_per_step": round(1000 * seconds, 2), "step_memory_mib": round(peak / 2**20, 1)}
            del trainer
        base = costs["scalarization"]
        for cost in costs.values():
            cost["time_over_uniform"] = round(cost["ms_per_step"] / base["ms_per_step"], 2)
            cost["memory_over_uniform"] = round(cost["step_memory_mib"] / max(base["step_memory_mib"], 1e-9), 2)
        row = {
            "tasks": tasks,
            "trunk": f"resnet_bottleneck-50 w{width:g}",
            "image": size,
            "batch": batch,
            "methods": costs,
        }
        print(json.dumps({"tasks": tasks, "done": len(costs)}), flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="small widths and images (a CPU)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed burst")
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--sections", default="loops,methods")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(torch.get_num_threads())
    result = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "quick": args.quick,
        "rounds": args.rounds,
        "steps": args.steps,
        "targets": {"trainer_over_plain": ">= 0.95", "trainer_bf16_over_expert": ">= 0.9 (GPU)"},
    }
    sections = args.sections.split(",")
    if "loops" in sections:
        result["loops"] = loops(args, device)
    if "methods" in sections:
        result["methods"] = methods(args, device)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
