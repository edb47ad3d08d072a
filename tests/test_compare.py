"""`scalarize compare`: every (method, lr, seed) an ordinary run of the store, STL once, the lr
chosen per method by mean validation score, a table of mean ± std, the methods drawn over a
sweep of the same benchmark, resume, and one-line errors."""

from __future__ import annotations

import math
import sqlite3

import pytest

from scalarize.cli.main import main
from scalarize.experiments.compare import CompareRun, build_runs, choose_learning_rates, load_compare_config
from scalarize.store import Store
from scalarize.train.trainer import RunResult

BASE = (
    "name: c\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 100}}\n"
    "model: {width: 0.25}\nepochs: 1\nbatch_size: 64\ndevice: cpu\n"
)


def _write(tmp_path, text, name="compare.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _runs(database):
    with sqlite3.connect(database) as db:
        return {row[0]: row[1:] for row in db.execute("SELECT name, kind, status, finished FROM runs")}


def test_compare_trains_every_run_reports_and_resumes(tmp_path, capsys):
    config = _write(
        tmp_path,
        BASE + "compare:\n  methods: [{name: pcgrad}, {name: uw, label: uncertainty}]\n"
        "  seeds: [0, 1]\n  lr_grid: [0.001, 0.003]\n",
    )
    output = tmp_path / "out"
    assert main(["compare", str(config), f"output={output}", "-q"]) == 0
    out = capsys.readouterr().out
    for label in ("uniform", "pcgrad", "uncertainty"):
        assert f"\n{label} " in out
    assert "Δm %" in out and "ms/step" in out and "step MiB" in out and "lr 0.003" in out
    runs = _runs(output / "scalarize.db")
    compare = {n for n, (kind, _, _) in runs.items() if kind == "compare"}
    assert len(compare) == 3 * 2 * 2 and "pcgrad-lr0.003-s1" in compare
    assert {n for n, (kind, _, _) in runs.items() if kind == "stl"} == {"stl-left", "stl-right"}
    assert all(status == "completed" for _, status, _ in runs.values())
    assert (output / "compare.md").is_file() and (output / "compare.html").is_file()
    assert (output / "compare_front.png").is_file()
    with Store(output) as store:
        costs = store.costs("pcgrad-lr0.001-s0")
        assert costs["seconds_per_step"] > 0 and costs["step_memory_bytes"] > 0
        config_row = store.run("uncertainty-lr0.003-s1")
    assert '"name": "uw"' in config_row["config"] and '"seed": 1' in config_row["config"]

    # run again: nothing is retrained, the same table comes out
    table = out[out.index("method ") : out.index("report:")]
    assert main(["compare", str(config), f"output={output}", "-q"]) == 0
    again = capsys.readouterr().out
    assert _runs(output / "scalarize.db") == runs
    assert again[again.index("method ") : again.index("report:")] == table


def test_the_methods_are_drawn_over_a_sweep_of_the_same_benchmark(tmp_path, capsys):
    output = tmp_path / "out"
    sweep = _write(tmp_path, BASE + "sweep: {design: lattice, step: 0.5}\n", "sweep.yaml")
    assert main(["sweep", str(sweep), f"output={output}", "-q"]) == 0
    compare = _write(tmp_path, BASE + "compare: {methods: [{name: mgda_ub}], seeds: [0]}\n")
    assert main(["compare", str(compare), f"output={output}", "-q"]) == 0
    text = (output / "compare.md").read_text()
    assert "over 3 scalarization sweep members of the same benchmark" in text
    assert "| mgda_ub | 0.001 | 1/1 |" in text


def test_same_config_gives_the_same_numbers(tmp_path):
    """Methods that draw their seed (pcgrad's random order) draw it from the run's seed."""
    from scalarize.experiments.compare import run_compare

    text = BASE + "stl: false\ncompare: {methods: [{name: pcgrad}, {name: rlw}], seeds: [3]}\n"
    results = []
    for name in ("a", "b"):
        config = load_compare_config(_write(tmp_path, text), [f"output={tmp_path / name}"])
        results.append(run_compare(config, progress=False).results)
    for run in results[0]:
        assert results[0][run].test == results[1][run].test


def _result(score_left, status="completed"):
    val = {"left/accuracy": score_left, "right/accuracy": score_left} if status == "completed" else {}
    return RunResult(
        name="r",
        status=status,
        objectives=["left", "right"],
        best_evaluation=0,
        best_step=0,
        val=val,
        test=val,
        steps=1,
    )


def test_the_learning_rate_with_the_best_mean_validation_score_is_kept():
    from scalarize.data import load_benchmark

    bench = load_benchmark("multimnist", train_size=300, test_size=100)
    runs = [CompareRun("m", lr, seed, None) for lr in (0.1, 0.01, 0.001) for seed in (0, 1)]
    names = [f"{r.lr}-{r.seed}" for r in runs]
    runs = [CompareRun(r.label, r.lr, r.seed, type("C", (), {"name": n})()) for r, n in zip(runs, names)]
    scores = {"0.1-0": 0.9, "0.1-1": 0.1, "0.01-0": 0.6, "0.01-1": 0.6, "0.001-0": 0.6, "0.001-1": 0.6}
    results = {n: _result(s) for n, s in scores.items()}
    means, chosen = choose_learning_rates(runs, results, bench)
    assert means[("m", 0.1)] == pytest.approx(0.5) and chosen == {"m": 0.01}  # ties keep the first
    results["0.01-1"] = _result(0.0, status="diverged")
    means, chosen = choose_learning_rates(runs, results, bench)
    assert means[("m", 0.01)] == -math.inf and chosen == {"m": 0.001}


def test_runs_are_ordinary_configs_with_uniform_first(tmp_path):
    config = load_compare_config(
        _write(
            tmp_path,
            BASE + "compare:\n  methods: [{name: scalarization}, {name: cagrad, options: {c: 0.2}}]\n  seeds: [0, 1]\n",
        )
    )
    runs = build_runs(config)
    assert [r.name for r in runs] == [
        "uniform-lr0.001-s0",
        "uniform-lr0.001-s1",
        "cagrad-lr0.001-s0",
        "cagrad-lr0.001-s1",
    ]
    assert runs[2].config.method.options == {"c": 0.2} and runs[3].config.seed == 1
    assert runs[0].config.method.name == "scalarization" and runs[0].config.method.weights is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "compare: {methods: [{name: pcgrad}, {name: pcgrad}]}\n",
            "compare.methods.1: a second entry labelled 'pcgrad'; give each a distinct label",
        ),
        ("compare: {methods: [{name: cagrad, options: {c: 2}}]}\n", "method cagrad: c must be in [0, 1), got 2"),
        ("compare: {methods: [{name: magic}]}\n", "method.name: unknown method 'magic'; allowed:"),
        (
            "compare: {methods: [{name: cagrad, options: {radius: 1}}]}\n",
            "method.options.radius: unknown option for method 'cagrad'; allowed: c, rescale",
        ),
        ("compare: {lr_grid: [0.001, -1]}\n", "compare.lr_grid.1: Input should be greater than 0"),
        ("compare: {seeds: []}\n", "compare.seeds: List should have at least 1 item"),
        ("compare: {method: [{name: pcgrad}]}\n", "compare.method: unknown key; allowed: methods, seeds, lr_grid"),
        (
            "compare: {methods: [{name: pcgrad, option: {}}]}\n",
            "compare.methods.0.option: unknown key; allowed: name, options, weights, label",
        ),
        ("compare: {methods: [{name: pcgrad, label: 'a b'}]}\n", "compare.methods.0.label: 'a b': use letters"),
    ],
)
def test_bad_compare_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, text, expected):
    output = tmp_path / "out"
    code = main(["compare", str(_write(tmp_path, BASE + text)), f"output={output}", "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("scalarize: error: ") and expected in err, err
    assert not output.exists()
