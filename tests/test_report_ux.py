"""Reports that say what was trained, and figures that can be read: each fix checked on the
figure's artists (the PNGs were looked at too)."""

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from scalarize.cli.main import main
from scalarize.experiments.compare import CompareConfig, CompareResult, build_runs
from scalarize.experiments.sweep import SweepConfig, SweepResult, build_members
from scalarize.pareto import hypervolume
from scalarize.report import compare as compare_report
from scalarize.report import experiment as experiment_report
from scalarize.report import pbt as pbt_report
from scalarize.report import study as study_report
from scalarize.report import sweep as sweep_report
from scalarize.store.database import Store
from scalarize.train.record import RunResult

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = "benchmark: {name: synthetic, options: {num_tasks: 2, train_size: 80, val_size: 40, test_size: 40}}\n"


@pytest.fixture
def figures(monkeypatch):
    """``figures(module)``: the figures ``module`` saves, drawn and kept for inspection."""
    kept = []

    def capture(module):
        original = module.save_figure

        def keep(fig, path):
            fig.canvas.draw()
            fig.test_renderer = fig.canvas.get_renderer()  # the canvas goes when the figure is closed
            kept.append(fig)
            return original(fig, path)

        monkeypatch.setattr(module, "save_figure", keep)
        return kept

    return capture


def _result(name, test, val=None, status="completed", seconds=None):
    return RunResult(
        name=name,
        status=status,
        objectives=[],
        best_evaluation=0,
        best_step=0,
        val=val if val is not None else test,
        test=test,
        steps=1,
        seconds_per_step=seconds,
    )


def _overlapping(texts, renderer):
    boxes = [t.get_window_extent(renderer) for t in texts]
    return [
        (a.get_text(), b.get_text()) for (a, x), (b, y) in itertools.combinations(zip(texts, boxes), 2) if x.overlaps(y)
    ]


# -- 5: every report says what was trained -------------------------------------------------------
def test_the_train_report_states_method_weights_seed_and_settings(tmp_path, capsys, figures, one_thread):
    legends = figures(experiment_report)
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: multimnist-uniform\n" + SYNTHETIC + "model: {width: 0.125, depth: 1}\nepochs: 1\n"
        f"batch_size: 40\nseed: 3\ndevice: cpu\noutput: {tmp_path / 'out'}\n"
    )
    assert main(["train", str(path), "method.weights=[0.7,0.3]", "-q"]) == 0
    out = capsys.readouterr().out
    assert "scalarization (task0 0.7, task1 0.3)" in out and "single-task (task0)" in out
    report = (tmp_path / "out" / "report.md").read_text()
    title = report.splitlines()[0]
    assert title == "# multimnist-uniform: scalarization (task0 0.7, task1 0.3) on synthetic"
    assert "seed 3" in report and "model mlp width 0.125 depth 1" in report and "1 epochs, batch 40" in report
    assert "| multimnist-uniform | scalarization (task0 0.7, task1 0.3) |" in report
    html = (tmp_path / "out" / "report.html").read_text()
    assert "task0 0.7, task1 0.3" in html and "seed 3" in html
    labels = {
        t.get_text() for fig in legends for axis in fig.axes if axis.get_legend() for t in axis.get_legend().get_texts()
    }
    assert "multimnist-uniform: scalarization (task0 0.7, task1 0.3)" in labels
    assert "stl-task1: single-task (task1)" in labels


# -- 7: sweeps over several seeds ---------------------------------------------------------------
def _sweep(step=0.25, seeds=(0, 1, 2), objectives=2, scale=1.0, stl=None):
    config = SweepConfig(name="s", stl=stl is not None, sweep={"step": step, "seeds": list(seeds)})
    members = build_members(config, objectives)
    names = [f"t{i}/accuracy" for i in range(objectives)]
    results = {}
    for m in members:
        w = np.asarray(m.weights)
        values = 0.5 + 0.4 * np.sqrt(w) + 0.01 * np.sin(7 * m.seed + np.arange(objectives))
        values[0] *= scale
        results[m.name] = _result(m.name, dict(zip(names, values.tolist())))
    stl_results = {}
    if stl is not None:
        stl_results = {
            f"t{i}": _result(f"stl-t{i}", {names[i]: stl[i] * (scale if i == 0 else 1)}) for i in range(objectives)
        }
    return SweepResult(config, members, results, stl_results, [(n, True) for n in names])


