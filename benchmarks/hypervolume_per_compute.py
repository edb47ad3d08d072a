"""Hypervolume per unit of compute: lattice sweep, adaptive sweep, MO-PBT, one-run COSMOS front (issue 15, item 5).

Each way of tracing a front is run side by side in one process, on the same training config, and
measured the same way:

* **compute**: members × steps, i.e. the optimizer steps of every model trained (read from the
  experiment's store; a COSMOS front's evaluations at each preference train nothing and cost 0),
  and the wall-clock seconds;
* **hypervolume** (:func:`scalarize.pareto.hypervolume`, moocore) of the test metrics of every
  model the method produced (its reported points; dominated ones add nothing), against **one
  fixed reference point per benchmark**:

  - ``synthetic_linear`` (2 tasks, defaults; the ``linear`` model): the exact front is known
    (:class:`scalarize.data.LinearProblem`): the test losses of the exact minimisers at 1,001
    weights. Reference: its nadir moved out by 10% of its range (as ``front_quality.py``); the
    exact front's hypervolume is reported as the ceiling.
  - ``multimnist`` (small: 4,000 training images, 5 epochs, MLP 2 × 128): both accuracies
    maximised, reference ``(0.2, 0.2)``, twice chance (10 classes) on each digit: a member that
    ignores a digit (near 0.1) encloses nothing. Fixed for every method; a pilot showed that
    ``(0.5, 0.5)`` cut off most of so small a model's front.

Methods (the same epochs, batch, optimizer and schedule for all):

* ``lattice``: ``scalarize sweep`` with the lattice at step 0.05 (21 members), the reference;
* ``lattice-same-compute``: the lattice with as many members as the adaptive design trains
  (a control: is the adaptive placement better than evenly spaced weights at equal cost?);
* ``adaptive``: ``sweep.design: adaptive`` with its defaults (3 weights, then 3 batches of 2 at
  the largest gaps of the validation front; SURF 2026, Kim & de Weck 2005);
* ``mo-pbt``: ``scalarize pbt`` with ``pbt.algorithm: mo-pbt`` (Dushatskiy et al. 2023), the
  default population (8) and sync interval; every member's final model is a point. Skipped with a
  note when the config refuses ``mo-pbt`` (before that algorithm is wired); ``pbt`` (one scalar
  fitness, the mean primary metric) is run the same way as a control;
* ``cosmos``: ``scalarize sweep`` with ``method: cosmos`` (Ruchte & Grabocka 2021) and its
  defaults (λ = 2, α = 1.2): one preference-conditioned model, evaluated at the lattice's 21
  weights. On ``synthetic_linear`` the ``linear`` model can only add the preference to its output
  (the preference is an input feature), so ``cosmos-mlp`` runs the same with one hidden ReLU layer
  whose output map is still shared by the tasks (:func:`shared_output_mlp`), and ``cosmos_scan``
  varies λ and α on that model (an investigation of the defaults, never a target row);
* ``cosmos-tuned``: COSMOS with λ chosen from {0, 2, 8} by validation hypervolume (the paper tuned
  λ per dataset), on the shared-output MLP on ``synthetic_linear``; its compute counts all three
  runs.

Targets on ``synthetic_linear`` (issue 15): ``adaptive`` and ``mo-pbt`` reach ≥ 99% of the
lattice's hypervolume with ≤ half its compute; the one-run front (``cosmos``, ``cosmos-mlp``,
``cosmos-tuned``) ≥ 95% with ≤ a quarter. Each is
reported as measured, pass or fail. ``exact_policy_scan`` runs the adaptive policy on the exact
front (no training) for several budgets, to show what a design of that size can reach at all.

    OMP_NUM_THREADS=1 python benchmarks/hypervolume_per_compute.py \\
        [--benchmarks synthetic_linear multimnist] [--out benchmarks/results/hypervolume_per_compute.json]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch.nn as nn

from scalarize.data import load_benchmark
from scalarize.experiments.pbt import PBTConfig, run_pbt
from scalarize.experiments.sweep import SweepConfig, run_sweep
from scalarize.models import MultiTaskModel, register_model
from scalarize.pareto import hypervolume
from scalarize.search.adaptive import adaptive_weights, maximin_weights
from scalarize.search.designs import lattice
from scalarize.store import Store
from scalarize.train.config import ConfigError, build_config

LINEAR = {
    "benchmark": {"name": "synthetic_linear", "options": {"num_tasks": 2}},
    "model": {"family": "linear", "depth": 0},
    "optimizer": {"name": "adam", "lr": 0.05},
    "schedule": {"name": "cosine"},
    "epochs": 30,
    "batch_size": 200,
}
MULTIMNIST = {
    "benchmark": {"name": "multimnist", "options": {"train_size": 4000, "test_size": 1000}},
    "model": {"family": "mlp", "width": 0.5, "depth": 2},
    "optimizer": {"name": "adam", "lr": 0.001},
    "schedule": {"name": "cosine"},
    "epochs": 5,
    "batch_size": 64,
}
BENCHMARKS = {"synthetic_linear": LINEAR, "multimnist": MULTIMNIST}
MULTIMNIST_REFERENCE = [0.2, 0.2]
LATTICE_STEP = 0.05
#: COSMOS's model on synthetic_linear beside the linear one (see shared_output_mlp)
SHARED_MLP = {"family": "shared-output-mlp", "depth": 1}
#: (hypervolume ratio to the lattice at least, compute ratio at most) per method, synthetic_linear
TARGETS = {
    "adaptive": (0.99, 0.5),
    "mo-pbt": (0.99, 0.5),
    "cosmos": (0.95, 0.25),
    "cosmos-mlp": (0.95, 0.25),
    "cosmos-tuned": (0.95, 0.25),
}
#: The penalties ``cosmos-tuned`` chooses from (the paper's λ, its default 2 among them, was tuned per dataset).
COSMOS_PENALTIES = (0.0, 2.0, 8.0)


@register_model("shared-output-mlp")
def shared_output_mlp(input_shape, tasks, width: float = 1.0, depth: int = 1) -> MultiTaskModel:
    """COSMOS's model on ``synthetic_linear``: ``depth`` hidden ReLU layers of ``64 × width`` units
    whose last linear map (no bias) is shared by every task (identity heads), as in the ``linear``
    family. With one head per task instead the tasks would not compete for one map: another
    problem, whose front lies far beyond the linear one."""
    size, hidden = math.prod(input_shape), max(1, round(64 * width))
    layers: list[nn.Module] = [nn.Flatten()]
    for _ in range(depth):
        layers += [nn.Linear(size, hidden), nn.ReLU()]
        size = hidden
    layers.append(nn.Linear(size, tasks[0].num_outputs, bias=False))
    return MultiTaskModel(nn.Sequential(*layers), {t.name: nn.Identity() for t in tasks})


@dataclass
class Outcome:
    """What one method produced: its points (test and val metrics), its compute, its time."""

    method: str
    test: np.ndarray
    val: np.ndarray
    steps: int
    models: int
    seconds: float
    notes: list[str] = field(default_factory=list)


def base_config(name: str, settings: dict, directory: Path) -> dict:
    return {
        "name": name,
        **json.loads(json.dumps(settings)),
        "method": {"name": "scalarization"},
        "stl": False,
        "device": "cpu",
        "output": str(directory / name),
    }


def trained_steps(directory: Path) -> tuple[int, int]:
    """(optimizer steps summed over the trained runs, trained runs): members × steps, read from
    the store; a one-run front's points (kind ``front-point``) train nothing."""
    with Store(directory) as store:
        rows = [r for r in store.runs() if r["kind"] != "front-point"]
    return sum(int(r["step"]) for r in rows), len(rows)


