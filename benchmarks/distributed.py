"""Data-parallel scaling (1 -> N processes) and Ray's overhead per PBT exploit on a 2-node cluster.

1. **DDP scaling**: the same run (MultiMNIST, MLP 2x256, global batch 256) trained by one process,
   then by ``torchrun --standalone --nproc-per-node N`` (gloo on the CPU, nccl with ``--device
   cuda``), in alternating rounds; each run reports rank 0's mean seconds per training step
   (the trainer's own timing: warm-up and memory-measured steps left out). Scaling efficiency =
   samples/s on N processes / (N x samples/s on one). For a loss-space method (scalarization:
   one all-reduce of the gradient per step) and a per-task gradient method (PCGrad: one
   all-reduce of the ``[T, n]`` Jacobian and the heads' gradients).
2. **Ray per exploit**: a 4-member PBT (``interval`` 1) on the local engine, then on Ray Tune on a
   2-node cluster started here (``ray.cluster_utils.Cluster``: head and a second node, one CPU
   each), the cluster's start timed apart. Overhead per exploit = (Ray's time - local time) /
   Ray's exploits, and per sync.

    python benchmarks/distributed.py [--nproc 2] [--rounds 3] [--device cpu|cuda] [--skip-ray]
                                     [--out benchmarks/results/distributed.json]

Prints JSON. On a shared 2-core CPU the figures depend on the other load (the machine's load
average is recorded with them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
SRC = HERE.parent.parent / "src"


def _config(method: str, device: str, steps: int, batch: int, output: str):
    from scalarize.train.config import TrainConfig

    return TrainConfig(
        name=f"ddp-{method}",
        benchmark={"name": "multimnist", "options": {"train_size": 4000, "test_size": 200}},
        model={"family": "mlp", "width": 1.0, "depth": 2},
        method={"name": method},
        optimizer={"name": "adam", "lr": 1e-3},
        batch_size=batch,
        steps=steps,
        eval_every=steps,
        device=device,
        stl=False,
        output=output,
    )


def worker(args: argparse.Namespace) -> None:
    """One run, on one process or as a rank of torchrun; rank 0 writes its timing to ``--json``."""
    import torch

    from scalarize.train import distributed
    from scalarize.train.run import RunSpec, build_trainer

    torch.set_num_threads(1)
    context = distributed.init("auto", args.device) if distributed.launched() else None
    with tempfile.TemporaryDirectory() as directory:
        spec = RunSpec(f"ddp-{args.method}", _config(args.method, args.device, args.steps, args.batch, directory))
        trainer = build_trainer(spec, None, checkpoint=False, distributed=context)
        trainer.fit()
    if context is None or context.is_driver:
        seconds = trainer.record.train_seconds / trainer.record.timed_steps
        Path(args.json).write_text(json.dumps({"seconds_per_step": seconds, "timed_steps": trainer.record.timed_steps}))
    if context is not None:
        distributed.shutdown()


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(SRC), env.get("PYTHONPATH", "")] if p)
    env.update(OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    if "GLOO_SOCKET_IFNAME" not in env:
        env["GLOO_SOCKET_IFNAME"] = "lo"
    return env


def _run(nproc: int, method: str, device: str, steps: int, batch: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "timing.json"
        arguments = [
            str(HERE),
            "--worker",
            "--method",
            method,
            "--device",
            device,
            "--steps",
            str(steps),
            "--batch",
            str(batch),
            "--json",
            str(out),
        ]
        if nproc == 1:
            command = [sys.executable, *arguments]
        else:
            command = [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc-per-node",
                str(nproc),
                *arguments,
            ]
        subprocess.run(command, env=_env(), check=True, stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())["seconds_per_step"]


def ddp_scaling(nproc: int, rounds: int, device: str, steps: int, batch: int) -> list[dict]:
    rows = []
    for method in ("scalarization", "pcgrad"):
        times: dict[int, list[float]] = {1: [], nproc: []}
        for round_ in range(rounds):
            for n in (1, nproc) if round_ % 2 == 0 else (nproc, 1):
                times[n].append(_run(n, method, device, steps, batch))
        one, many = statistics.median(times[1]), statistics.median(times[nproc])
        rows.append(
            {
                "method": method,
                "batch": batch,
                "processes": nproc,
                "samples_per_s_1": round(batch / one, 1),
                f"samples_per_s_{nproc}": round(batch / many, 1),
                "speedup": round(one / many, 3),
                "scaling_efficiency": round(one / many / nproc, 3),
                "seconds_per_step": {str(k): [round(t, 5) for t in v] for k, v in times.items()},
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


def ray_overhead(population: int, epochs: int) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from scalarize.backends.ray import RayBackend
    from scalarize.experiments.pbt import PBTConfig, run_pbt
    from scalarize.store import Store

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    def search(backend, directory):
        config = PBTConfig(
            name="bench",
            benchmark={"name": "multimnist", "options": {"train_size": 2000, "test_size": 500}},
            model={"family": "mlp", "width": 0.5, "depth": 2},
            epochs=epochs,
            batch_size=64,
            stl=False,
            output=directory,
            device="cpu",
            pbt={"population": population, "interval": 1, "backend": "local", "compare_uniform": False},
        )
        started = time.perf_counter()
        run_pbt(config, backend=backend, progress=False)
        seconds = time.perf_counter() - started
        with Store(directory) as store:
            lineage = store.lineage("bench")
        return seconds, sum(r["member"] != r["source"] for r in lineage), len({r["time"] for r in lineage}) - 1

    with tempfile.TemporaryDirectory() as directory:
        local, local_exploits, _ = search(None, directory)
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    start = time.perf_counter() - started
    try:
        backend = RayBackend(address=cluster.address)
        with tempfile.TemporaryDirectory() as directory:
            on_ray, exploits, syncs = search(backend, directory)
        nodes = len(set().union(*backend.driver.nodes.values()))
    finally:
        ray.shutdown()
        cluster.shutdown()
    return {
        "population": population,
        "evaluations": epochs,
        "local_seconds": round(local, 2),
        "local_exploits": local_exploits,
        "ray_cluster_start_seconds": round(start, 2),
        "ray_seconds": round(on_ray, 2),
        "ray_exploits": exploits,
        "ray_syncs": syncs,
        "ray_nodes_used": nodes,
        "ray_overhead_per_exploit_seconds": round((on_ray - local) / max(exploits, 1), 2),
        "ray_overhead_per_sync_seconds": round((on_ray - local) / max(syncs, 1), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--skip-ray", action="store_true")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="scalarization", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    result = {
        "machine": {"cpus": os.cpu_count(), "load_average_1min": round(os.getloadavg()[0], 2), "device": args.device},
        "command": " ".join(["python benchmarks/distributed.py", *sys.argv[1:]]),
        "ddp": ddp_scaling(args.nproc, args.rounds, args.device, args.steps, args.batch),
    }
    if not args.skip_ray:
        with contextlib.redirect_stdout(sys.stderr):  # Tune's tables: stdout is this script's JSON
            result["ray"] = ray_overhead(args.population, args.epochs)
    result["machine"]["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
