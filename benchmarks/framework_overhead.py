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
    python benchmarks/framework_overhead.py --model mmoe [--rows 100000]

``--model mmoe``: the recommender case, where a step is many small operations: MMoE (8 experts,
two binary towers) on a Census-shaped table (7 dense and 33 categorical columns with Census's
vocabulary sizes, two binary targets; generated, ``--rows`` rows, batch 1024), the hand-written
loop indexing the packed rows and summing the two BCE losses. It also times reading that table
from Parquet into a benchmark (``scalarize.data.tabular``: read, fit the preprocessing, pack), in
rows/s, beside the rows/s the trainer's step consumes.

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


def _model(bench, config: TrainConfig):
    return build_model(
        config.model.family,
        bench.input_shape,
        bench.tasks,
        config.model.width,
        config.model.depth,
        features=bench.extras.get("features"),
    )


def _loss(outputs, targets, index):
    """The hand-written loop's loss: the mean of the tasks' losses (multiclass CE or binary BCE)."""
    losses = []
    for name, target in targets.items():
        if target.dtype == torch.long:
            losses.append(F.cross_entropy(outputs[name], target[index]))
        else:
            losses.append(F.binary_cross_entropy_with_logits(outputs[name].squeeze(-1), target[index].float()))
    return sum(losses) / len(losses)


def plain_loop(bench, config: TrainConfig, fused: bool = False) -> float:
    torch.manual_seed(config.seed)
    model = _model(bench, config)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.optimizer.lr, fused=fused or None)
    train = bench.split("train")
    x, targets = train.inputs, train.targets
    generator = torch.Generator().manual_seed(config.seed + 1)
    order, position = torch.randperm(len(x), generator=generator), 0
    started = time.perf_counter()
    for _ in range(config.steps):
        if position >= len(order):
            order, position = torch.randperm(len(x), generator=generator), 0
        index = order[position : position + config.batch_size]
        position += len(index)
        _, outputs = model(x[index])
        loss = _loss(outputs, targets, index)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    evaluate(model, bench, "val")
    evaluate(model, bench, "test")
    return time.perf_counter() - started


def framework(bench, config: TrainConfig) -> float:
    torch.manual_seed(config.seed)
    model = _model(bench, config)
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
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of both loops (default 1, as scalarize's)"
    )
    parser.add_argument("--model", choices=["mlp", "mmoe"], default="mlp")
    parser.add_argument("--rows", type=int, default=100_000, help="--model mmoe: rows of the generated table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    loader = {}
    if args.model == "mmoe":
        bench, loader = census_shaped(args.rows)
        args.batch_size = 1024 if args.batch_size == 128 else args.batch_size
    else:
        bench = load_benchmark("multimnist")
    config = TrainConfig(
        steps=args.steps,
        eval_every=args.steps,
        batch_size=args.batch_size,
        device="cpu",
        optimizer={"name": "adam", "lr": 1e-3},
        stl=False,
        threads=args.threads,
        model={"family": args.model},
    )
    plain_loop(bench, config.model_copy(update={"steps": 20}))  # warm-up
    times = {"plain": [], "plain_fused": [], "scalarize": []}
    for _ in range(args.repeats):
        times["plain"].append(plain_loop(bench, config))
        times["plain_fused"].append(plain_loop(bench, config, fused=True))
        times["scalarize"].append(framework(bench, config))
    samples = args.steps * args.batch_size
    rate = {k: samples / statistics.median(v) for k, v in times.items()}
    if loader:
        loader["step_consumes_rows_per_s"] = round(rate["scalarize"])
        loader["ratio_loader_over_step"] = round(loader["parquet_rows_per_s"] / rate["scalarize"], 1)
    print(
        json.dumps(
            {
                "benchmark": "census-shaped table" if args.model == "mmoe" else "multimnist",
                "model": "mmoe (8 experts)" if args.model == "mmoe" else "mlp width 1 depth 2",
                "steps": args.steps,
                "batch_size": args.batch_size,
                "repeats": args.repeats,
                "threads": torch.get_num_threads(),
                "plain_samples_per_s": round(rate["plain"]),
                "plain_fused_samples_per_s": round(rate["plain_fused"]),
                "scalarize_samples_per_s": round(rate["scalarize"]),
                "ratio_scalarize_over_plain": round(rate["scalarize"] / rate["plain"], 3),
                "ratio_scalarize_over_plain_fused": round(rate["scalarize"] / rate["plain_fused"], 3),
                "target": ">= 0.95",
                **({"loader": loader} if loader else {}),
            },
            indent=2,
        )
    )


#: Census-Income's categorical columns' vocabulary sizes (the KDD file's 33 nominal fields, about).
CENSUS_VOCABULARIES = [
    9,
    52,
    47,
    17,
    3,
    7,
    24,
    15,
    5,
    10,
    2,
    3,
    6,
    8,
    6,
    6,
    51,
    38,
    8,
    10,
    9,
    10,
    3,
    4,
    7,
    5,
    43,
    43,
    43,
    5,
    3,
    3,
    3,
]


def census_shaped(rows: int):
    """A generated table with Census-Income's shape, written to Parquet and read back through
    ``scalarize.data.tabular`` (timed): the benchmark and the loader's rows/s."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from scalarize.data.tabular import benchmark_from_table, read_table

    rng = np.random.default_rng(0)
    columns = {f"d{i}": rng.normal(size=rows) for i in range(7)}
    columns |= {f"c{i}": rng.integers(0, size, rows).astype(str) for i, size in enumerate(CENSUS_VOCABULARIES)}
    logit = columns["d0"] + (columns["c1"].astype(int) % 3 == 0)
    columns["income"] = (rng.random(rows) < 1 / (1 + np.exp(2 - logit))).astype(np.int64)
    columns["marital"] = (rng.random(rows) < 1 / (1 + np.exp(-columns["d1"]))).astype(np.int64)
    with tempfile.TemporaryDirectory() as directory:
        path = f"{directory}/census.parquet"
        pq.write_table(pa.table(columns), path)
        started = time.perf_counter()
        bench = benchmark_from_table(
            read_table(path),
            dense=[f"d{i}" for i in range(7)],
            categorical=[f"c{i}" for i in range(len(CENSUS_VOCABULARIES))],
            targets=["income", "marital"],
            split={"val": 0.15, "test": 0.15},
        )
        seconds = time.perf_counter() - started
    return bench, {"rows": rows, "parquet_seconds": round(seconds, 3), "parquet_rows_per_s": round(rows / seconds)}


if __name__ == "__main__":
    main()
