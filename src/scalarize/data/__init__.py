"""Tasks, domains, benchmarks and samplers."""

from scalarize.data.benchmark import SPLITS, Benchmark, Split, carve_validation
from scalarize.data.bundled.synthetic import LinearProblem
from scalarize.data.registry import (
    BenchmarkError,
    available_benchmarks,
    benchmark_options,
    load_benchmark,
    register_benchmark,
)
from scalarize.data.sampling import Batch, EpochSampler, MixtureSampler
from scalarize.data.task import Task

__all__ = [
    "SPLITS",
    "Batch",
    "Benchmark",
    "BenchmarkError",
    "EpochSampler",
    "LinearProblem",
    "MixtureSampler",
    "Split",
    "Task",
    "available_benchmarks",
    "benchmark_options",
    "carve_validation",
    "load_benchmark",
    "register_benchmark",
]
