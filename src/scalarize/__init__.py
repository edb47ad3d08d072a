"""scalarize: tuned scalarization, population-based weight search and MTO baselines for
multi-task and multi-domain learning in PyTorch (after Royer et al., NeurIPS 2023).

The top-level names are imported lazily, so that the pure-logic layers (``scalarize.search``,
``scalarize.pareto``) load without torch.
"""

from scalarize.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Benchmark": "scalarize.data",
    "Task": "scalarize.data",
    "available_benchmarks": "scalarize.data",
    "load_benchmark": "scalarize.data",
    "Method": "scalarize.methods",
    "Scalarization": "scalarize.methods",
    "StepContext": "scalarize.methods",
    "available_methods": "scalarize.methods",
    "build_method": "scalarize.methods",
    "MultiTaskModel": "scalarize.models",
    "build_model": "scalarize.models",
    "Store": "scalarize.store",
    "ExperimentResult": "scalarize.experiments",
    "RunResult": "scalarize.train",
    "RunSpec": "scalarize.train",
    "TaskKind": "scalarize.data",
    "TrainConfig": "scalarize.train",
    "Trainer": "scalarize.train",
    "load_config": "scalarize.train",
    "register_benchmark": "scalarize.data",
    "register_model": "scalarize.models",
    "register_task_kind": "scalarize.data",
    "run_experiment": "scalarize.experiments",
    "load": "scalarize.trained",
    "TrainedRun": "scalarize.trained",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
