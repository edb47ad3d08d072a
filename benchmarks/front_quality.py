"""How close a trained sweep comes to the exact Pareto front (Sweeps issue).

On ``synthetic_linear`` with 2 tasks and the ``linear`` model family, weighted least squares has
a closed-form minimiser for every weight vector (``benchmark.extras["problem"]``, a
:class:`scalarize.data.LinearProblem`), and the exact optimum minimises the weighted *training*
loss. So the comparison is made on the training split: each member of a 21-point lattice sweep
(weights 0, 0.05, …, 1) is trained by the population engine as ``scalarize sweep`` trains it, and
its final parameters are evaluated on the training split (``task0/mse``, ``task1/mse``, the same
mean squared error as :meth:`LinearProblem.losses`).

Hypervolumes (both MSEs minimised, :func:`scalarize.pareto.hypervolume`) share one reference
point: the nadir of the exact front (worst value of each task over the front) moved outwards by
``--margin`` (default 10%) of the front's range, so the extreme points enclose volume too.

* ``ratio_to_exact_lattice``: HV(trained 21 points) / HV(exact optima at the same 21 weights).
  Target ≥ 0.99.
* ``ratio_to_continuous_front``: HV(trained 21 points) / HV(exact optima on a 1001-point lattice,
  the continuous front for all practical purposes), which a finite lattice cannot reach.

    python benchmarks/front_quality.py [--engine vectorized] [--margin 0.1]
        [--output benchmarks/results/front_quality.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from scalarize.data import load_benchmark
from scalarize.experiments.sweep import SweepConfig, build_members
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.pareto import default_reference, hypervolume
from scalarize.population import StackedPopulation, choose_engine
from scalarize.train import Trainer
from scalarize.train.evaluate import evaluate

# the settings of configs/synthetic-linear.yaml (and tests/test_synthetic_linear.py), as a sweep
CONFIG = {
    "name": "linear-front",
    "benchmark": {"name": "synthetic_linear", "options": {"num_tasks": 2}},
    "model": {"family": "linear", "depth": 0},
    "method": {"name": "scalarization"},
    "optimizer": {"name": "adam", "lr": 0.05},
    "schedule": {"name": "cosine"},
    "epochs": 30,
    "batch_size": 200,
    "stl": False,
    "device": "cpu",
    "sweep": {"design": "lattice", "step": 0.05, "seeds": [0]},
}


def train_losses(members, bench, engine: str) -> np.ndarray:
    """``[n, 2]``: each member's final training-split MSEs."""
    names = [f"{t.name}/mse" for t in bench.tasks]
    if engine == "vectorized":
        population = StackedPopulation(members, bench, progress=False)
        population.fit()
        return np.array([[population.evaluate_member(i, "train")[n] for n in names] for i in range(len(members))])
    rows = []
    for member in members:
        config = member.config
        torch.manual_seed(config.seed)
        model = build_model(config.model.family, bench.input_shape, bench.tasks, config.model.width, config.model.depth)
        trainer = Trainer(config, bench, model, Scalarization(member.weights), progress=False)
        trainer.fit()
        metrics = evaluate(trainer.model, bench, "train")
        rows.append([metrics[n] for n in names])
    return np.array(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="auto", choices=["auto", "vectorized", "loop"])
    parser.add_argument(
        "--margin", type=float, default=0.1, help="reference beyond the nadir, as a fraction of the range"
    )
    parser.add_argument("--fine", type=int, default=1001, help="points of the 'continuous' exact front")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "front_quality.json"))
    args = parser.parse_args()

    config = SweepConfig.model_validate(CONFIG)
    bench = load_benchmark(config.benchmark.name, **config.benchmark.options)
    problem = bench.extras["problem"]
    members = build_members(config, len(bench.objectives))
    engine, reason = choose_engine(members, bench, args.engine)
    print(f"{len(members)} members; engine: {engine} ({reason})", flush=True)
    started = time.perf_counter()
    trained = train_losses(members, bench, engine)
    seconds = time.perf_counter() - started

    weights = np.array([m.weights for m in members])
    exact = np.stack([problem.losses(w, "train") for w in weights])
    _, continuous = problem.pareto_front(args.fine, "train")
    ideal, nadir = continuous.min(axis=0), continuous.max(axis=0)
    maximize = [False, False]
    reference = default_reference(continuous, maximize, margin=args.margin * (nadir - ideal))
    hv = {
        "trained": hypervolume(trained, reference, maximize),
        "exact_lattice": hypervolume(exact, reference, maximize),
        "continuous": hypervolume(continuous, reference, maximize),
    }
    tight = nadir  # no margin: the extreme points enclose nothing, the interior counts more
    hv_tight = {k: hypervolume(v, tight, maximize) for k, v in (("trained", trained), ("exact_lattice", exact))}
    gap = trained - exact  # ≥ 0 up to float32: the exact optimum minimises the weighted train loss
    weighted_gap = ((trained - exact) * weights).sum(axis=1)
    result = {
        "benchmark": "synthetic_linear (2 tasks, defaults)",
        "model": "linear",
        "training": {k: CONFIG[k] for k in ("optimizer", "schedule", "epochs", "batch_size")},
        "members": len(members),
        "engine": engine,
        "engine_reason": reason,
        "train_seconds": round(seconds, 2),
        "split": "train (the split the exact optimum minimises); final parameters",
        "reference": reference.tolist(),
        "reference_rule": f"nadir of the exact front + {args.margin} x its range",
        "front_ideal": ideal.tolist(),
        "front_nadir": nadir.tolist(),
        "hypervolume": hv,
        "ratio_to_exact_lattice": hv["trained"] / hv["exact_lattice"],
        "ratio_to_continuous_front": hv["trained"] / hv["continuous"],
        "exact_lattice_to_continuous": hv["exact_lattice"] / hv["continuous"],
        "ratio_to_exact_lattice_reference_at_nadir": hv_tight["trained"] / hv_tight["exact_lattice"],
        "max_relative_loss_gap": float(np.max(np.abs(gap) / exact)),
        "weighted_loss_gap_range": [float(weighted_gap.min()), float(weighted_gap.max())],
        "points": [
            {"weights": w.tolist(), "trained": t.tolist(), "exact": e.tolist()}
            for w, t, e in zip(weights, trained, exact)
        ],
        "target": {"ratio_to_exact_lattice": ">= 0.99", "met": hv["trained"] / hv["exact_lattice"] >= 0.99},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + "\n")


if __name__ == "__main__":
    main()
