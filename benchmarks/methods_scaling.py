"""Time per step and peak memory of every MTO method against the number of tasks (MTO issue).

On ``synthetic`` with K in {2, 5, 10, 20, 40} tasks (MLP trunk, width 0.5, depth 2, batch 128,
Adam), for every registered method, GradNorm with its norms on the shared representation
(``gradnorm_representation``: ``layer: representation``) and uniform scalarization:

* ``step_time_ms``: one training step as the trainer takes it (forward, ``method.backward``
  through a :class:`~scalarize.methods.StepContext` with the default gradient engine, optimizer
  step, ``after_step`` hook), median over rounds, and ``ratio_to_uniform``: the median over rounds
  of its ratio to a burst of uniform scalarization's steps run right next to it (see
  :func:`time_setups`);
* ``peak_memory_mb``: the peak tensor memory (1 MB = 10^6 bytes) of one step above its start
  (:mod:`scalarize.train.measure`: a dispatch-mode counter on CPU, ``max_memory_allocated`` on CUDA);
* for the methods on per-task gradients, the same method computed the usual way: K separate
  ``backward(retain_graph=True)`` passes, from each task's loss, whose ``.grad`` are copied out
  (and zeroed) one task at a time, then the same aggregation (``usual_step_time_ms`` and
  ``speedup_over_usual``); for PCGrad also from the rows of the stacked loss vector, as LibMTL
  does (``usual_stacked_step_time_ms``);
* ``engines``: the per-task Jacobian alone with each engine (``loop``, ``batched``), both as the
  trainer runs them (one pass through the heads, then the trunk: ``split_loop``,
  ``split_batched``) and from each task's own loss (``loop``, ``batched``: user loops without
  head inputs), with the loop over the rows of the stacked loss vector (``loop_rows``: what
  starting from each task's own loss saves) and with torchjd's autogram Gramian engine (for the
  record: not offered, see methods/context.py), on this MLP and on a small ResNet: what
  ``gradient_engine: auto`` is chosen from.

Steps run as the trainer runs them: methods on per-task gradients get the heads' inputs
(``MultiTaskModel.forward_with_head_inputs``). ``--device cuda`` runs everything on the GPU
(synchronised timings, ``max_memory_allocated``).

Targets (2-core CPU; on a GPU the figures are for the record): loss-space methods <= 1.10x uniform's step (FAMO <= 1.5x); MGDA-UB <= 1.3x;
methods on per-task gradients <= 0.6*K x uniform at K = 10, and faster than the usual way.

Prints JSON and a table; writes the JSON and a PNG (memory and time against K).

    python benchmarks/methods_scaling.py [--quick] [--device cuda] [--output benchmarks/results/methods_scaling.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from scalarize.data import load_benchmark
from scalarize.methods import (
    AFTER_STEP,
    FEATURE_GRADIENTS,
    OWN_OPTIMIZER,
    SHARED_GRADIENTS,
    StepContext,
    available_methods,
    build_method,
)
from scalarize.models import build_model
from scalarize.train.evaluate import task_losses
from scalarize.train.measure import step_memory

LOSS_SPACE = ("uw", "imtl_l", "dwa", "rlw", "famo", "gradnorm")
EXCLUDED = {
    "scheduled_scalarization": "uniform scalarization replaying a PBT schedule: same cost as scalarization",
    "frozen": "fixed weights read from another run: same cost as scalarization",
}
#: Rows for a method with options: name -> (method, options).
VARIANTS = {"gradnorm_representation": ("gradnorm", {"layer": "representation"})}
TASKS = (2, 5, 10, 20, 40)
QUICK_TASKS = (2, 10, 40)


class UsualContext(StepContext):
    """Per-task gradients the usual way: K ``backward(retain_graph=True)`` passes into ``.grad``,
    copied out and zeroed after each. From the task losses themselves (``stacked=False``, the
    best case) or from the rows of the stacked ``[K]`` vector (``stacked=True``, as LibMTL does,
    which also sends zero gradients through every other head)."""

    stacked = False

    def _loop_jacobian(self):
        params = self.shared_params + [p for ps in self.task_params for p in ps]
        rows, task_grads = [], []
        for i in range(self.losses.numel()):
            for p in params:
                p.grad = None
            (self.losses[i] if self.stacked else self._outputs[i]).backward(retain_graph=True)
            rows.append(
                torch.cat(
                    [
                        (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).clone()
                        for p in self.shared_params
                    ]
                )
            )
            own = self.task_params[i] if i < len(self.task_params) else []
            task_grads.append(tuple(None if p.grad is None else p.grad.clone() for p in own))
        for p in params:
            p.grad = None
        return torch.stack(rows), task_grads

    _batched_jacobian = _loop_jacobian


class StackedUsualContext(UsualContext):
    stacked = True


class Setup:
    """A K-task synthetic problem, its model, one method and its optimizer; fixed batches."""

    def __init__(self, bench, batches, method_name: str, usual: str = "", seed: int = 0, device: str = "cpu") -> None:
        torch.manual_seed(seed)
        self.bench, self.batches, self.device = bench, batches, torch.device(device)
        self.context = {"": StepContext, "usual": UsualContext, "stacked": StackedUsualContext}[usual]
        self.model = build_model("mlp", bench.input_shape, bench.tasks, 0.5, 2).to(self.device)
        self.method = make_method(method_name)
        self.method.setup(bench.objectives)
        self.method.to(self.device)
        # as the trainer does: the heads' inputs for methods on per-task gradients
        self.split_heads = not usual and bool(self.method.needs & {SHARED_GRADIENTS, FEATURE_GRADIENTS})
        params = [*self.model.parameters(), *self.method.parameters()]
        if OWN_OPTIMIZER in self.method.needs:
            self.optimizer = self.method.build_optimizer(params, 1e-3)
        else:
            self.optimizer = torch.optim.Adam(params, lr=1e-3)
        self.index = 0

    def _losses(self, x, targets, split=False):
        head_inputs = None
        if split:
            features, head_inputs, outputs = self.model.forward_with_head_inputs(x)
        else:
            features, outputs = self.model(x)
        return features, head_inputs, [t.loss(outputs[t.name], targets[t.name]) for t in self.bench.tasks]

    def step(self) -> None:
        x, targets = self.batches[self.index % len(self.batches)]
        self.index += 1
        features, head_inputs, losses = self._losses(x, targets, self.split_heads)
        context = self.context(
            losses,
            features=features,
            shared_params=self.model.shared_parameters(),
            task_params=self.model.task_parameters(),
            recompute_losses=lambda: torch.stack(self._losses(x, targets)[2]),
            step=self.index,
            head_inputs=head_inputs,
        )
        self.optimizer.zero_grad(set_to_none=True)
        self.method.backward(context)
        self.optimizer.step()
        if AFTER_STEP in self.method.needs:
            self.method.after_step(context)


def problem(num_tasks: int, batch_size: int = 128, num_batches: int = 4, device: str = "cpu"):
    bench = load_benchmark(
        "synthetic", num_tasks=num_tasks, train_size=batch_size * num_batches, val_size=64, test_size=64
    )
    train = bench.split("train")
    batches = [
        (
            train.inputs[i : i + batch_size].to(device),
            {k: v[i : i + batch_size].to(device) for k, v in train.targets.items()},
        )
        for i in range(0, batch_size * num_batches, batch_size)
    ]
    return bench, batches


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_setups(
    setups: dict[str, Setup], steps: int, rounds: int, device: str = "cpu", reference: str = "scalarization"
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Seconds per step of each setup, and its ratio to the reference's (uniform scalarization).

    In every round each setup runs a burst of ``steps`` steps right next to a burst of the
    reference (which goes first flips from round to round), and the pair gives one ratio: a
    ratio is the median over rounds of these paired ratios, so that the machine's speed, which
    drifts over seconds on a shared machine, cancels out.
    """
    for setup in setups.values():  # warm-up (lazy optimizer state, first-call costs)
        for _ in range(2):
            setup.step()

    def burst(setup: Setup) -> float:
        synchronize(device)
        started = time.perf_counter()
        for _ in range(steps):
            setup.step()
        synchronize(device)
        return (time.perf_counter() - started) / steps

    times: dict[str, list[float]] = {name: [] for name in setups}
    ratios: dict[str, list[float]] = {name: [] for name in setups}
    for index in range(rounds):
        for name in setups:
            if name == reference:
                continue
            order = [reference, name] if index % 2 == 0 else [name, reference]
            seconds = {n: burst(setups[n]) for n in order}
            for n in order:
                times[n].append(seconds[n])
            ratios[name].append(seconds[name] / seconds[reference])
    ratios[reference] = [1.0]
    return times, ratios


