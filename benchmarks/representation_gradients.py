"""Per-task gradients on the shared representation against the shared parameters, on an
embedding-heavy recommender-shaped model: step time and peak step memory at K tasks.

    python benchmarks/representation_gradients.py [--tasks 2 8 16] [--rows 1000000] [--steps 5]

The model: ``fields`` categorical features, each looked up in one shared embedding table of
``rows`` rows (``dim`` wide; 10⁶ × 16 by default, 16 M parameters), concatenated, then a shared
MLP to a 64-wide representation, and one linear head (a logit) per task; binary cross-entropy
per task on random clicks. A gradient method on the shared parameters builds a ``[K, 16 M]``
Jacobian (LibMTL's ``param`` mode); on the representation (``method.options.gradients:
representation``, LibMTL's ``rep_grad``) a ``[K, batch × 64]`` one, then one backward of the
aggregated direction through the trunk. Scalarization (one backward) is the floor.

Each configuration is timed as the median of ``--steps`` steps after one warm-up, one thread,
and its peak step memory is measured once (``train/measure.py``: bytes alive above the step's
start). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from scalarize.methods import StepContext
from scalarize.methods.registry import build_method
from scalarize.train.measure import step_memory

METHODS = [
    ("scalarization", None),
    ("pcgrad", "parameters"),
    ("pcgrad", "representation"),
    ("mgda", "parameters"),
    ("mgda", "representation"),
    ("cagrad", "parameters"),
    ("cagrad", "representation"),
]


class Recommender(nn.Module):
    def __init__(self, rows: int, dim: int, fields: int, tasks: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(rows, dim)
        self.trunk = nn.Sequential(nn.Linear(fields * dim, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(64, 1) for _ in range(tasks)])

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        features = self.trunk(self.embedding(ids).flatten(1))
        return features, [head(features).squeeze(-1) for head in self.heads]


def one_configuration(name: str, space: str | None, tasks: int, args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = Recommender(args.rows, args.dim, args.fields, tasks)
    method = build_method(name) if space is None else build_method(name, gradients=space)
    method.setup([f"task{k}" for k in range(tasks)])
    optimizer = torch.optim.Adam(list(model.parameters()) + list(method.parameters()), lr=1e-3)
    shared = list(model.embedding.parameters()) + list(model.trunk.parameters())
    heads = [list(head.parameters()) for head in model.heads]
    ids = torch.randint(0, args.rows, (args.batch, args.fields))
    clicks = (torch.rand(tasks, args.batch) < 0.2).float()

    def step() -> torch.Tensor:
        features, outputs = model(ids)
        losses = torch.stack([nn.functional.binary_cross_entropy_with_logits(o, y) for o, y in zip(outputs, clicks)])
        optimizer.zero_grad(set_to_none=True)
        method.backward(StepContext(losses, features=features, shared_params=shared, task_params=heads))
        optimizer.step()
        return losses.detach()

    step()  # warm-up: optimizer state
    _, peak = step_memory(step, torch.device("cpu"))
    seconds = []
    for _ in range(args.steps):
        started = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - started)
    return {
        "method": name,
        "gradients": space or "-",
        "tasks": tasks,
        "step_ms": round(1000 * statistics.median(seconds), 1),
        "peak_step_mib": round(peak / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, nargs="+", default=[2, 8, 16])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=16)
    parser.add_argument("--fields", type=int, default=8)
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [one_configuration(name, space, k, args) for k in args.tasks for name, space in METHODS]
    for row in rows:  # the floor: scalarization at the same K
        floor = next(r for r in rows if r["tasks"] == row["tasks"] and r["method"] == "scalarization")
        row["time_over_scalarization"] = round(row["step_ms"] / floor["step_ms"], 2)
    print(
        json.dumps(
            {
                "benchmark": "representation_gradients",
                "rows_in_table": args.rows,
                "dim": args.dim,
                "fields": args.fields,
                "batch": args.batch,
                "threads": 1,
                "results": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
