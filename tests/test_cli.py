"""The command line: bad input gives one line, exit code 2, and nothing written."""

import subprocess
import sys
from pathlib import Path

import pytest

from scalarize.cli.main import main

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


BASE = "name: t\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 50}}\nepochs: 1\n"


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        (BASE + "colour: red\n", [], "colour: unknown key; allowed: name, benchmark"),
        (BASE + "optimizer: {lr: fast}\n", [], "optimizer.lr: Input should be a valid number"),
        (BASE + "optimizer: {lr: -1}\n", [], "optimizer.lr: Input should be greater than 0"),
        (BASE + "method: {weights: [1, 2, 3]}\n", [], "method.weights: expected 2 values (one per task), got 3"),
        (BASE + "method: {weights: [1, -2]}\n", [], "method.weights: weights must be >= 0"),
        (BASE + "method: {weights: [0, 0]}\n", [], "method.weights: weights must not all be zero"),
        (BASE + "method: {name: magic}\n", [], "method.name: unknown method 'magic'; allowed:"),
        (BASE, ["benchmark.name=imagenet"], "benchmark.name: unknown benchmark 'imagenet'; allowed:"),
        (BASE, ["model.family=transformer"], "model.family: unknown family 'transformer'; allowed:"),
        (BASE, ["model.nope=1"], "model.nope: unknown key; allowed: family, target, width, depth, options, head"),
        (BASE, ["benchmark.options.size=3"], "benchmark.options.size: unknown option for 'multimnist'"),
        (BASE, ["epochs"], "epochs: an override is key=value"),
        ("epochs: [1\n", [], "not valid YAML (line 2)"),
        ("- 1\n- 2\n", [], "expected a mapping of keys at the top level"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, overrides, expected):
    config = _write(tmp_path, text)
    output = tmp_path / "out"
    code = main(["train", str(config), f"output={output}", *overrides])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("scalarize: error: ") and expected in err, err
    assert not output.exists()


def test_missing_config_file_is_named(tmp_path, capsys):
    assert main(["train", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such config file" in capsys.readouterr().err


def test_export_of_a_non_experiment_directory(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--csv"]) == 2
    assert "not an experiment directory" in capsys.readouterr().err


def test_train_prints_a_table_writes_a_report_and_exports(tmp_path, capsys):
    config = _write(tmp_path, BASE + "model: {width: 0.25}\n")
    output = tmp_path / "out"
    assert main(["train", str(config), f"output={output}", "-q"]) == 0
    out = capsys.readouterr().out
    assert "Δm %" in out and "stl-left" in out and "report:" in out
    assert (output / "report.md").is_file() and (output / "curves.png").is_file() and (output / "report.html").is_file()
    assert main(["export", str(output), "--csv"]) == 0
    header = (output / "export" / "final.csv").read_text().splitlines()[0]
    assert header == "run,split,name,value"


def test_benchmarks_lists_names_and_sizes(capsys):
    assert main(["benchmarks"]) == 0
    out = capsys.readouterr().out
    assert "multimnist" in out and "tasks: left, right" in out and "domains: mnist, uci" in out


def test_a_config_changed_under_the_same_run_name_is_refused(tmp_path, capsys):
    config = _write(tmp_path, BASE + "model: {width: 0.25}\nstl: false\n")
    output = tmp_path / "out"
    assert main(["train", str(config), f"output={output}", "-q"]) == 0
    capsys.readouterr()
    assert main(["train", str(config), f"output={output}", "seed=3", "-q"]) == 2
    assert "already holds run 't' trained with another configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_kill_9_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    import signal
    import sqlite3
    import time

    config = _write(
        tmp_path,
        "name: k\nbenchmark: {name: multimnist, options: {train_size: 3000, test_size: 200}}\n"
        "model: {width: 0.5}\nepochs: 6\nbatch_size: 32\nstl: false\n",
    )
    command = [sys.executable, "-m", "scalarize.cli.main", "train", str(config), "-q"]
    reference = tmp_path / "reference"
    subprocess.run([*command, f"output={reference}"], check=True, capture_output=True)

    killed = tmp_path / "killed"
    process = subprocess.Popen([*command, f"output={killed}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = killed / "scalarize.db"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
        try:  # the database may not exist yet, or not have its tables yet (read-only: never create it)
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
                if db.execute("SELECT COUNT(DISTINCT evaluation) FROM metrics").fetchone()[0] >= 2:
                    break
        except sqlite3.OperationalError:
            continue
    assert process.poll() is None, "the run ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(database) as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "running"
    subprocess.run([*command, f"output={killed}"], check=True, capture_output=True)

    def finals(directory):
        with sqlite3.connect(directory / "scalarize.db") as db:
            return sorted(db.execute("SELECT split, name, value FROM final").fetchall()), sorted(
                db.execute("SELECT evaluation, split, name, value FROM metrics").fetchall()
            )

    assert finals(killed) == finals(reference)


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "scalarize.cli.main", "demo", "--epochs", "1", "--output", str(tmp_path), "-q"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    assert "multimnist" in result.stdout and "digits" in result.stdout and "Δm" in result.stdout
    assert (tmp_path / "multimnist" / "report.html").is_file() and (tmp_path / "digits" / "report.md").is_file()
