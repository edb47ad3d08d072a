"""``scalarize compare``: train every method and uniform scalarization alike, print the table,
write the report."""

from __future__ import annotations

import time
from collections.abc import Callable

from scalarize.store.database import Store


def compare_and_report(config, *, progress: bool = True, say: Callable[[str], None] = print):
    """Runs the comparison (resuming where it stopped), prints its table, writes compare.md."""
    from scalarize.experiments.compare import run_compare
    from scalarize.report.compare import write_compare_report

    started = time.perf_counter()
    result = run_compare(config, progress=progress, log=say)
    with Store(config.experiment_dir()) as store:
        report, table = write_compare_report(result, store)
    say("")
    say(table)
    for run in result.runs:
        outcome = result.results[run.name]
        if outcome.status != "completed":
            say(f"warning: run {run.name} {outcome.status}: {outcome.message}")
        elif outcome.skipped_steps:
            say(f"warning: run {run.name} skipped {outcome.skipped_steps} optimizer step(s): non-finite gradients")
    say(f"\nreport: {report}  (also compare.html; database: {config.experiment_dir() / 'scalarize.db'})")
    say(f"finished in {time.perf_counter() - started:.1f} s")
    return result
