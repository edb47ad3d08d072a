"""`scalarize sweep` under a kill -9 and with a diverging member (Sweeps issue, robustness)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from scalarize.cli.main import main

# 7 members (lattice step 0.2, and the uniform weights), stacked two at a time: four chunks trained
# one after the other
KILL_CONFIG = (
    "name: k\nbenchmark: {name: multimnist, options: {train_size: 1200, test_size: 200}}\n"
    "model: {width: 0.25}\nepochs: 3\nbatch_size: 20\nstl: false\n"
    "sweep: {step: 0.2, engine: vectorized, chunk_size: 2}\n"
)


def _rows(database, query):
    with sqlite3.connect(database) as db:
        return sorted(db.execute(query).fetchall())


@pytest.mark.slow
def test_kill_9_mid_sweep_then_rerun_trains_only_the_missing_members(tmp_path):
    config = tmp_path / "sweep.yaml"
    config.write_text(KILL_CONFIG)
    command = [sys.executable, "-m", "scalarize.cli.main", "sweep", str(config), "-q"]
    # one intra-op thread: on a busy 2-core machine, tiny models in 2-thread OpenMP regions run
    # ~10x slower (7 s against 67 s for one of these sweeps at load 6); the same for every run
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    reference = tmp_path / "reference"
    subprocess.run([*command, f"output={reference}"], check=True, capture_output=True, env=env)

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, f"output={killed}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    database = killed / "scalarize.db"
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # the first chunk done, the second one evaluated once
            time.sleep(0.02)
            if not database.exists():
                continue
            try:
                with sqlite3.connect(database) as db:
                    done = db.execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()[0]
                    second = db.execute("SELECT COUNT(*) FROM metrics WHERE run = 'k-002'").fetchone()[0]
            except sqlite3.OperationalError:  # tables not created yet
                continue
            if done >= 2 and second > 0:
                break
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = {row[0]: row[1:] for row in _rows(database, "SELECT name, status, finished FROM runs")}
    assert [before[n][0] for n in ("k-000", "k-001", "k-002", "k-003")] == [
        "completed",
        "completed",
        "running",
        "running",
    ]
    assert "k-004" not in before  # the third chunk never started

    rerun = subprocess.run([*command, f"output={killed}"], check=True, capture_output=True, text=True, env=env)
    assert "2 run(s) already trained: read from the store" in rerun.stdout + rerun.stderr
    after = {row[0]: row[1:] for row in _rows(database, "SELECT name, status, finished FROM runs")}
    for name in ("k-000", "k-001"):  # not retrained: finished when the first command finished them
        assert after[name] == before[name]
    assert all(status == "completed" for status, _ in after.values()) and len(after) == 7

    final = "SELECT run, split, name, value FROM final"
    assert _rows(database, final) == _rows(reference / "scalarize.db", final)
    metrics = "SELECT run, evaluation, step, split, name, value FROM metrics"
    assert _rows(database, metrics) == _rows(reference / "scalarize.db", metrics)
    assert (killed / "report.md").read_text() == (reference / "report.md").read_text().replace(
        str(reference), str(killed)
    )


def test_a_member_whose_loss_turns_nan_is_marked_diverged_through_the_sweep_command(tmp_path, capsys):
    config = tmp_path / "sweep.yaml"
    config.write_text(
        "name: d\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 100}}\n"
        f"model: {{width: 0.25}}\nepochs: 2\nbatch_size: 50\nstl: false\noutput: {tmp_path / 'out'}\n"
        "sweep: {step: 1.0, engine: vectorized, factors: {optimizer.lr: [0.001, 1.0e+30]}}\n"
    )
    assert main(["sweep", str(config), "-q"]) == 0
    out = capsys.readouterr().out
    # weights outermost ((0,1), (1,0), (.5,.5)), then lr (1e-3, 1e30): the odd members diverge
    rows = {
        r[0]: r[1:] for r in _rows(tmp_path / "out" / "scalarize.db", "SELECT name, status, step, message FROM runs")
    }
    steps = 2 * 6  # 2 epochs of ceil(300 / 50) steps
    for name in ("d-000", "d-002", "d-004"):
        assert rows[name] == ("completed", steps, "")
    for name in ("d-001", "d-003", "d-005"):
        status, step, message = rows[name]
        assert status == "diverged" and 0 < step < steps and message == f"non-finite loss at step {step}"
    assert "warning: 3 member(s) diverged: d-001, d-003, d-005" in out
    table = {line.split()[0]: line for line in out.splitlines() if line.startswith("d-0")}
    for name in ("d-001", "d-003", "d-005"):
        assert table[name].count("diverged") == 2, table[name]  # both metric cells
    assert "diverged" not in table["d-000"] + table["d-002"] + table["d-004"]
    report = (tmp_path / "out" / "report.md").read_text()
    assert report.count("diverged") == 6