def test_a_sweep_over_seeds_reports_mean_and_std_per_weight_and_the_front_of_the_means(tmp_path, figures):
    result = _sweep()
    header, rows = sweep_report.front_rows(result)
    assert header[:3] == ["weights", "seeds", "t0/accuracy (mean ± std)"]
    assert len(rows) == 5  # five weightings, three seeds each
    points = result.points()
    by_weight = {tuple(m.weights): [] for m in result.members}
    for i, m in enumerate(result.members):
        by_weight[tuple(m.weights)].append(points[i])
    means = np.array([np.mean(v, axis=0) for v in by_weight.values()])
    stds = np.array([np.std(v, axis=0, ddof=1) for v in by_weight.values()])
    half = next(r for r in rows if r[0] == "(0.50, 0.50)")
    index = list(by_weight).index((0.5, 0.5))
    assert half[1] == "3/3" and half[2] == f"{means[index, 0]:.4f} ± {stds[index, 0]:.4f}"
    stats = sweep_report.summary(result)
    assert stats["settings"] == 5 and stats["members"] == 15
    assert stats["hypervolume"] == pytest.approx(hypervolume(means, means.min(axis=0), [True, True]))
    drawn = figures(sweep_report)
    sweep_report.plot_front(result, tmp_path / "front.png")
    faint = [c for c in drawn[0].axes[0].collections if c.get_alpha() is not None and c.get_alpha() < 0.5]
    assert sum(len(c.get_offsets()) for c in faint) == 15  # every seed, faintly
    assert "mean ± std over seeds" in [t.get_text() for t in drawn[0].axes[0].get_legend().get_texts()]


# -- 6: figures that can be read -------------------------------------------------------------------
def test_the_fronts_weight_labels_never_overlap_and_are_readable(tmp_path, figures):
    drawn = figures(sweep_report)
    sweep_report.plot_front(_sweep(step=0.05, seeds=(0,)), tmp_path / "front.png")
    fig = drawn[0]
    renderer = fig.test_renderer
    for axis in fig.axes[:-1]:  # the last axes is the colour bar
        labels = [t for t in axis.texts if t.get_text().replace(".", "").isdigit()]
        assert len(labels) >= 8
        assert _overlapping(labels, renderer) == []
        assert min(t.get_fontsize() for t in labels) >= 9


def test_the_simplex_colour_ignores_the_objectives_scales():
    for stl in (None, [0.6, 0.6, 0.6]):
        plain, scaled = (
            _sweep(step=0.25, seeds=(0,), objectives=3, stl=stl),
            _sweep(step=0.25, seeds=(0,), objectives=3, scale=1000.0, stl=stl),
        )
        means = np.array([s.mean for s in sweep_report.settings_of(plain)])
        means_scaled = np.array([s.mean for s in sweep_report.settings_of(scaled)])
        colour, label = sweep_report.simplex_colour(plain, means)
        again, _ = sweep_report.simplex_colour(scaled, means_scaled)
        assert np.allclose(colour, again) and np.ptp(colour) > 0
        assert ("Δm" in label) == (stl is not None)


def _compare(tmp_path, timings=None):
    config = CompareConfig(
        name="c",
        output=str(tmp_path),
        compare={"methods": [{"name": "pcgrad"}, {"name": "cagrad", "options": {"c": 0.2}}], "seeds": [0, 1]},
    )
    runs = build_runs(config)
    timings = timings or {"uniform": (0.010, 0.0101), "pcgrad": (0.020, 0.0202), "cagrad": (0.030, 0.031)}
    results = {}
    for run in runs:
        centre = {"uniform": 0.80, "pcgrad": 0.801, "cagrad": 0.802}[run.label]
        results[run.name] = _result(
            run.name,
            {"a/accuracy": centre + 0.001 * run.seed, "b/accuracy": centre - 0.001 * run.seed},
            seconds=timings[run.label][run.seed],
        )
    stl = {"a": _result("stl-a", {"a/accuracy": 0.82}), "b": _result("stl-b", {"b/accuracy": 0.84})}
    primary = [("a/accuracy", True), ("b/accuracy", True)]
    return CompareResult(
        config,
        "bench",
        ["a", "b"],
        primary,
        ["uniform", "pcgrad", "cagrad"],
        runs,
        results,
        stl,
        chosen_lr={"uniform": 0.001, "pcgrad": 0.001, "cagrad": 0.001},
    )


def test_the_compare_table_shows_the_single_task_values_behind_delta_m(tmp_path):
    header, rows = compare_report.summary_rows(_compare(tmp_path))
    last = rows[-1]
    assert last[0] == "single-task (stl-a, stl-b)" and last[3:6] == ["0.8200", "0.8400", "0 (reference)"]


