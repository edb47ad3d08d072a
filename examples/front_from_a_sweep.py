"""A Pareto front from a weight sweep: a lattice of (left, right) weights on MultiMNIST, trained
as one stacked population, with the single-task baselines; prints the front, its hypervolume and
each member's Δm, and writes the sweep's report (report.md, report.html) to the output directory.

    python examples/front_from_a_sweep.py [--small] [--output DIR]
"""

import argparse

import numpy as np

from scalarize.experiments.sweep import SweepConfig, run_sweep
from scalarize.pareto import delta_m, hypervolume, non_dominated_mask


def main(small: bool, output: str) -> np.ndarray:
    config = SweepConfig(
        name="mm-front",
        benchmark={
            "name": "multimnist",
            "options": {"train_size": 600 if small else 9000, "test_size": 300 if small else 1000},
        },
        model={"family": "mlp", "width": 0.25 if small else 1.0, "depth": 2},
        method={"name": "scalarization"},
        epochs=1 if small else 10,
        output=output,
        sweep={"design": "lattice", "step": 0.25 if small else 0.1, "seeds": [0]},
    )
    result = run_sweep(config, progress=False)
    points = result.points("test")  # [members, tasks]: each member's primary test metric
    maximize = [higher for _, higher in result.primary]
    on_front = non_dominated_mask(points, maximize)
    stl = [result.stl[name.split("/")[0]].test[name] for name, _ in result.primary] if result.stl else None
    print(f"{'member':12s} {'weights':14s} " + " ".join(f"{n:>15s}" for n, _ in result.primary) + "   Δm %  front")
    for member, row, front in zip(result.members, points, on_front):
        weights = ", ".join(f"{w:.2f}" for w in member.config.method.weights)
        dm = f"{delta_m(row, stl, maximize):+6.2f}" if stl else "     -"
        print(
            f"{member.name:12s} ({weights:10s}) "
            + " ".join(f"{v:15.4f}" for v in row)
            + f"  {dm}  {'*' if front else ''}"
        )
    reference = np.nanmin(points, axis=0) - 0.05  # a little below the worst member (both metrics higher is better)
    print(
        f"hypervolume of the front: {hypervolume(points[on_front], reference, maximize):.5f}; report in {output}/report.html"
    )
    return points


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="a CI-sized run (seconds)")
    parser.add_argument("--output", default="experiments/example-front")
    args = parser.parse_args()
    main(args.small, args.output)
