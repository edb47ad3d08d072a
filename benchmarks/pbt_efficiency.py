"""Search efficiency of PBT against a grid sweep (PBT issue).

On ``multimnist`` and on two ``synthetic`` regression tasks with loss scales 10x apart, trains a
21-point lattice sweep of fixed weights and a PBT search of 5 members for the same epochs, then
compares the validation fitness (mean of the primary metrics, signed so that higher is better) of
the PBT result with the best grid point's, and the compute each used (member-epochs). Target:
within 0.5% of the best grid point at ≤ 1/4 of its compute (5/21). Prints JSON.

    python benchmarks/pbt_efficiency.py [--epochs 6] [--population 5] [--benchmarks multimnist synthetic]
"""

from __future__ import annotations

import argparse
import json
import tempfile

import numpy as np

from scalarize.experiments.pbt import PBTConfig, run_pbt
from scalarize.experiments.sweep import SweepConfig, run_sweep
from scalarize.search.fitness import mean_primary

SETTINGS = {
    "multimnist": {
        "benchmark": {"name": "multimnist"},
        "model": {"family": "mlp", "width": 0.5, "depth": 2},
        "optimizer": {"lr": 0.001},
    },
    "synthetic": {
        "benchmark": {"name": "synthetic", "options": {"num_tasks": 2, "scale_spread": 10.0, "relatedness": 0.5}},
        "model": {"family": "mlp", "width": 0.5, "depth": 2},
        "optimizer": {"lr": 0.001},
    },
}


def compare(name: str, epochs: int, population: int, interval: int) -> dict:
    common = dict(SETTINGS[name], epochs=epochs, batch_size=128, stl=False, schedule={"name": "cosine"})
    with tempfile.TemporaryDirectory() as directory:
        sweep = run_sweep(
            SweepConfig(name="grid", output=f"{directory}/grid", sweep={"step": 0.05}, **common), progress=False
        )
        fitness = mean_primary(sweep.primary)
        grid = [(fitness(r.val), name) for name, r in sweep.results.items() if r.status == "completed"]
        best_grid, best_name = max(grid)
        pbt = run_pbt(
            PBTConfig(
                name="pbt",
                output=f"{directory}/pbt",
                pbt={"population": population, "interval": interval, "compare_uniform": False},
                **common,
            ),
            progress=False,
        )
        pbt_fitness = fitness(pbt.val)
        uniform = [f for f, n in grid if n == "grid-010"][0]
    gap = (best_grid - pbt_fitness) / abs(best_grid)
    return {
        "grid_points": len(grid),
        "grid_best": round(best_grid, 5),
        "grid_best_member": best_name,
        "grid_uniform": round(uniform, 5),
        "pbt": round(pbt_fitness, 5),
        "pbt_final_weights": [round(w, 3) for w in pbt.schedule[-1][1]],
        "relative_gap_to_best_grid": round(float(gap), 5),
        "compute_member_epochs": {"grid": len(grid) * epochs, "pbt": population * epochs},
        "compute_ratio": round(population / len(grid), 3),
        "targets": {"relative_gap": "<= 0.005", "compute_ratio": "<= 0.25"},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--population", type=int, default=5)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--benchmarks", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    args = parser.parse_args()
    out = {
        "epochs": args.epochs,
        "population": args.population,
        "interval": args.interval,
        "fitness": "mean primary validation metric (signed)",
    }
    for name in args.benchmarks:
        out[name] = compare(name, args.epochs, args.population, args.interval)
    print(json.dumps(out, indent=2, default=lambda x: float(x) if isinstance(x, np.floating) else str(x)))


if __name__ == "__main__":
    main()
