"""MGDA's min-norm solvers side by side: cost and KKT accuracy against the number of tasks.

    python benchmarks/min_norm_solvers.py [--sizes 2 5 10 20 40 80 120] [--repeats 50]

For each T, on a full-rank and a rank-5 Gramian (gradients in 64 dimensions, shifted by 0.3 so
that some weights are 0), it times one solve of:

* ``exact``: today's solver (NNLS on a factor of the Gramian, SciPy's Lawson–Hanson);
* ``wolfe``: the hand-written Wolfe algorithm it replaced, read from git at the commit named by
  ``--previous`` (skipped outside a git checkout);
* ``frank_wolfe``: the paper's Algorithm 2 at torchjd's defaults (inexact);
* ``clarabel``: an interior-point QP solver (Clarabel, if installed), whose weights are never
  exactly 0, so that the support's KKT equality fails unless small weights are cut.

and reports the median time (µs) and the KKT violation relative to ``max‖g_i‖²``. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import types
from pathlib import Path

import numpy as np

from scalarize.methods._min_norm import frank_wolfe, kkt_violation, min_norm_weights

ROOT = Path(__file__).resolve().parents[1]
PREVIOUS = "07b2ba8"  # the last commit with the Wolfe solver


def previous_solver(commit: str):
    try:
        source = subprocess.run(
            ["git", "show", f"{commit}:src/scalarize/methods/_min_norm.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("previous_min_norm")
    exec(compile(source, "previous_min_norm.py", "exec"), module.__dict__)
    return module.min_norm_weights


def clarabel_solver():
    try:
        import clarabel
        import scipy.sparse as sparse
    except ImportError:
        return None

    def solve(gram: np.ndarray) -> np.ndarray:
        size = gram.shape[0]
        settings = clarabel.DefaultSettings()
        settings.verbose = False
        constraints = sparse.vstack([sparse.csc_matrix(np.ones((1, size))), -sparse.eye(size)]).tocsc()
        bounds = np.concatenate([[1.0], np.zeros(size)])
        cones = [clarabel.ZeroConeT(1), clarabel.NonnegativeConeT(size)]
        scaled = gram / np.max(np.diag(gram))
        solution = clarabel.DefaultSolver(
            sparse.csc_matrix(np.triu(scaled)), np.zeros(size), constraints, bounds, cones, settings
        ).solve()
        alpha = np.clip(np.asarray(solution.x), 0.0, None)
        return alpha / alpha.sum()

    return solve


def gramians(size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    full = rng.standard_normal((size, 64)) + 0.3
    low = rng.standard_normal((size, 5)) @ rng.standard_normal((5, 64)) + 0.3
    return {"full_rank": full @ full.T, "rank_5": low @ low.T}


def median_time(solve, gram: np.ndarray, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        solve(gram)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2, 3, 5, 10, 20, 40, 80, 120])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--previous", default=PREVIOUS, help="git commit of the Wolfe solver")
    args = parser.parse_args()
    solvers = {
        "exact": min_norm_weights,
        "wolfe": previous_solver(args.previous),
        "frank_wolfe": lambda g: frank_wolfe(g, 1e-3, 100),
        "clarabel": clarabel_solver(),
    }
    solvers = {name: solve for name, solve in solvers.items() if solve is not None}
    rng = np.random.default_rng(0)
    rows = []
    for size in args.sizes:
        for shape, gram in gramians(size, rng).items():
            row = {"tasks": size, "gramian": shape}
            for name, solve in solvers.items():
                alpha = solve(gram)
                row[f"{name}_us"] = round(median_time(solve, gram, args.repeats), 1)
                row[f"{name}_kkt"] = float(f"{kkt_violation(gram, alpha) / np.max(np.diag(gram)):.2e}")
            rows.append(row)
    print(json.dumps({"benchmark": "min_norm_solvers", "solvers": list(solvers), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
