"""What scalarize's trainer costs over a hand-written PyTorch loop (Foundation issue).

Trains uniform scalarization on ``multimnist`` (MLP trunk, two heads, Adam) for the same number
of steps on the same batches twice, alternately, several times:

* ``plain``: a loop written by hand: index the batch, forward, ``0.5 * (CE_left + CE_right)``,
  backward, Adam step; then one evaluation of val and test;
* ``plain_fused``: the same loop with ``torch.optim.Adam(..., fused=True)``, the optimizer
  kernel the trainer uses (``train.trainer.fused_optimizer``): the ratio to this loop is what the
  framework itself costs, without the faster kernel it brings;
* ``scalarize``: :class:`scalarize.train.Trainer` ``fit()`` with one evaluation at the end (the
  method protocol, step context, losses, non-finite guard, weight logging, progress
  bookkeeping, checkpoint).

Prints JSON with samples/s of each (median over repeats) and the ratios. Target: scalarize costs
at most 5% over the plain loop (``ratio_scalarize_over_plain >= 0.95``);
``ratio_scalarize_over_plain_fused`` is reported beside it.

    python benchmarks/framework_overhead.py [--steps 600] [--repeats 5] [--threads 1]

Both loops run with the same torch thread count (``--threads``, 1 by default as scalarize's own
default): with torch's default of one thread per core, a shared machine's load decides the figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from scalarize.data import load_benchmark
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.train import TrainConfig, Trainer
from scalarize.train.evaluate import evaluate


def plain_loop(bench, config: TrainConfig, fused: bool = False) -> float:
    torch.manual_seed(config.seed)
    model = build_model("mlp", bench.input_shape, bench.tasks, config.model.width, config.model.depth)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr, fused=fused or None)
    train = bench.split("train")
    x, left, right = train.inputs, train.targets["left"], train.targets["right"]
    generator = torch.Generator().manual_seed(config.seed + 1)
    order, position = torch.randperm(len(x), generator=generator), 0
    started = time.perf_counter()
    for _ in range(config.steps):
        if position >= len(order):
            order, position = torch.randperm(len(x), generator=generator), 0
        index = order[position : position + config.batch_size]
        position += len(index)
        _, outputs = model(x[index])
        loss = 0.5 * (F.cross_entropy(outputs["left"], left[index]) + F.cross_entropy(outputs["right"], right[index]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    evaluate(model, bench, "val")
    evaluate(model, bench, "test")
    return time.perf_counter() - started


def framework(bench, config: TrainConfig) -> float:
    torch.manual_seed(config.seed)
    model = build_model("mlp", bench.input_shape, bench.tasks, config.model.width, config.model.depth)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(config, bench, model, Scalarization(), checkpoint_path=f"{tmp}/ck.pt", progress=False)
        started = time.perf_counter()
        trainer.fit()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch threads of both loops (default 1, as scalarize's)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bench = load_benchmark("multimnist")
    config = TrainConfig(
        steps=args.steps, eval_every=args.steps, batch_size=args.batch_size, device="cpu",
        optimizer={"name": "adam", "lr": 1e-3}, stl=False, threads=args.threads,
    )
    plain_loop(bench, config.model_copy(update={"steps": 20}))  # warm-up
    times = {"plain": [], "plain_fused": [], "scalarize": []}
    for _ in range(args.repeats):
        times["plain"].append(plain_loop(bench, config))
        times["plain_fused"].append(plain_loop(bench, config, fused=True))
        times["scalarize"].append(framework(bench, config))
    samples = args.steps * args.batch_size
    rate = {k: samples / statistics.median(v) for k, v in times.items()}
    print(json.dumps({
        "benchmark": "multimnist", "model": "mlp width 1 depth 2", "steps": args.steps,
        "batch_size": args.batch_size, "repeats": args.repeats, "threads": torch.get_num_threads(),
        "plain_samples_per_s": round(rate["plain"]), "plain_fused_samples_per_s": round(rate["plain_fused"]),
        "scalarize_samples_per_s": round(rate["scalarize"]),
        "ratio_scalarize_over_plain": round(rate["scalarize"] / rate["plain"], 3),
        "ratio_scalarize_over_plain_fused": round(rate["scalarize"] / rate["plain_fused"], 3),
        "target": ">= 0.95",
    }, indent=2))


if __name__ == "__main__":
    main()
