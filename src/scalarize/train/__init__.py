"""The run core: one training run (the step, evaluation, the record it writes, checkpoint and
resume), used by every engine.

Names are imported lazily, so that reading a config (``scalarize.train.config``) does not load
torch: a command with bad input answers at once.
"""

from importlib import import_module

_EXPORTS = {
    "ConfigError": "scalarize.train.config",
    "TrainConfig": "scalarize.train.config",
    "load_config": "scalarize.train.config",
    "evaluate": "scalarize.train.evaluate",
    "RunRecord": "scalarize.train.record",
    "RunResult": "scalarize.train.record",
    "RunSpec": "scalarize.train.run",
    "train_run": "scalarize.train.run",
    "prepare": "scalarize.train.setup",
    "Trainer": "scalarize.train.trainer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'scalarize.train' has no attribute {name!r}")
