"""scalarize: tuned scalarization, population-based weight search and MTO baselines for
multi-task and multi-domain learning in PyTorch (after Royer et al., NeurIPS 2023)."""

from scalarize.data import Benchmark, Task, available_benchmarks, load_benchmark
from scalarize.methods import Method, Scalarization, StepContext, available_methods, build_method
from scalarize.models import MultiTaskModel, build_model
from scalarize.store import Store
from scalarize.train import ExperimentResult, RunResult, TrainConfig, Trainer, load_config, run_experiment

__version__ = "0.1.0"

__all__ = [
    "Benchmark",
    "ExperimentResult",
    "Method",
    "MultiTaskModel",
    "RunResult",
    "Scalarization",
    "StepContext",
    "Store",
    "Task",
    "TrainConfig",
    "Trainer",
    "available_benchmarks",
    "available_methods",
    "build_method",
    "build_model",
    "load_benchmark",
    "load_config",
    "run_experiment",
]