def make_method(name: str):
    base, options = VARIANTS.get(name, (name, {}))
    return build_method(base, **options)


def category(name: str) -> str:
    name = VARIANTS.get(name, (name,))[0]
    if name == "scalarization":
        return "uniform"
    if name in LOSS_SPACE:
        return "loss space"
    if name == "mgda_ub":
        return "representation"
    return "per-task gradients"


def per_task_gradient_methods(methods: list[str]) -> list[str]:
    return [m for m in methods if SHARED_GRADIENTS in make_method(m).needs and category(m) == "per-task gradients"]


def measure_methods(num_tasks: int, methods: list[str], steps: int, rounds: int, device: str = "cpu") -> list[dict]:
    bench, batches = problem(num_tasks, device=device)
    setups = {m: Setup(bench, batches, m, device=device) for m in methods}
    usual = per_task_gradient_methods(methods)
    setups.update({f"{m} (usual)": Setup(bench, batches, m, usual="usual", device=device) for m in usual})
    if "pcgrad" in usual:  # the Jacobian's cost does not depend on the method: one is enough
        setups["pcgrad (usual, stacked)"] = Setup(bench, batches, "pcgrad", usual="stacked", device=device)
    times, ratios = time_setups(setups, steps, rounds, device)
    rows = []
    for m in methods:
        setup = Setup(bench, batches, m, device=device)
        setup.step()
        setup.step()
        _, peak = step_memory(setup.step, device)
        ratio = statistics.median(ratios[m])
        row = {
            "method": m,
            "category": category(m),
            "num_tasks": num_tasks,
            "step_time_ms": round(statistics.median(times[m]) * 1e3, 3),
            "ratio_to_uniform": round(ratio, 3),
            "peak_memory_mb": round(peak / 1e6, 3),
        }
        if m in usual:
            usual_setup = Setup(bench, batches, m, usual="usual", device=device)
            usual_setup.step()
            usual_setup.step()
            _, usual_peak = step_memory(usual_setup.step, device)
            usual_ratio = statistics.median(ratios[f"{m} (usual)"])
            row.update(
                usual_step_time_ms=round(statistics.median(times[f"{m} (usual)"]) * 1e3, 3),
                speedup_over_usual=round(usual_ratio / ratio, 3),
                usual_peak_memory_mb=round(usual_peak / 1e6, 3),
            )
            if f"{m} (usual, stacked)" in times:
                stacked_ratio = statistics.median(ratios[f"{m} (usual, stacked)"])
                row.update(
                    usual_stacked_step_time_ms=round(statistics.median(times[f"{m} (usual, stacked)"]) * 1e3, 3),
                    speedup_over_usual_stacked=round(stacked_ratio / ratio, 3),
                )
        rows.append(row)
    return rows


