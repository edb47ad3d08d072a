"""``scalarize train`` and ``scalarize demo``: run experiments, print the table, write the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from scalarize.experiments.train import ExperimentResult, run_experiment
from scalarize.report.describe import method_text, settings_text
from scalarize.report.experiment import format_table, results_rows, write_report
from scalarize.store.database import Store
from scalarize.train.config import TrainConfig


def run_and_report(
    config: TrainConfig, *, progress: bool = True, say: Callable[[str], None] = print
) -> ExperimentResult:
    """Trains ``config`` (resuming where it stopped), prints the results, writes the report."""
    started = time.perf_counter()
    result = run_experiment(config, progress=progress, log=say)
    stl_runs = {o: f"stl-{o}" for o in result.stl}
    runs = [config.name, *stl_runs.values()]
    with Store(result.directory) as store:
        header, rows = results_rows(store, runs, result.primary, stl_runs, result.delta, config.single_task)
        method = method_text(config, [o.split("/")[0] for o, _ in result.primary])
        report = write_report(
            store,
            f"{config.name}: {method} on {config.benchmark.name}",
            runs,
            result.primary,
            stl_runs,
            notes=[
                f"Run {config.name}: {method}. Settings: {settings_text(config)}",
                *(
                    [f"Single-task baselines ({', '.join(stl_runs.values())}): the same settings, one objective each."]
                    if stl_runs
                    else []
                ),
                *skipped_steps_notes([result.main, *result.stl.values()]),
            ],
            delta=result.delta,
            single_task=config.single_task,
        )
    say("")
    say(format_table(header, rows))
    if result.main.status != "completed":
        say(f"warning: run {config.name} {result.main.status}: {result.main.message}")
    for note in skipped_steps_notes([result.main, *result.stl.values()]):
        say(f"warning: {note}")
    say(f"\nreport: {report}  (also report.html; database: {result.directory / 'scalarize.db'})")
    say(f"finished in {time.perf_counter() - started:.1f} s")
    return result


def skipped_steps_notes(results) -> list[str]:
    """One line per run that skipped optimizer steps because of non-finite gradients."""
    return [
        f"run {r.name} skipped {r.skipped_steps} optimizer step(s): non-finite gradients; training went on"
        for r in results
        if r.skipped_steps
    ]


def sweep_and_report(config, *, progress: bool = True, say: Callable[[str], None] = print):
    """Trains a sweep (resuming where it stopped), prints the front, writes the report."""
    from scalarize.experiments.sweep import run_sweep
    from scalarize.report.sweep import write_sweep_report

    started = time.perf_counter()
    result = run_sweep(config, progress=progress, log=say)
    report, table = write_sweep_report(result, config.experiment_dir())
    say("")
    say(table)
    diverged = [n for n, r in result.results.items() if r.status == "diverged"]
    if diverged:
        say(f"warning: {len(diverged)} member(s) diverged: {', '.join(diverged)}")
    say(f"\nreport: {report}  (also report.html; database: {config.experiment_dir() / 'scalarize.db'})")
    say(f"finished in {time.perf_counter() - started:.1f} s")
    return result


def pbt_and_report(config, *, sweep: Path | None = None, progress: bool = True, say: Callable[[str], None] = print):
    """Runs a PBT/PB2 search (resuming where it stopped), prints the comparison, writes the report."""
    from scalarize.experiments.pbt import run_pbt
    from scalarize.report.pbt import write_pbt_report

    started = time.perf_counter()
    result = run_pbt(config, progress=progress, log=say)
    with Store(config.experiment_dir()) as store:
        total = max(row["step"] for row in store.runs() if row["name"] == result.best_name)
        report, table = write_pbt_report(result, store, total, sweep)
    say("")
    say(table)
    say(f"\nreport: {report}  (also report.html; best model: {config.experiment_dir() / 'best_model.pt'})")
    say(f"finished in {time.perf_counter() - started:.1f} s")
    return result


def replay_and_report(
    directory: Path,
    *,
    seeds=None,
    device: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
    trust: bool = False,
):
    """Retrains the best PBT schedule and uniform scalarization with the same seeds, prints the
    comparison, writes replay.md."""
    from scalarize.experiments.replay import replay
    from scalarize.report.replay import write_replay_report

    started = time.perf_counter()
    result = replay(directory, seeds=seeds, device=device, progress=progress, log=say, trust=trust, hint="pass --trust")
    report, table = write_replay_report(result)
    say("")
    say(table)
    for runs in (result.replay, result.uniform):
        for run in runs.values():
            if run.status != "completed":
                say(f"warning: run {run.name} {run.status}: {run.message}")
    say(f"\nreport: {report}  (also replay.html; database: {Path(directory) / 'scalarize.db'})")
    say(f"finished in {time.perf_counter() - started:.1f} s")
    return result


def study_and_report(config, *, progress: bool = True, say: Callable[[str], None] = print):
    """Runs the scaling study (resuming where it stopped), prints its table, writes the report."""
    from scalarize.experiments.study import run_study
    from scalarize.report.study import write_study_report

    started = time.perf_counter()
    result = run_study(config, progress=progress, log=say)
    report, table = write_study_report(result)
    say("")
    say(table)
    say(f"\nreport: {report}  (also report.html and the CSV files beside it)")
    say(f"finished in {time.perf_counter() - started:.1f} s")
    return result


DEMO_BENCHMARKS = (
    ("multimnist", "two tasks on one input: the left and the right digit of MultiMNIST"),
    ("digits", "one task over two domains, MNIST and UCI digits, mixed by sampling ratios"),
)


def run_demo(
    output: Path,
    *,
    epochs: int = 5,
    device: str | None = None,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    """Uniform scalarization against single-task models on the two bundled image benchmarks."""
    say("scalarize demo: one shared model trained by uniform scalarization vs one model per objective")
    for name, description in DEMO_BENCHMARKS:
        say(f"\n== {name}: {description}")
        config = TrainConfig(
            name="uniform",
            benchmark={"name": name},
            model={"family": "mlp", "width": 1.0, "depth": 2},
            epochs=epochs,
            batch_size=128,
            output=str(output / name),
            **({"device": device} if device else {}),
        )
        run_and_report(config, progress=progress, say=say)
    from scalarize.cli.shipped import shipped_configs_text

    say(
        "\nNext: `scalarize init -o my.yaml` writes a starter config (every key commented; shipped examples in "
        f"{shipped_configs_text()}), then `scalarize train my.yaml`; `scalarize export DIR --csv` for spreadsheets."
    )