def run_sweep_method(method: str, data: dict, note: str = "") -> Outcome:
    config = build_config(data, SweepConfig)
    started = time.perf_counter()
    result = run_sweep(config, progress=False)
    seconds = time.perf_counter() - started
    steps, models = trained_steps(config.experiment_dir())
    return Outcome(method, result.points("test"), result.points("val"), steps, models, seconds, [note] if note else [])


def lattice_run(name: str, settings: dict, directory: Path, step: float) -> Outcome:
    data = base_config(name, settings, directory) | {"sweep": {"design": "lattice", "step": step}}
    return run_sweep_method(name, data, f"lattice at step {step:g}")


def adaptive_run(settings: dict, directory: Path) -> Outcome:
    data = base_config("adaptive", settings, directory) | {"sweep": {"design": "adaptive"}}
    spec = build_config(data, SweepConfig).sweep.adaptive
    return run_sweep_method(
        "adaptive",
        data,
        f"adaptive: initial {spec.initial or 'tasks + 1'}, batch {spec.batch}, batches {spec.batches} (defaults)",
    )


def cosmos_run(name: str, settings: dict, directory: Path, model: dict | None = None) -> Outcome:
    data = base_config(name, settings, directory) | {"sweep": {"design": "lattice", "step": LATTICE_STEP}}
    data["method"] = {"name": "cosmos"}
    if model is not None:
        data["model"] = model
    shown = data["model"]
    return run_sweep_method(name, data, f"one cosmos model ({shown['family']}), evaluated at the lattice's weights")


