"""Trains a set of runs locally: stacked (vectorised) where it pays, one after another where not.

Runs are grouped by architecture (same benchmark, model, optimizer and budget); each group is
split into chunks of at most ``chunk_size`` runs, so a large population fits in memory. For
each group the engine is chosen by flag or, with ``auto``, by a rule on the model and the device
(:func:`auto_engine`), never by a timing: the stacked population and the loop agree only to
float32 rounding, so a timed choice would make the numbers depend on the machine's load. The
choice is stored in the experiment's database and reused when the command is run again.

Completed runs are read back from the store, not retrained; an interrupted chunk resumes from
its checkpoint; a chunk's members are finished in one transaction.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from scalarize.methods.scalarization import Scalarization
from scalarize.population.members import Member, architecture_key
from scalarize.population.stacked import StackedPopulation
from scalarize.store.database import Store
from scalarize.train.devices import resolve_device
from scalarize.train.record import RunResult
from scalarize.train.run import is_finished, result_from_store, train_run
from scalarize.train.setup import benchmark_from_config, build_model_from_config
from scalarize.train.trainer import Trainer

Engine = Literal["auto", "vectorized", "loop"]
MEASURE_STEPS = 4


def _seconds_per_call(step: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count


def measure(members: Sequence[Member], benchmark=None, rounds: int = 5) -> float:
    """Speed-up of stacking ``members`` over training them one after another (> 1: stack).

    Both are timed in alternating rounds (order flipped every round) after a warm-up, and the
    median of the paired ratios is returned: a burst of load from another process hits both
    sides of a round. Used by ``benchmarks/population_speed.py``; :func:`auto_engine` does not time.
    """
    config = members[0].config
    benchmark = benchmark if benchmark is not None else benchmark_from_config(config.benchmark)
    state = torch.get_rng_state()
    try:
        population = StackedPopulation(members, benchmark, progress=False)
        torch.manual_seed(config.seed)
        model = build_model_from_config(config, benchmark)
        single = Trainer(config, benchmark, model, Scalarization(config.method.weights), progress=False)
        for _ in range(2):  # warm-up (the trainer measures its second step's memory, slowly)
            population.train_step()
            single.train_step()
        ratios = []
        for round_ in range(rounds):
            pair = [(population.train_step, True), (single.train_step, False)]
            timings = {}
            for step, stacked in pair if round_ % 2 == 0 else pair[::-1]:
                timings[stacked] = _seconds_per_call(step, MEASURE_STEPS)
            ratios.append(len(members) * timings[False] / timings[True])
    finally:
        torch.set_rng_state(state)
    return float(statistics.median(ratios))


def auto_engine(members: Sequence[Member]) -> tuple[str, str]:
    """``auto``: stack on a GPU, and on a CPU when the trunk is dense (every shared parameter a
    vector or a matrix); the loop for convolutional trunks on a CPU: the rule that
    ``benchmarks/population_speed.py`` supports (its figures, per device, are in the README)."""
    config = members[0].config
    if resolve_device(config.device).type == "cuda":
        return "vectorized", "a population on a GPU"
    try:
        with torch.device("meta"):
            model = build_model_from_config(config, benchmark_from_config(config.benchmark))
    except Exception:  # noqa: BLE001 - a builder that cannot run on the meta device
        return "loop", "a model that cannot be inspected on the meta device"
    if all(p.dim() <= 2 for p in model.shared_parameters()):
        return "vectorized", "a dense trunk on the CPU"
    return "loop", "a convolutional trunk on the CPU (stacked convolutions are slower there)"


def stackable_inputs(benchmark) -> bool:
    """Whether the training inputs are tensors a stacked population can vmap over (graph batches,
    e.g. QM9's molecules, are not)."""
    split = next(iter(benchmark.domains.values()))["train"]
    return bool(split.sample_shape)


def choose_engine(members: Sequence[Member], benchmark=None, engine: Engine = "auto") -> tuple[str, str]:
    """Returns ``(engine, reason)`` for one group of members."""
    config = members[0].config
    if len(members) == 1:
        return "loop", "a single run"
    if engine == "loop":
        return "loop", "as configured (engine: loop)"
    benchmark = benchmark if benchmark is not None else benchmark_from_config(config.benchmark)
    if not stackable_inputs(benchmark):
        return "loop", "inputs that are not tensors (e.g. graphs) cannot be stacked"
    if config.method.name != "scalarization":
        return "loop", f"method {config.method.name!r} is trained one run at a time"
    if config.early_stopping.patience is not None:
        return "loop", "early stopping ends each run on its own (a sweep's own: sweep.early_stopping)"
    if engine == "vectorized":
        return "vectorized", "as configured (engine: vectorized)"
    return auto_engine(members)


def _group_engine(store: Store, group: list[Member], engine: Engine) -> tuple[str, str]:
    """The engine of a group: decided once, stored, and reused when the command runs again."""
    key = "engine:" + hashlib.sha256("|".join(m.name for m in group).encode()).hexdigest()[:16]
    stored = store.setting(key)
    if stored is not None and engine == "auto":
        return stored, "as when this group was first trained (stored)"
    chosen, reason = choose_engine(group, None, engine)
    store.set_setting(key, chosen)
    return chosen, reason


def train_members(
    members: Sequence[Member],
    store: Store,
    *,
    engine: Engine = "auto",
    chunk_size: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    on_evaluation: Callable | None = None,
) -> dict[str, RunResult]:
    """Trains every run not yet finished in ``store``; returns every run's result.

    ``on_evaluation(run_name, model, step, evaluation)`` is called for every run after every
    evaluation, whichever engine trains it (see ``Trainer.on_evaluation``).
    """
    results: dict[str, RunResult] = {}
    groups: dict[str, list[Member]] = {}
    for member in members:
        if is_finished(store, member.name):
            results[member.name] = result_from_store(store, member.name)
        else:
            groups.setdefault(architecture_key(member.config), []).append(member)
    if results:
        log(f"{len(results)} run(s) already trained: read from the store")
    for group in groups.values():
        chosen, reason = _group_engine(store, group, engine)
        log(f"engine: {chosen} for {len(group)} run(s) ({reason})")
        for start in range(0, len(group), chunk_size):
            chunk = group[start : start + chunk_size]
            results.update(_train_chunk(chunk, store, chosen, progress, log, on_evaluation))
    return {m.name: results[m.name] for m in members}


def _train_chunk(
    chunk: list[Member], store: Store, engine: str, progress: bool, log: Callable[[str], None], on_evaluation=None
) -> dict[str, RunResult]:
    if engine == "loop":
        out = {}
        for member in chunk:
            log(f"training {member.name}")
            out[member.name] = train_run(member, store, progress=progress, on_evaluation=on_evaluation)
        return out
    key = hashlib.sha256("|".join(m.name for m in chunk).encode()).hexdigest()[:12]
    for member in chunk:
        store.start_run(member.name, member.kind, member.config.model_dump(mode="json"), member.fingerprint)
    checkpoint = store.directory / "runs" / f"population-{key}.pt"
    population = StackedPopulation(
        chunk,
        benchmark_from_config(chunk[0].config.benchmark),
        store=store,
        checkpoint_path=checkpoint,
        progress=progress,
        label=f"{chunk[0].name}..{chunk[-1].name}",
    )
    if on_evaluation is not None:

        def each_member(population: StackedPopulation) -> None:
            for index, member in enumerate(population.members):
                if population.alive[index]:
                    model = population.member_model(index)
                    on_evaluation(member.name, model, population.step, population.evaluation - 1)

        population.on_evaluation = each_member
    results = {r.name: r for r in population.fit()}
    checkpoint.unlink(missing_ok=True)  # every member is finished in the store (one transaction)
    return results
