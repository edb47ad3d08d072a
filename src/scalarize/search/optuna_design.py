"""Optuna as a sweep design: weights proposed by Optuna's samplers, trained batch by batch.

``sweep.design: optuna`` (Akiba et al., "Optuna: a next-generation hyperparameter optimization
framework", KDD 2019) asks Optuna for weight vectors in batches (each batch trains as one
stacked population) and tells it each trial's validation values when the batch is trained.

**Weights on the simplex.** A trial has ``K − 1`` free parameters ``u_i ∈ [0, 1]`` mapped to
the simplex Δ by stick-breaking with Beta(1, K − 1 − i) quantiles (:func:`simplex_weights`):
``v_i = 1 − (1 − u_i)^{1/(K−1−i)}``, ``w_i = v_i ∏_{j<i} (1 − v_j)``, the last weight the rest.
The map is a bijection of the cube's interior onto Δ's and sends the uniform distribution on the
cube to the uniform distribution on Δ (Dirichlet(1); Devroye 1986, §V.4), so a sampler's
random start-up trials are uniform on Δ and every weight vector has one parameter vector. The
common alternative, ``K`` independent ``suggest_float(0, 1)`` normalised, is biased and
redundant: the normalised vector concentrates towards the centre (corners are rarer than under
Dirichlet(1), more so as ``K`` grows) and every ray ``c·x`` gives the same weights, a flat ridge
for a model-based sampler to learn.

**Trials and resume.** Trial ``t`` is sampled by a fresh sampler seeded with
``SeedSequence([seed, t])``, so its weights are a function of the sweep's seed and of the trials
before it in Optuna's storage: a sweep resumed after a kill re-uses the trials it had asked but
not told (state RUNNING: same number, same weights, same members) and asks the missing ones
exactly as an uninterrupted run would have. Optuna's storage is SQLite in the experiment
directory (``optuna.db``) unless ``sweep.optuna.storage`` names a database URL.

Objectives: ``per_task`` (one per task's primary validation metric, each with its direction;
multi-objective samplers: TPE, GP, NSGA-II, NSGA-III) or ``fitness`` (the sweep's scalar
fitness, maximised). A trial's value is the mean over its members (training seeds); a trial
whose members all diverged is told FAIL, one whose members were all stopped early PRUNED.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["SAMPLERS", "OptunaDesign", "import_optuna", "simplex_weights"]

SAMPLERS = ("tpe", "gp", "nsga2", "nsga3", "random")
MISSING = "sweep.design: optuna needs Optuna, not installed: pip install 'scalarize[optuna]'"


def import_optuna() -> Any:
    """The ``optuna`` module, or ImportError with one line naming the extra."""
    try:
        import optuna
    except ImportError:
        raise ImportError(MISSING) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def simplex_weights(u: Sequence[float]) -> NDArray[np.float64]:
    """The point of Δ^{K−1} of ``u ∈ [0, 1]^{K−1}`` by Beta stick-breaking (module docstring).

    >>> simplex_weights([0.0, 0.0]).tolist()
    [0.0, 0.0, 1.0]
    """
    rest, out = 1.0, []
    k = len(u) + 1
    for i, value in enumerate(u):
        v = 1.0 - (1.0 - float(value)) ** (1.0 / (k - 1 - i))
        out.append(rest * v)
        rest -= rest * v
    out.append(max(rest, 0.0))
    w = np.asarray(out, dtype=np.float64)
    normalised: NDArray[np.float64] = w / w.sum()
    return normalised


def _sampler(optuna: Any, name: str, seed: int) -> Any:
    samplers = optuna.samplers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning: multivariate TPE
        if name == "tpe":
            return samplers.TPESampler(seed=seed, multivariate=True)
        if name == "gp":
            return samplers.GPSampler(seed=seed, deterministic_objective=False)
        if name == "nsga2":
            return samplers.NSGAIISampler(seed=seed)
        if name == "nsga3":
            return samplers.NSGAIIISampler(seed=seed)
        if name == "random":
            return samplers.RandomSampler(seed=seed)
    raise ValueError(f"sweep.optuna.sampler: unknown sampler {name!r}; allowed: {', '.join(SAMPLERS)}")


class OptunaDesign:
    """One Optuna study of a sweep: trial ``t``'s weights, and what it is told."""

    def __init__(
        self, study: str, storage: str, sampler: str, seed: int, directions: Sequence[str], num_tasks: int
    ) -> None:
        self.optuna = import_optuna()
        self.sampler_name, self.seed, self.num_tasks = sampler, seed, num_tasks
        _sampler(self.optuna, sampler, seed)  # a bad name fails before the study is written
        self.study = self.optuna.create_study(
            study_name=study, storage=storage, directions=list(directions), load_if_exists=True
        )
        found = [d.name.lower() for d in self.study.directions]
        if found != list(directions):
            raise ValueError(
                f"sweep.optuna: study {study!r} in {storage} has directions {found}, this sweep "
                f"{list(directions)}: use another study name or storage"
            )
        self.distributions = {
            f"u{i}": self.optuna.distributions.FloatDistribution(0.0, 1.0) for i in range(num_tasks - 1)
        }

    def weights(self, first: int, count: int) -> list[tuple[int, NDArray[np.float64]]]:
        """Trials ``first … first + count − 1`` as ``(number, weights)``: those in the storage
        re-used (asked before, told or not), the others asked now, in order."""
        trials = {t.number: t for t in self.study.get_trials(deepcopy=False)}
        out = []
        for number in range(first, first + count):
            trial = trials.get(number)
            if trial is None:
                if number != len(self.study.get_trials(deepcopy=False)):
                    raise ValueError(
                        f"sweep.optuna: the study's trials are not numbered as this sweep's (no trial "
                        f"{number - 1}); is another process asking in it?"
                    )
                trial = self._ask(number)
            out.append((number, simplex_weights([trial.params[f"u{i}"] for i in range(self.num_tasks - 1)])))
        return out

    def _ask(self, number: int) -> Any:
        sequence = np.random.SeedSequence([self.seed, number])
        self.study.sampler = _sampler(self.optuna, self.sampler_name, int(sequence.generate_state(1)[0]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trial = self.study.ask(fixed_distributions=dict(self.distributions))
        if trial.number != number:
            raise ValueError(f"sweep.optuna: asked trial {number}, Optuna numbered it {trial.number}")
        weights = simplex_weights([trial.params[f"u{i}"] for i in range(self.num_tasks - 1)])
        trial.set_user_attr("weights", [float(w) for w in weights])
        return trial

    def told(self, number: int) -> bool:
        """Whether trial ``number`` is finished in the storage (complete, failed or pruned)."""
        trial = self.study.get_trials(deepcopy=False)[number]
        return bool(trial.state.is_finished())

    def tell(self, number: int, values: Sequence[float] | None, state: str = "complete") -> None:
        """Tells trial ``number`` its ``values`` (``state`` complete), or that it failed or was
        pruned (``values`` None); a trial told before is left as it is."""
        states = self.optuna.trial.TrialState
        chosen = {"complete": states.COMPLETE, "fail": states.FAIL, "pruned": states.PRUNED}[state]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.study.tell(
                number, None if values is None else [float(v) for v in values], state=chosen, skip_if_finished=True
            )