def cosmos_tuned_run(settings: dict, directory: Path, reference, maximize, model: dict | None = None) -> Outcome:
    """COSMOS with its penalty λ chosen from :data:`COSMOS_PENALTIES` by validation hypervolume,
    as Ruchte & Grabocka tuned λ per dataset; the compute counts every λ tried, and the points
    are the chosen model's (test values, never used to choose)."""
    tried = []
    for penalty in COSMOS_PENALTIES:
        name = f"cosmos-tuned-penalty{penalty:g}"
        data = base_config(name, settings, directory) | {"sweep": {"design": "lattice", "step": LATTICE_STEP}}
        data["method"] = {"name": "cosmos", "options": {"penalty": penalty}}
        if model is not None:
            data["model"] = model
        tried.append((penalty, run_sweep_method(name, data)))
    penalty, chosen = max(tried, key=lambda pair: finite_hypervolume(pair[1].val, reference, maximize))
    family = (model or {}).get("family", "the settings' model")
    validation = ", ".join(f"{p:g}: {finite_hypervolume(o.val, reference, maximize):.4g}" for p, o in tried)
    return Outcome(
        "cosmos-tuned",
        chosen.test,
        chosen.val,
        sum(o.steps for _, o in tried),
        sum(o.models for _, o in tried),
        sum(o.seconds for _, o in tried),
        [
            f"one cosmos model ({family}) per λ in "
            f"{list(COSMOS_PENALTIES)}; λ = {penalty:g} chosen on validation hypervolume ({validation}); "
            "the compute counts every λ tried"
        ],
    )


def mopbt_run(settings: dict, directory: Path, algorithm: str = "mo-pbt") -> Outcome | dict:
    """MO-PBT through ``run_pbt``; a skip note (a dict) when the config refuses ``mo-pbt``."""
    data = base_config(algorithm, settings, directory) | {"pbt": {"algorithm": algorithm, "compare_uniform": False}}
    started = time.perf_counter()
    try:
        config = build_config(data, PBTConfig)
        result = run_pbt(config, progress=False)
    except ConfigError as error:
        return {"method": algorithm, "skipped": True, "reason": f"the pbt config refuses {algorithm} here: {error}"}
    seconds = time.perf_counter() - started
    names = [m.name for m in result.members]
    with Store(config.experiment_dir()) as store:
        finals = [store.final(n) for n in names]
    primary = [n for n, _ in result.primary]
    rows = {s: np.array([[f.get(s, {}).get(p, np.nan) for p in primary] for f in finals]) for s in ("test", "val")}
    steps, models = trained_steps(config.experiment_dir())
    return Outcome(
        algorithm,
        rows["test"],
        rows["val"],
        steps,
        models,
        seconds,
        [f"population {config.pbt.population}, every member's final model a point"],
    )


def finite_hypervolume(values: np.ndarray, reference, maximize) -> float:
    rows = values[np.isfinite(values).all(axis=1)]
    return hypervolume(rows, reference, maximize) if len(rows) else 0.0


def linear_reference() -> tuple[np.ndarray, np.ndarray, object]:
    """The exact test front of synthetic_linear (1,001 weights), its reference point (nadir + 10%
    of the range) and the problem."""
    problem = load_benchmark("synthetic_linear", num_tasks=2).extras["problem"]
    _, exact = problem.pareto_front(1001, "test")
    ideal, nadir = exact.min(axis=0), exact.max(axis=0)
    return exact, nadir + 0.1 * (nadir - ideal), problem


def exact_losses(problem, split: str):
    """``W [n, 2] -> losses [n, 2]`` at the exact minimisers, from the quadratic form of
    :meth:`LinearProblem.quadratic` (``L_i(w) = w'Q_i w − 2 b_i'w + c_i``)."""
    q, b, c = problem.quadratic(split)
    return lambda weights: np.einsum("nj,ijk,nk->ni", weights, q, weights) - 2 * weights @ b.T + c


