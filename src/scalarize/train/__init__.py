"""One training run and an experiment (a run with its single-task baselines)."""

from scalarize.train.config import ConfigError, TrainConfig, load_config
from scalarize.train.evaluate import evaluate
from scalarize.train.experiment import ExperimentResult, prepare, run_experiment
from scalarize.train.record import RunResult
from scalarize.train.trainer import Trainer

__all__ = [
    "ConfigError",
    "ExperimentResult",
    "RunResult",
    "TrainConfig",
    "Trainer",
    "evaluate",
    "load_config",
    "prepare",
    "run_experiment",
]