def test_noisy_timings_and_a_busy_machine_are_flagged(tmp_path):
    result = _compare(tmp_path, {"uniform": (0.050, 0.100), "pcgrad": (0.020, 0.0202), "cagrad": (0.03, 0.031)})
    _, rows = compare_report.summary_rows(result)
    assert rows[0][-3].endswith("(noisy)") and not rows[1][-3].endswith("(noisy)")
    with Store(tmp_path) as store:
        for run in result.runs:
            store.record_costs(run.name, {"load_average_max": 1.5, "cpu_count": 2.0})
        assert compare_report.machine_load(result, store).startswith("Warning: ms/step is unreliable here: step times")
        store.record_costs(result.runs[0].name, {"load_average_max": 5.25, "cpu_count": 2.0})
        assert "load average reached 5.2 on 2 CPU(s)" in compare_report.machine_load(result, store)
    quiet = _compare(tmp_path / "quiet")
    with Store(tmp_path / "quiet") as store:
        for run in quiet.runs:
            store.record_costs(run.name, {"load_average_max": 0.9, "cpu_count": 2.0})
        assert (
            compare_report.machine_load(quiet, store)
            == "Timings: the 1-minute load average stayed at or below 0.9 on 2 CPU(s)."
        )


def test_crowded_methods_get_a_zoom_panel_with_distinct_markers(tmp_path, figures):
    drawn = figures(compare_report)
    result = _compare(tmp_path)
    sweep = np.array([[0.2, 0.9], [0.5, 0.7], [0.9, 0.3]])
    compare_report.plot_methods(result, sweep, tmp_path / "compare_front.png")
    fig = drawn[0]
    panels = [axis for axis in fig.axes if axis.get_xlabel()]
    assert len(panels) == 2
    low, high = panels[1].get_xlim()
    assert high - low < 0.05  # the methods lie within 0.003 of each other; the full view spans 0.7
    markers = {
        (line.get_color(), line.get_marker()) for line in panels[1].get_lines() if line.get_marker() not in ("None", "")
    }
    assert len(markers) >= 3
    labels = {t.get_text() for t in panels[1].texts}
    assert labels == {"uniform", "pcgrad", "cagrad"}
    spread = {"uniform": np.array([0.2, 0.9]), "pcgrad": np.array([0.9, 0.3])}
    assert compare_report.method_zoom(spread, {k: np.zeros(2) for k in spread}, sweep, None) is None


LINEAGE = [  # four members, three syncs; the best (m3) descends from m2 <- m0
    *({"time": 0, "step": 0, "member": m, "source": m} for m in ("m0", "m1", "m2", "m3")),
    {"time": 1, "step": 10, "member": "m2", "source": "m0"},
    {"time": 1, "step": 10, "member": "m1", "source": "m0"},
    {"time": 2, "step": 20, "member": "m3", "source": "m2"},
    {"time": 2, "step": 20, "member": "m0", "source": "m2"},
]


def test_the_lineage_highlights_the_best_members_ancestry_and_spreads_arrows(tmp_path, figures):
    assert pbt_report.ancestry(LINEAGE, "m3") == [
        ("m3", (2, "m3"), None),
        ("m2", (1, "m2"), (2, "m3")),
        ("m0", None, (1, "m2")),
    ]
    index = {m: i for i, m in enumerate(("m0", "m1", "m2", "m3"))}
    x = pbt_report._arrow_positions(LINEAGE, index)
    assert x[(1, "m1")] != x[(1, "m2")] and x[(2, "m0")] != x[(2, "m3")]
    assert all(abs(v - step) < 10 for (time, _), v in x.items() for step in [time * 10])
    drawn = figures(pbt_report)
    pbt_report.plot_lineage(LINEAGE, list(index), 30, tmp_path / "lineage.png", best="m3")
    axis = drawn[0].axes[0]
    bold = [a for a in axis.texts if getattr(a, "arrow_patch", None) and a.arrow_patch.get_linewidth() > 2]
    assert len(bold) == 2  # m0 -> m2 and m2 -> m3
    assert "m3 (best)" in [t.get_text() for t in axis.get_yticklabels()]


