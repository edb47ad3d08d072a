"""Tasks, domains, benchmarks and samplers."""

# The dense kinds (segmentation, depth, normals) and normalized_regression register themselves.
from scalarize.data import dense as _dense  # noqa: E402,F401,I001
from scalarize.data.augment import Augmentation
from scalarize.data.benchmark import SPLITS, Benchmark, DatasetSplit, ImageSplit, Split, carve_validation
from scalarize.data.bundled.synthetic import LinearProblem
from scalarize.data.errors import BenchmarkError
from scalarize.data.registry import (
    available_benchmarks,
    benchmark_options,
    load_benchmark,
    register_benchmark,
)
from scalarize.data.sampling import Batch, Draw, EpochSampler, MixtureSampler, build_sampler
from scalarize.data.storage import ArrayImages, CachedImages, ImageStore, JpegImages
from scalarize.data.streaming import BatchStream, StreamingSampler, population_stream
from scalarize.data.task import MetricAccumulator, Task, TaskKind, available_task_kinds, register_task_kind

__all__ = [
    "SPLITS",
    "ArrayImages",
    "Augmentation",
    "BatchStream",
    "CachedImages",
    "Draw",
    "ImageSplit",
    "ImageStore",
    "JpegImages",
    "StreamingSampler",
    "population_stream",
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
