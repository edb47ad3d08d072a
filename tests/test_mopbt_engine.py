"""`scalarize pbt --algorithm mo-pbt` on the local engine: the front it returns, resume, report, errors."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

from scalarize.cli.main import main
from scalarize.experiments.pbt import PBTConfig, run_pbt
from scalarize.pareto import pareto_front
from scalarize.population import StackedPopulation
from scalarize.search import MOPBTPolicy
from scalarize.store import Store

OPTIONS = {"num_tasks": 2, "relatedness": 0.0, "train_size": 400, "val_size": 200, "test_size": 200}
NAMES = ["task0/mse", "task1/mse"]  # both lower is better


def _config(path, **pbt):
    return PBTConfig(
        name="mo",
        benchmark={"name": "synthetic_linear", "options": OPTIONS},
        model={"family": "linear", "depth": 0},
        optimizer={"lr": 0.05},
        epochs=6,
        batch_size=100,
        stl=False,
        output=str(path),
        pbt={"population": 6, "interval": 1, "algorithm": "mo-pbt", "compare_uniform": False, **pbt},
    )


def _saved(path) -> dict:
    return json.loads((path / "pbt_result.json").read_text())


def test_mo_pbt_returns_the_populations_front(tmp_path):
    result = run_pbt(_config(tmp_path), progress=False)
    saved = _saved(tmp_path)
    assert (saved["algorithm"], saved["diversity"]) == ("mo-pbt", "scattered")
    objectives = np.array([[result.results[m.name].val[n] for n in NAMES] for m in result.members])
    front = sorted(m["name"] for m in saved["front"])
    # exactly the non-dominated members of the population (validation, both minimised)
    expected = sorted(result.members[i].name for i in pareto_front(objectives, [False, False]))
    assert front == expected and len(front) >= 2
    assert saved["best"] == saved["front"][0]["name"] == result.best_name
    for entry in saved["front"]:
        index = [m.name for m in result.members].index(entry["name"])
        assert [entry["objectives"][n] for n in NAMES] == pytest.approx(objectives[index].tolist())
        assert (tmp_path / entry["model"]).is_file()
        lineage = entry["lineage"]
        assert lineage[0]["time"] == 0 and lineage[0]["member"] == lineage[0]["source"]
        assert lineage[-1]["member"] == entry["name"] or lineage[-1]["time"] == 0
        assert [s for s, _ in entry["schedule"]] == [r["step"] for r in lineage]
        assert [w for _, w in entry["schedule"]] == [r["weights"] for r in lineage]
        assert sum(entry["effective_weights"]) == pytest.approx(1.0)
    with Store(tmp_path) as store:
        assert any(r["member"] != r["source"] for r in store.lineage("mo"))  # it exploited


def test_mo_pbt_resumes_bit_exactly(tmp_path, interrupt_at_checkpoint):
    run_pbt(_config(tmp_path / "a", diversity="crowding"), progress=False)
    interrupt_at_checkpoint(StackedPopulation, 3)
    with pytest.raises(KeyboardInterrupt):
        run_pbt(_config(tmp_path / "b", diversity="crowding"), progress=False)
    run_pbt(_config(tmp_path / "b", diversity="crowding"), progress=False)
    a, b = _saved(tmp_path / "a"), _saved(tmp_path / "b")
    assert a["front"] == b["front"] and a["schedule"] == b["schedule"]
    with Store(tmp_path / "a") as first, Store(tmp_path / "b") as second:
        assert first.lineage("mo") == second.lineage("mo")


@pytest.mark.parametrize("diversity", ["crowding", "hypervolume"])
def test_each_diversity_order_runs(tmp_path, diversity):
    result = run_pbt(_config(tmp_path, diversity=diversity, population=4), progress=False)
    assert _saved(tmp_path)["diversity"] == diversity
    assert 1 <= len(result.front) <= 4 and result.front[0] == result.best


def test_the_policy_is_mo_pbts_with_the_metrics_directions(tmp_path):
    policy = _config(tmp_path, diversity="hypervolume").policy([("a/acc", True), ("b/mse", False)])
    assert isinstance(policy, MOPBTPolicy)
    assert (policy.maximize, policy.diversity) == ((True, False), "hypervolume")


def test_cli_reports_the_front(tmp_path, capsys):
    path = tmp_path / "mo.yaml"
    path.write_text(
        f"name: mo\nbenchmark: {{name: synthetic_linear, options: {json.dumps(OPTIONS)}}}\n"
        "model: {family: linear, depth: 0}\noptimizer: {lr: 0.05}\nepochs: 4\nbatch_size: 100\nstl: false\n"
        f"output: {tmp_path / 'out'}\npbt: {{population: 4, compare_uniform: false}}\n"
    )
    assert main(["pbt", str(path), "--algorithm", "mo-pbt", "--diversity", "hypervolume", "-q"]) == 0
    out = capsys.readouterr().out
    assert "front: " in out and "weights (lr-weighted)" in out
    report = (tmp_path / "out" / "report.md").read_text()
    assert "MO-PBT" in report and "Hypervolume of the population" in report and "![front](front.png)" in report
    for name in ("front.png", "lineage.png", "report.html"):
        assert (tmp_path / "out" / name).is_file()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("pbt.diversity=nsga", "pbt.diversity: Input should be 'scattered', 'crowding' or 'hypervolume'"),
        ("pbt.algorithm=mopbt", "pbt.algorithm: Input should be 'pbt', 'pb2' or 'mo-pbt'"),
        ("pbt.diversity=crowding", "pbt.diversity: only for pbt.algorithm mo-pbt; got algorithm 'pbt'"),
    ],
)
def test_bad_mo_pbt_configs_are_one_line_errors(tmp_path, capsys, override, expected):
    path = tmp_path / "pbt.yaml"
    path.write_text(f"name: p\nbenchmark: {{name: digits}}\noutput: {tmp_path / 'out'}\npbt: {{}}\n")
    assert main(["pbt", str(path), override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


class _Trial:
    """What PolicyPBT reads of a Tune trial."""

    def __init__(self, index: int, weights) -> None:
        self.trial_id = f"abc_{index:05d}"
        self.config = {"w0": weights[0], "w1": weights[1]}

    def is_finished(self) -> bool:
        return False


def test_the_ray_scheduler_takes_the_policys_decisions():
    pytest.importorskip("ray")
    from scalarize.backends.ray import DIVERGED_FITNESS, PolicyPBT

    policy = MOPBTPolicy(interval=1, seed=5, maximize=(False, False), diversity="hypervolume")
    objectives = np.array([[0.3, 2.0], [1.0, 1.0], [2.0, 0.3], [2.5, 2.5], [1.2, 1.3], [np.nan, np.nan]])
    weights = np.random.default_rng(0).dirichlet([1, 1], size=6)
    trials = [_Trial(i, w) for i, w in enumerate(weights)]
    scheduler = PolicyPBT(policy, 2, 0.01)
    for trial, values in zip(reversed(trials), objectives[::-1]):  # Tune's order does not matter
        fitness = DIVERGED_FITNESS if np.isnan(values).any() else -float(values.mean())
        scheduler._trial_state[trial] = SimpleNamespace(
            last_result={"fitness": fitness, "objectives": values.tolist()}, last_train_time=3
        )
    lower, upper = scheduler._quantiles()
    hyper = [{"weights": w / w.sum(), "lr": 0.01} for w in weights]
    decisions = policy.decide(objectives, hyper, step=3)
    moves = {d.member: d for d in decisions if d.exploited}
    assert [int(t.trial_id[-1]) for t in lower] == sorted(moves) and 5 in moves  # the diverged one is replaced
    assert {int(t.trial_id[-1]) for t in upper} == {d.source for d in moves.values()}
    for trial in lower:
        member = int(trial.trial_id[-1])
        source = trials[moves[member].source]
        config, _ = scheduler._get_new_config(trial, source)
        assert [config["w0"], config["w1"]] == pytest.approx(moves[member].weights.tolist())