def test_study_deltas_are_centred_at_zero_and_coloured_by_direction(tmp_path, figures):
    drawn = figures(study_report)
    rows = [
        {
            "group": "a+b",
            "depth": d,
            "width": w,
            "seed": 0,
            "weights": [0.5, 0.5],
            "delta": {"a": 0.01 * d - 0.005 * w, "b": -0.03 * d},
        }
        for d in (1, 2)
        for w in (0.5, 1.0)
    ]
    study_report.plot_sizes(rows, ["a+b"], [1, 2], [0.5, 1.0], tmp_path, higher={"a": True, "b": False})
    images = [axis.images[0] for axis in drawn[0].axes if axis.images]
    weights, delta_a, delta_b = images
    assert weights.norm.vmin == 0 and weights.norm.vmax == 1
    for image in (delta_a, delta_b):
        assert image.norm(0.0) == pytest.approx(0.5)  # white, at the centre of the diverging map
    assert delta_a.cmap.name == "RdBu" and delta_b.cmap.name == "RdBu_r"  # lower is better for b


def test_the_methods_scaling_panel_is_readable_and_says_where_it_was_measured(tmp_path, figures):
    source = tmp_path / "methods_scaling.json"
    methods = ["scalarization", *(f"method{i:02d}" for i in range(22))]
    records = [
        {"method": m, "num_tasks": k, "step_time_ms": 2.0 * k * (1 + i / 10), "peak_memory_mb": 0.1 * k}
        for i, m in enumerate(methods)
        for k in (2, 5, 10, 20, 40)
    ]
    source.write_text(
        json.dumps(
            {
                "device": "cpu",
                "device_name": "x86_64",
                "threads": 2,
                "torch": "2.13.0",
                "load_average_before_after": [1.1, 1.8],
                "results": records,
            }
        )
    )
    drawn = figures(study_report)
    path, rows, provenance = study_report.plot_methods(source, tmp_path)
    assert path is not None and len(rows) == len(records)
    fig = drawn[0]
    for axis in fig.axes:
        assert [t.get_text() for t in axis.get_xticklabels()] == ["2", "5", "10", "20", "40"]
        assert all(not t.get_text() for t in axis.get_xticklabels(minor=True))
        looks = [(line.get_color(), line.get_marker(), line.get_linestyle()) for line in axis.get_lines()]
        assert len(looks) == len(methods) and len(set(looks)) == len(methods)
    assert "not by this study" in fig.texts[0].get_text() if fig.texts else fig._suptitle.get_text()
    assert "cpu, x86_64, 2 thread(s), torch 2.13.0; load average 1.1 before, 1.8 after" in provenance


# -- 8: PBT on equal footing ---------------------------------------------------------------------
def test_the_shipped_pbt_config_uses_the_cosine_schedule_as_train_and_sweep_do():
    from scalarize.experiments.pbt import load_pbt_config
    from scalarize.experiments.sweep import load_sweep_config
    from scalarize.train.config import load_config

    pbt = load_pbt_config(ROOT / "configs" / "multimnist-pbt.yaml")
    assert pbt.schedule == load_config(ROOT / "configs" / "multimnist.yaml").schedule
    assert pbt.schedule == load_sweep_config(ROOT / "configs" / "multimnist-sweep.yaml").schedule
    assert pbt.schedule.name == "cosine"


def test_replay_trains_the_schedule_and_uniform_with_the_same_seeds_and_writes_a_report(tmp_path, capsys, one_thread):
    path = tmp_path / "pbt.yaml"
    path.write_text(
        "name: p\n" + SYNTHETIC + "model: {width: 0.125, depth: 1}\nschedule: {name: cosine}\nepochs: 3\n"
        f"batch_size: 40\ndevice: cpu\nstl: false\noutput: {tmp_path / 'out'}\npbt: {{population: 3}}\n"
    )
    assert main(["pbt", str(path), "-q"]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "What is selected on what" in report and "best validation fitness among the 3" in report
    capsys.readouterr()
    assert main(["pbt", "replay", str(tmp_path / "out"), "--seeds", "5", "6", "-q"]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'out' / 'replay.md'}" in out
    replay = (tmp_path / "out" / "replay.md").read_text()
    assert "selected on validation" in replay and "replay − uniform (paired by seed)" in replay
    with Store(tmp_path / "out") as store:
        configs = {
            name: json.loads(store.run(name)["config"])
            for name in ("p-replay-s5", "p-replay-s6", "p-uniform-s5", "p-uniform-s6")
        }
    for seed in (5, 6):
        replayed, uniform = configs[f"p-replay-s{seed}"], configs[f"p-uniform-s{seed}"]
        assert replayed["seed"] == uniform["seed"] == seed
        assert replayed["method"]["name"] == "scheduled_scalarization" and uniform["method"]["name"] == "scalarization"
        for key in ("schedule", "epochs", "optimizer", "model", "batch_size"):
            assert replayed[key] == uniform[key], key
    assert math.isfinite(float(replay.split("replay − uniform (paired by seed) | 2 | ")[1].split(" ±")[0]))
