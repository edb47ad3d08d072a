"""One module per command: each turns its config into a plan of ordinary runs (or a PBT
search), validated once, hands it to a backend (:mod:`scalarize.backends`) and returns a typed
result for the report.

* :mod:`~scalarize.experiments.train`: a run and its single-task baselines;
* :mod:`~scalarize.experiments.sweep`: a design of weights trained as populations;
* :mod:`~scalarize.experiments.compare`: MTO methods against uniform scalarization;
* :mod:`~scalarize.experiments.pbt`: population-based training of the weights;
* :mod:`~scalarize.experiments.replay`: a PBT schedule retrained from scratch;
* :mod:`~scalarize.experiments.study`: best weights and gains over model sizes.
"""

from scalarize.lazy import lazy_exports

_EXPORTS = {"ExperimentResult": "scalarize.experiments.train", "run_experiment": "scalarize.experiments.train"}

__all__ = sorted(_EXPORTS)

#: Lazy, so that reading a config does not load torch (a command with bad input answers at once).
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