def _jacobian_problem(kind: str, num_tasks: int, device: str = "cpu"):
    """A model and ``losses(split)`` returning ``(features, head_inputs or None, [T] losses)``."""
    torch.manual_seed(0)
    if kind == "mlp":
        bench, batches = problem(num_tasks, device=device)
        model = build_model("mlp", bench.input_shape, bench.tasks, 0.5, 2).to(device)
        x, targets = batches[0]

        def head_losses(outputs):
            return task_losses(bench, outputs, targets, None)
    else:
        from torch import nn

        from scalarize.models.multitask import MultiTaskModel
        from scalarize.models.resnet import resnet_trunk

        trunk, size = resnet_trunk((1, 28, 28), width=0.5, depth=1)
        model = MultiTaskModel(trunk, {f"t{i}": nn.Linear(size, 10) for i in range(num_tasks)}).to(device)
        x = torch.randn(64, 1, 28, 28, device=device)
        y = torch.randint(0, 10, (num_tasks, 64), device=device)

        def head_losses(outputs):
            return torch.stack([nn.functional.cross_entropy(outputs[f"t{i}"], y[i]) for i in range(num_tasks)])

    def losses(split: bool = False):
        if split:
            features, head_inputs, outputs = model.forward_with_head_inputs(x)
            return features, head_inputs, head_losses(outputs)
        features, outputs = model(x)
        return features, None, head_losses(outputs)

    return model, losses


