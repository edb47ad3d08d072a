"""The run core: one training run (the step, evaluation, the record it writes, checkpoint and
resume), used by every engine.

Names are imported lazily, so that reading a config (``scalarize.train.config``) does not load
torch: a command with bad input answers at once.
"""

from scalarize.lazy import lazy_exports

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

#: Lazy, so that reading a config does not load torch (a command with bad input answers at once).
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
