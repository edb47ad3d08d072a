"""The run core: one training run (the step, evaluation, the record it writes, checkpoint and
resume), used by every engine."""

from scalarize.train.config import ConfigError, TrainConfig, load_config
from scalarize.train.evaluate import evaluate
from scalarize.train.record import RunRecord, RunResult
from scalarize.train.run import RunSpec, train_run
from scalarize.train.setup import prepare
from scalarize.train.trainer import Trainer

__all__ = [
    "ConfigError",
    "RunRecord",
    "RunResult",
    "RunSpec",
    "TrainConfig",
    "Trainer",
    "evaluate",
    "load_config",
    "prepare",
    "train_run",
]
