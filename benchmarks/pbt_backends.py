"""Local PBT engine against the Ray backend on one machine (PBT issue).

The same search (population, model, epochs, sync interval) runs once in-process on the stacked
population and once on Ray Tune (one trial per member, a local Ray started for it); each is timed
end to end (Ray's start included) and the peak memory of all processes (this one and every
descendant: Ray's daemons and workers) is sampled every 50 ms. Prints JSON; target: local ≥ 3x
faster and ≤ 1/3 of the memory for the small models here.

    python benchmarks/pbt_backends.py [--population 4] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time

import psutil

from scalarize.experiments.pbt import PBTConfig, run_pbt


class PeakMemory:
    """Samples the summed RSS of this process and all its descendants."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
            self.peak = max(self.peak, total)
            time.sleep(self.interval)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def run(backend: str, population: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        config = PBTConfig(
            name="bench",
            benchmark={"name": "multimnist", "options": {"train_size": 2000, "test_size": 500}},
            model={"family": "mlp", "width": 0.5, "depth": 2},
            epochs=epochs,
            batch_size=64,
            stl=False,
            output=directory,
            pbt={"population": population, "interval": 1, "backend": backend, "compare_uniform": False},
        )
        with PeakMemory() as memory:
            started = time.perf_counter()
            result = run_pbt(config, progress=False)
            seconds = time.perf_counter() - started
        if backend == "ray":
            import ray

            ray.shutdown()
    return {
        "seconds": round(seconds, 2),
        "peak_memory_mb": round(memory.peak / 2**20),
        "best_fitness": round(max(f for f in result.fitness if f == f), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    local = run("local", args.population, args.epochs)
    ray = run("ray", args.population, args.epochs)
    print(
        json.dumps(
            {
                "benchmark": "multimnist (2,000 train)",
                "model": "mlp width 0.5 depth 2",
                "population": args.population,
                "epochs": args.epochs,
                "cpus": psutil.cpu_count(),
                "local": local,
                "ray": ray,
                "speedup_local_over_ray": round(ray["seconds"] / local["seconds"], 2),
                "memory_ratio_local_over_ray": round(local["peak_memory_mb"] / ray["peak_memory_mb"], 3),
                "targets": {"speedup": ">= 3", "memory_ratio": "<= 0.333"},
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