def measure_engines(kind: str, num_tasks: int, rounds: int, device: str = "cpu") -> dict:
    """Seconds and peak memory of the per-task Jacobian by each engine (and torchjd's Gramian)."""
    from torchjd.autogram import Engine

    model, losses = _jacobian_problem(kind, num_tasks, device)
    gram_model, gram_losses = _jacobian_problem(kind, num_tasks, device)
    engine = Engine(gram_model.trunk, batch_dim=None)

    def jacobian(name, rows=False, split=False):
        def run():
            features, head_inputs, values = losses(split)
            context = StepContext(
                values.clone() if rows else values,
                features=features,  # a clone hides the stack
                shared_params=model.shared_parameters(),
                task_params=model.task_parameters(),
                gradient_engine=name,
                head_inputs=head_inputs,
            )
            return context.shared_jacobian()

        return run

    def gramian():
        _, _, values = gram_losses()
        matrix = engine.compute_gramian(values)
        values.backward(torch.ones_like(values))  # the weighted backward the Gramian path also needs
        gram_model.zero_grad(set_to_none=True)
        return matrix

    runs = {
        "split_loop": jacobian("loop", split=True),
        "split_batched": jacobian("batched", split=True),
        "loop": jacobian("loop"),
        "batched": jacobian("batched"),
        "loop_rows": jacobian("loop", rows=True),
        "torchjd_gramian": gramian,
    }
    for run in runs.values():
        run()
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            synchronize(device)
            started = time.perf_counter()
            run()
            synchronize(device)
            times[name].append(time.perf_counter() - started)
    row = {"model": kind, "num_tasks": num_tasks}
    for name, run in runs.items():
        _, peak = step_memory(run, device)
        row[f"{name}_ms"] = round(statistics.median(times[name]) * 1e3, 3)
        row[f"{name}_mb"] = round(peak / 1e6, 3)
    return row


def check_targets(rows: list[dict]) -> list[dict]:
    """The issue's targets, with the measured value and whether it is met."""
    out = []
    for row in rows:
        k, name, ratio = row["num_tasks"], row["method"], row["ratio_to_uniform"]
        if row["category"] == "loss space":
            limit = 1.5 if name == "famo" else 1.10
            out.append({"target": f"{name} <= {limit}x uniform", "tasks": k, "value": ratio, "met": ratio <= limit})
        elif row["category"] == "representation":
            out.append({"target": f"{name} <= 1.3x uniform", "tasks": k, "value": ratio, "met": ratio <= 1.3})
        elif row["category"] == "per-task gradients":
            if k == 10:
                out.append(
                    {"target": f"{name} <= 0.6*K x uniform at K=10", "tasks": k, "value": ratio, "met": ratio <= 6.0}
                )
            if "speedup_over_usual" in row:
                out.append(
                    {
                        "target": f"{name} faster than K backward passes",
                        "tasks": k,
                        "value": row["speedup_over_usual"],
                        "met": row["speedup_over_usual"] > 1.0,
                    }
                )
    return out


