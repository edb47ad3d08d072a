"""Trains a set of members: stacked (vectorised) where it pays, one after another where not.

Members are grouped by architecture (same benchmark, model, optimizer and budget); each group is
split into chunks of at most ``chunk_size`` members, so a large population fits in memory. For
each group the engine is chosen by flag or, with ``auto``, measured: a few steps of the stacked
population against a few steps of one member alone, times the chunk size (batch-norm models
too: their running statistics are stacked buffers). The choice and the measured ratio are
logged.

Completed members are read back from the store, not retrained; an interrupted chunk resumes from
its checkpoint.
"""

from __future__ import annotations

import hashlib
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from scalarize.data.benchmark import Benchmark
from scalarize.methods.scalarization import Scalarization
from scalarize.population.members import Member, architecture_key
from scalarize.population.stacked import StackedPopulation
from scalarize.store.database import Store
from scalarize.train.experiment import train_one
from scalarize.train.setup import build_method_from_config, build_model_from_config
from scalarize.train.trainer import RunResult, Trainer

Engine = Literal["auto", "vectorized", "loop"]
MEASURE_STEPS = 4


def result_from_store(store: Store, name: str) -> RunResult:
    row = store.run(name)
    final = store.final(name)
    by_step: dict[int, dict[str, float]] = {}
    for metric, points in store.history(name, "val").items():
        for step, value in points:
            by_step.setdefault(step, {"step": step})[f"val/{metric}"] = value
    return RunResult(
        name=name, status=row["status"], objectives=[], best_evaluation=-1, best_step=0,
        val=final.get("val", {}), test=final.get("test", {}), steps=row["step"], message=row["message"],
        history=[by_step[s] for s in sorted(by_step)],
    )


def _seconds_per_call(step: Callable[[], object], count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        step()
    return (time.perf_counter() - started) / count


def measure(members: Sequence[Member], benchmark: Benchmark, rounds: int = 5) -> float:
    """Speed-up of stacking ``members`` over training them one after another (> 1: stack).

    Both are timed in alternating rounds (order flipped every round) after a warm-up, and the
    median of the paired ratios is returned: a burst of load from another process hits both
    sides of a round, which keeps the choice steady on a busy machine.
    """
    state = torch.get_rng_state()
    try:
        population = StackedPopulation(members, benchmark, progress=False)
        config = members[0].config
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


def choose_engine(members: Sequence[Member], benchmark: Benchmark, engine: Engine) -> tuple[str, str]:
    """Returns ``(engine, reason)`` for one group of members."""
    config = members[0].config
    if engine == "loop":
        return "loop", "chosen by flag"
    if config.method.name != "scalarization":
        return "loop", f"method {config.method.name!r} is trained one run at a time"
    if len(members) == 1:
        return "loop", "a single member"
    if engine == "vectorized":
        return "vectorized", "chosen by flag"
    ratio = measure(members, benchmark)
    chosen = "vectorized" if ratio >= 1.0 else "loop"
    return chosen, f"measured: stacking {len(members)} members is {ratio:.2f}x the loop"


def train_members(
    members: Sequence[Member],
    benchmark: Benchmark,
    store: Store,
    *,
    engine: Engine = "auto",
    chunk_size: int = 16,
    progress: bool = True,
    log: Callable[[str], None] = lambda _: None,
    on_evaluation: Callable | None = None,
) -> dict[str, RunResult]:
    """Trains every member not yet completed in ``store``; returns every member's result.

    ``on_evaluation(run_name, model, step, evaluation)`` is called for every member after every
    evaluation, whichever engine trains it (see ``Trainer.on_evaluation``).
    """
    results: dict[str, RunResult] = {}
    groups: dict[str, list[Member]] = {}
    for member in members:
        row = store.run(member.name)
        if row is not None and row["status"] in ("completed", "diverged") and row["finished"]:
            results[member.name] = result_from_store(store, member.name)
        else:
            groups.setdefault(architecture_key(member.config), []).append(member)
    if results:
        log(f"{len(results)} member(s) already trained: read from the store")
    for group in groups.values():
        chunks = [group[i : i + chunk_size] for i in range(0, len(group), chunk_size)]
        chosen, reason = choose_engine(chunks[0], benchmark, engine)
        log(f"engine: {chosen} for {len(group)} member(s) ({reason})")
        for chunk in chunks:
            results.update(_train_chunk(chunk, benchmark, store, chosen, progress, on_evaluation))
    return {m.name: results[m.name] for m in members}


def _train_chunk(
    chunk: list[Member], benchmark: Benchmark, store: Store, engine: str, progress: bool, on_evaluation=None
) -> dict[str, RunResult]:
    directory = store.directory / "runs"
    if engine == "loop":
        out = {}
        for member in chunk:
            method = build_method_from_config(member.config)
            method.setup(benchmark.objectives, benchmark.setting)
            out[member.name] = train_one(
                member.config, benchmark, method, store, member.name, "member", member.config.fingerprint(), progress,
                on_evaluation,
            )
        return out
    key = hashlib.sha256("|".join(m.name for m in chunk).encode()).hexdigest()[:12]
    for member in chunk:
        store.start_run(member.name, "member", member.config.model_dump(mode="json"), member.config.fingerprint())
    population = StackedPopulation(
        chunk, benchmark, store=store, checkpoint_path=directory / f"population-{key}.pt",
        progress=progress, label=f"{chunk[0].name}..{chunk[-1].name}",
    )
    if on_evaluation is not None:
        def each_member(population: StackedPopulation) -> None:
            for index, member in enumerate(population.members):
                if population.alive[index]:
                    model = population.member_model(index)
                    on_evaluation(member.name, model, population.step, population.evaluation - 1)

        population.on_evaluation = each_member
    return {r.name: r for r in population.fit()}
