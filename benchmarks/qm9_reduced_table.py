"""Prints the README's table of the reduced QM9 runs from their stores (Markdown, and JSON in
benchmarks/results/qm9_reduced.json, with each run's wall time per step, which on a shared
machine depends on the load more than on the method).

Run after:
    scalarize train configs/qm9-reduced.yaml
    scalarize compare configs/qm9-reduced-compare.yaml
    scalarize sweep configs/qm9-reduced-sweep.yaml
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from scalarize.data.loaders.qm9 import PUBLISHED_SINGLE_TASK, TARGETS, UNITS
from scalarize.pareto import delta_m
from scalarize.store.database import Store

ROOT = Path(__file__).resolve().parents[1]
METRICS = [f"{t}/mae" for t in TARGETS]
STL = [PUBLISHED_SINGLE_TASK[t] for t in TARGETS]


def row(store: Store, run: str, label: str) -> dict:
    final = store.final(run)
    costs = store.costs(run)
    test = final["test"]
    return {
        "label": label,
        "run": run,
        "test": {m: test[m] for m in METRICS},
        "val_normalized_mae": float(np.mean([final["val"][f"{t}/normalized_mae"] for t in TARGETS])),
        "test_normalized_mae": float(np.mean([test[f"{t}/normalized_mae"] for t in TARGETS])),
        "delta_m": delta_m([test[m] for m in METRICS], STL, [False] * len(METRICS)),
        "seconds_per_step": costs.get("seconds_per_step"),
    }


def main(directory: str = "experiments") -> None:
    rows = []
    with Store(ROOT / directory / "qm9-reduced") as store:
        names = {r["name"] for r in store.runs() if r["status"] == "completed"}
        if "qm9-reduced" in names:
            rows.append(row(store, "qm9-reduced", "uniform (`scalarize train`)"))
        for label in ("uniform", "uw", "famo", "mgda_ub"):
            run = f"{label}-lr0.001-s0"
            if run in names:
                rows.append(row(store, run, f"{label} (`compare`)"))
    sweep = ROOT / directory / "qm9-reduced-sweep"
    if (sweep / "scalarize.db").is_file():
        with Store(sweep) as store:
            members = [r for r in store.runs() if r["kind"] == "member" and r["status"] == "completed"]
            scored = [row(store, r["name"], "") for r in members]
            for r, scored_row in zip(members, scored):
                weights = json.loads(r["config"])["method"]["weights"]
                scored_row["weights"] = weights
            if scored:
                best = min(scored, key=lambda r: r["val_normalized_mae"])
                best["label"] = f"best of {len(scored)} weightings by validation (`sweep`)"
                rows.append(best)
                rows.extend({**r, "label": "sweep member"} for r in scored if r is not best)
    header = ["run", *(f"{t} ({UNITS[t]})" for t in TARGETS), "mean norm. MAE", "Δm %"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.append("| single-task, published (Nash-MTL) | " + " | ".join(f"{v:g}" for v in STL) + " | — | 0 |")
    for r in rows:
        cells = [
            r["label"],
            *(f"{r['test'][m]:.4g}" for m in METRICS),
            f"{r['test_normalized_mae']:.3f}",
            f"{r['delta_m']:+.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    out = ROOT / "benchmarks" / "results" / "qm9_reduced.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
