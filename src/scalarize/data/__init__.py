"""Tasks, domains, benchmarks and samplers."""

from scalarize.data.benchmark import SPLITS, Benchmark, DatasetSplit, Split, carve_validation
from scalarize.data.bundled.synthetic import LinearProblem
from scalarize.data.registry import (
    BenchmarkError,
    available_benchmarks,
    benchmark_options,
    load_benchmark,
    register_benchmark,
)
from scalarize.data.sampling import Batch, EpochSampler, MixtureSampler, build_sampler
from scalarize.data.task import MetricAccumulator, Task, TaskKind, available_task_kinds, register_task_kind

__all__ = [
    "SPLITS",
    "Batch",
    "Benchmark",
    "BenchmarkError",
    "DatasetSplit",
    "MetricAccumulator",
    "TaskKind",
    "available_task_kinds",
    "build_sampler",
    "register_task_kind",
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