def plot(rows: list[dict], path: Path, where: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    styles = ["-", "--", ":", "-."]
    for index, method in enumerate(methods):
        mine = sorted((r for r in rows if r["method"] == method), key=lambda r: r["num_tasks"])
        ks = [r["num_tasks"] for r in mine]
        style = dict(
            color=f"C{index % 10}",
            ls=styles[index // 10 % 4],
            marker="o",
            ms=3,
            lw=2.5 if method == "scalarization" else 1.2,
        )
        label = "uniform scalarization" if method == "scalarization" else method
        axes[0].plot(ks, [r["peak_memory_mb"] for r in mine], label=label, **style)
        axes[1].plot(ks, [r["step_time_ms"] for r in mine], label=label, **style)
    for axis, ylabel in zip(axes, ["peak step memory (MB)", "time per step (ms)"]):
        axis.set_xscale("log")
        axis.set_yscale("log")
        ticks = sorted({r["num_tasks"] for r in rows})
        axis.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        axis.set_xticks(ticks, [str(k) for k in ticks])
        axis.set_xlabel("number of tasks K")
        axis.set_ylabel(ylabel)
        axis.grid(alpha=0.3, which="both")
    axes[0].set_title("memory against tasks (synthetic, MLP, batch 128)", fontsize=10)
    axes[1].set_title(f"time per step against tasks ({where})", fontsize=10)
    axes[1].legend(fontsize=7, ncol=1, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    header = ["method", "K", "ms/step", "x uniform", "MB", "usual ms", "speed-up", "LibMTL-style ms", "speed-up"]
    lines = []
    for r in rows:
        lines.append(
            [
                r["method"],
                str(r["num_tasks"]),
                f"{r['step_time_ms']:.2f}",
                f"{r['ratio_to_uniform']:.2f}",
                f"{r['peak_memory_mb']:.2f}",
                f"{r['usual_step_time_ms']:.2f}" if "usual_step_time_ms" in r else "",
                f"{r['speedup_over_usual']:.2f}" if "speedup_over_usual" in r else "",
                f"{r['usual_stacked_step_time_ms']:.2f}" if "usual_stacked_step_time_ms" in r else "",
                f"{r['speedup_over_usual_stacked']:.2f}" if "speedup_over_usual_stacked" in r else "",
            ]
        )
    widths = [max(len(x) for x in column) for column in zip(header, *lines)]
    fmt = lambda cells: "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(line) for line in lines)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"K in {QUICK_TASKS} and fewer rounds")
    parser.add_argument("--tasks", type=int, nargs="+", help="numbers of tasks (default: 2 5 10 20 40)")
    parser.add_argument("--methods", nargs="+", help="a subset of methods (uniform is always added)")
    parser.add_argument("--steps", type=int, default=5, help="steps per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument(
        "--threads",
        type=int,
        help="intra-op threads (default: torch's, 2 on a 2-core CPU); "
        "1 keeps timings stable when another process shares the CPU",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--output", default="benchmarks/results/methods_scaling.json")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available")
    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    tasks = args.tasks or (QUICK_TASKS if args.quick else TASKS)
    rounds = 3 if args.quick else args.rounds
    methods = args.methods or [m for m in available_methods() if m not in EXCLUDED]
    if not args.methods or "gradnorm" in methods:
        methods = [*methods, *(v for v in VARIANTS if v not in methods)]
    methods = ["scalarization", *[m for m in methods if m != "scalarization"]]
    started = time.perf_counter()
    rows: list[dict] = []
    for k in tasks:
        rows += measure_methods(k, methods, args.steps, rounds, args.device)
        print(f"K={k} done ({time.perf_counter() - started:.0f} s)", flush=True)
    engines = [measure_engines("mlp", k, rounds, args.device) for k in tasks]
    engines += [measure_engines("resnet", k, max(2, rounds // 2), args.device) for k in (2, 10)]
    targets = check_targets(rows)
    result = {
        "benchmark": "synthetic (input 64, output 16 per task)",
        "model": "mlp width 0.5 depth 2 (128 units)",
        "batch_size": 128,
        "optimizer": "adam",
        "device": args.device,
        "device_name": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "steps_per_round": args.steps,
        "rounds": rounds,
        "tasks": list(tasks),
        "excluded": EXCLUDED,
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "results": rows,
        "engines": engines,
        "targets": targets,
        "targets_met": sum(t["met"] for t in targets),
        "targets_total": len(targets),
    }
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2))
    where = result["device_name"] if args.device == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    plot(rows, output.with_suffix(".png"), where)
    print(json.dumps(result, indent=2))
    print()
    print(table(rows))
    print()
    for row in engines:
        print(row)
    missed = [t for t in targets if not t["met"]]
    print(f"\ntargets met: {result['targets_met']}/{result['targets_total']}")
    for t in missed:
        print(f"  missed: {t['target']} at K={t['tasks']}: {t['value']}")
    print(f"written: {output} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