def exact_policy_scan(problem, reference) -> dict:
    """No training: the adaptive policy on the exact front (validation values place the weights,
    test values are scored) for several budgets, the evenly spaced lattice of the same size, and
    the best placement of 9 and 10 weights found (Powell from even spacing): what any design of
    that size can reach. Ratios to the exact 21-point lattice's hypervolume."""
    from scipy.optimize import minimize

    val, test, maximize = exact_losses(problem, "val"), exact_losses(problem, "test"), [False, False]

    def hv(w0):
        w0 = np.clip(np.asarray(w0, dtype=float), 0, 1)
        return hypervolume(test(np.c_[w0, 1 - w0]), reference, maximize)

    full = hv(lattice(2, LATTICE_STEP)[:, 0])
    scan = []
    for initial, batch, batches in [(3, 2, 3), (3, 1, 7), (3, 4, 2), (5, 5, 1), (3, 2, 5), (3, 2, 6), (3, 2, 8)]:
        weights = maximin_weights(np.empty((0, 2)), initial, 2)
        for _ in range(batches):
            weights = np.vstack([weights, adaptive_weights(weights, val(weights), maximize, batch)])
        n = len(weights)
        scan.append(
            {
                "initial": initial,
                "batch": batch,
                "batches": batches,
                "models": n,
                "hv_ratio_to_lattice": hv(weights[:, 0]) / full,
                "even_lattice_same_size": hv(np.linspace(0, 1, n)) / full,
            }
        )
    best = {}
    for n in (9, 10):
        found = minimize(
            lambda w0: -hv(w0), np.linspace(0, 1, n), method="Powell", options={"xtol": 1e-6, "ftol": 1e-12}
        )
        best[str(n)] = {
            "hv_ratio_to_lattice": -found.fun / full,
            "weights_task0": np.sort(np.clip(found.x, 0, 1)).round(4).tolist(),
        }
    return {"adaptive": scan, "best_placement_found": best}


def describe(outcome: Outcome, reference, maximize, lattice: Outcome | None) -> dict:
    hv_test = finite_hypervolume(outcome.test, reference, maximize)
    row = {
        "method": outcome.method,
        "models_trained": outcome.models,
        "steps": outcome.steps,
        "points": int(len(outcome.test)),
        "seconds": round(outcome.seconds, 1),
        "hypervolume_test": hv_test,
        "hypervolume_val": finite_hypervolume(outcome.val, reference, maximize),
        "notes": outcome.notes,
    }
    if lattice is not None:
        row["hv_ratio_to_lattice"] = hv_test / finite_hypervolume(lattice.test, reference, maximize)
        row["compute_ratio_to_lattice"] = outcome.steps / lattice.steps
        row["hypervolume_per_step"] = hv_test / outcome.steps if outcome.steps else None
    return row


def trained_outcomes(
    name: str, settings: dict, directory: Path, log, reference, maximize
) -> tuple[list[Outcome], list[dict]]:
    """Every method, side by side on ``settings``: the outcomes, and skip notes."""
    log(f"{name}: lattice")
    outcomes = [lattice_run("lattice", settings, directory, LATTICE_STEP)]
    log(f"{name}: adaptive")
    outcomes.append(adaptive_run(settings, directory))
    log(f"{name}: the lattice of the adaptive design's size")
    outcomes.append(lattice_run("lattice-same-compute", settings, directory, 1 / (outcomes[-1].models - 1)))
    skipped = []
    for algorithm in ("mo-pbt", "pbt"):
        log(f"{name}: {algorithm}")
        outcome = mopbt_run(settings, directory, algorithm)
        (outcomes if isinstance(outcome, Outcome) else skipped).append(outcome)
    log(f"{name}: cosmos")
    outcomes.append(cosmos_run("cosmos", settings, directory))
    if name == "synthetic_linear":
        outcomes.append(cosmos_run("cosmos-mlp", settings, directory, SHARED_MLP))
    log(f"{name}: cosmos, λ tuned on validation")
    outcomes.append(
        cosmos_tuned_run(settings, directory, reference, maximize, SHARED_MLP if name == "synthetic_linear" else None)
    )
    return outcomes, skipped


def cosmos_scan(settings: dict, directory: Path, reference, maximize, grid: Outcome) -> list[dict]:
    """COSMOS's penalty λ and Dirichlet α around its defaults (2, 1.2), shared-output MLP: an
    investigation of its defaults, never a target row."""
    rows = []
    for penalty in (0.0, 2.0, 8.0):
        for alpha in (0.5, 1.2):
            name = f"cosmos-mlp-penalty{penalty:g}-alpha{alpha:g}"
            data = base_config(name, settings, directory) | {"sweep": {"design": "lattice", "step": LATTICE_STEP}}
            data |= {"method": {"name": "cosmos", "options": {"penalty": penalty, "alpha": alpha}}, "model": SHARED_MLP}
            row = describe(run_sweep_method(name, data), reference, maximize, grid)
            rows.append({"penalty": penalty, "alpha": alpha, "hv_ratio_to_lattice": row["hv_ratio_to_lattice"]})
    return rows


def run_benchmark(name: str, directory: Path, log) -> dict:
    settings = BENCHMARKS[name]
    maximize = [False, False] if name == "synthetic_linear" else [True, True]
    out: dict = {"benchmark": name, "settings": settings, "maximize": maximize, "lattice_step": LATTICE_STEP}
    if name == "synthetic_linear":
        exact, reference, problem = linear_reference()
        out["reference_rule"] = "nadir of the exact test front (1,001 weights) + 10% of its range"
        out["exact_front_hypervolume"] = hypervolume(exact, reference, maximize)
    else:
        reference = np.array(MULTIMNIST_REFERENCE)
        out["reference_rule"] = "fixed (0.2, 0.2) test accuracies: twice chance on each digit"
    out["reference"] = reference.tolist()
    outcomes, skipped = trained_outcomes(name, settings, directory, log, reference, maximize)
    rows = [describe(o, reference, maximize, outcomes[0]) for o in outcomes] + skipped
    if name == "synthetic_linear":
        for row in rows:
            if "hypervolume_test" in row:
                row["hv_ratio_to_exact_front"] = row["hypervolume_test"] / out["exact_front_hypervolume"]
        out["targets"] = targets(rows)
        out["exact_policy_scan"] = exact_policy_scan(problem, reference)
        log(f"{name}: cosmos scan")
        out["cosmos_scan"] = cosmos_scan(settings, directory, reference, maximize, outcomes[0])
    out["methods"] = rows
    return out


def targets(rows: list[dict]) -> list[dict]:
    """Pass or fail per target (a skipped method: ``passed`` null, never faked)."""
    by_method = {r["method"]: r for r in rows}
    checks = []
    for method, (hv_min, compute_max) in TARGETS.items():
        row = by_method.get(method)
        check = {
            "method": method,
            "needs": f"hv_ratio_to_lattice >= {hv_min} with compute_ratio_to_lattice <= {compute_max}",
        }
        if row is None or row.get("skipped"):
            check |= {"passed": None, "why": "not run" if row is None else row["reason"]}
        else:
            hv_ok, compute_ok = row["hv_ratio_to_lattice"] >= hv_min, row["compute_ratio_to_lattice"] <= compute_max
            check |= {
                "hv_ratio_to_lattice": round(row["hv_ratio_to_lattice"], 4),
                "compute_ratio_to_lattice": round(row["compute_ratio_to_lattice"], 4),
                "hv_met": hv_ok,
                "compute_met": compute_ok,
                "passed": hv_ok and compute_ok,
            }
        checks.append(check)
    return checks


def plot(results: list[dict], path: Path) -> Path:
    """One panel per benchmark: hypervolume ratio to the lattice against compute ratio, with the
    target corners on synthetic_linear."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 5.4), squeeze=False)
    names = list(
        dict.fromkeys(r["method"] for result in results for r in result["methods"] if "hv_ratio_to_lattice" in r)
    )
    markers, colours = "osD^vP*Xh", plt.get_cmap("tab10").colors
    for axis, result in zip(axes[0], results):
        for row in (r for r in result["methods"] if "hv_ratio_to_lattice" in r):
            index = names.index(row["method"])  # one marker and colour per method in every panel
            axis.scatter(
                row["compute_ratio_to_lattice"],
                row["hv_ratio_to_lattice"],
                s=36,
                marker=markers[index % 9],
                color=colours[index % 10],
                label=f"{row['method']} ({row['hv_ratio_to_lattice']:.3f})",
                zorder=3,
            )
        if result["benchmark"] == "synthetic_linear":
            for hv_min, compute_max, label in (
                (0.99, 0.5, "target: adaptive, MO-PBT"),
                (0.95, 0.25, "target: one run"),
            ):
                axis.add_patch(plt.Rectangle((0, hv_min), compute_max, 0.2, alpha=0.12, label=label))
        axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
        axis.set(
            xscale="log",
            xlabel="compute / lattice's (members × steps)",
            ylabel="hypervolume / lattice's (test)",
            title=result["benchmark"],
            ylim=(0.6, 1.08),
        )
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), choices=list(BENCHMARKS))
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--workdir", help="keep the experiment directories here (default: a temporary one)")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(args.workdir or scratch)
        results = [
            run_benchmark(name, directory / name, lambda line: print(line, flush=True)) for name in args.benchmarks
        ]
    text = json.dumps(
        {
            "benchmarks": results,
            "seconds": round(time.perf_counter() - started, 1),
            "command": "OMP_NUM_THREADS=1 python benchmarks/hypervolume_per_compute.py",
        },
        indent=2,
    )
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
        plot(results, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
