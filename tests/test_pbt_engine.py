import json

import numpy as np
import pytest
import torch

from scalarize.cli.main import main
from scalarize.data import load_benchmark
from scalarize.experiments.pbt import PBTConfig, run_pbt
from scalarize.experiments.replay import root_member
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation
from scalarize.store import Store
from scalarize.train import TrainConfig, Trainer

SMALL = {"name": "multimnist", "options": {"train_size": 400, "test_size": 100}}


def _config(tmp_path, **pbt):
    return PBTConfig(
        name="p",
        benchmark=SMALL,
        model={"width": 0.25},
        epochs=4,
        batch_size=50,
        optimizer={"lr": 0.003},
        stl=False,
        output=str(tmp_path),
        pbt={"population": 4, "interval": 1, "compare_uniform": False, **pbt},
    )


def test_exploit_copies_parameters_optimizer_state_and_weights():
    bench = load_benchmark("multimnist", train_size=400, test_size=100)
    base = TrainConfig(benchmark=SMALL, model={"width": 0.25}, epochs=1, batch_size=50)
    members = [
        Member(f"m{i}", base.model_copy(update={"seed": i, "method": base.method.model_copy(update={"weights": w})}))
        for i, w in enumerate([[0.1, 0.9], [0.8, 0.2]])
    ]
    population = StackedPopulation(members, bench, progress=False)
    population.run_until(3)
    population.copy_member(1, 0)
    for value in population.params.values():
        assert torch.equal(value[0], value[1])
    for state in population.optimizer.state.values():
        assert torch.equal(state["exp_avg"][0], state["exp_avg"][1])
    assert torch.equal(population.weights[0], population.weights[1])


def test_a_per_member_learning_rate_equals_training_alone_with_that_rate():
    bench = load_benchmark("multimnist", train_size=400, test_size=100)
    base = TrainConfig(benchmark=SMALL, model={"width": 0.25}, epochs=1, batch_size=50, optimizer={"lr": 0.004})
    members = [Member(f"m{i}", base.model_copy(update={"seed": i})) for i in range(2)]
    population = StackedPopulation(members, bench, progress=False)
    population.lr_scale[1] = 0.25
    stacked = population.fit()
    alone_config = base.model_copy(update={"seed": 1, "optimizer": base.optimizer.model_copy(update={"lr": 0.001})})
    torch.manual_seed(1)
    model = build_model("mlp", bench.input_shape, bench.tasks, 0.25, 2)
    alone = Trainer(alone_config, bench, model, Scalarization(), progress=False).fit()
    for key, value in alone.history[-1].items():
        assert stacked[1].history[-1][key] == pytest.approx(value, abs=1e-5, rel=1e-5)


def test_pbt_records_a_lineage_whose_schedule_ends_with_the_best_members_weights(tmp_path):
    result = run_pbt(_config(tmp_path), progress=False)
    assert len(result.members) == 4 and 0 <= result.best < 4
    with Store(tmp_path) as store:
        lineage = store.lineage("p")
    assert [r["time"] for r in lineage[:4]] == [0, 0, 0, 0]
    copies = [r for r in lineage if r["member"] != r["source"]]
    assert len(copies) == 3  # one of 4 members copied at each of the 3 syncs (not after the last epoch)
    for row in lineage:
        assert sum(row["weights"]) == pytest.approx(1.0)
    # the schedule's last weights are the best member's current weights
    assert result.schedule[-1][1] == pytest.approx(lineage_weights(lineage, result.best_name))
    assert json.loads((tmp_path / "pbt_result.json").read_text())["best"] == result.best_name
    assert (tmp_path / "best_model.pt").is_file()


def lineage_weights(lineage, member):
    rows = [r for r in lineage if r["member"] == member]
    return rows[-1]["weights"]


def test_pbt_is_deterministic_and_resumes_from_its_last_sync(tmp_path, interrupt_at_checkpoint):
    reference = run_pbt(_config(tmp_path / "a"), progress=False)
    interrupt_at_checkpoint(StackedPopulation, 2)
    with pytest.raises(KeyboardInterrupt):
        run_pbt(_config(tmp_path / "b"), progress=False)
    resumed = run_pbt(_config(tmp_path / "b"), progress=False)
    assert resumed.schedule == reference.schedule and resumed.test == reference.test
    with Store(tmp_path / "a") as a, Store(tmp_path / "b") as b:
        assert a.lineage("p") == [dict(r) for r in b.lineage("p")]


def test_a_population_of_one_is_refused(tmp_path):
    """One member has no one to copy: the search would be a single run (the CLI says so in one line)."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="greater than or equal to 2"):
        _config(tmp_path, population=1)


def test_root_member_follows_copies_backwards():
    lineage = [
        {"time": 1, "member": "a", "source": "b"},
        {"time": 2, "member": "b", "source": "c"},
        {"time": 3, "member": "c", "source": "a"},
    ]
    assert root_member(lineage, "c") == "b"  # c <- a at 3, a <- b at 1 (b's copy of c at 2 is later)
    assert root_member(lineage, "b") == "c"


def test_pbt_finds_the_best_fixed_weights_of_the_linear_problem(tmp_path):
    """On synthetic_linear the best fixed weights for a preference are known in closed form."""
    options = {"num_tasks": 2, "relatedness": 0.0, "noise": 0.5}
    preference = [0.9, 0.1]
    config = PBTConfig(
        name="lin",
        benchmark={"name": "synthetic_linear", "options": options},
        model={"family": "linear", "depth": 0},
        optimizer={"lr": 0.05},
        epochs=20,
        batch_size=200,
        stl=False,
        output=str(tmp_path),
        pbt={
            "population": 8,
            "interval": 2,
            "fitness": {"name": "weighted", "preference": preference},
            "compare_uniform": False,
        },
    )
    result = run_pbt(config, progress=False)
    problem = load_benchmark("synthetic_linear", **options).extras["problem"]
    _, optimum = problem.optimal_weights("val", preference=preference)
    final = np.array(result.schedule[-1][1])
    objective = float(np.dot(preference, problem.losses(final, "val")))
    uniform = float(np.dot(preference, problem.losses([0.5, 0.5], "val")))
    assert uniform > 1.5 * optimum  # the search matters here
    assert objective <= 1.02 * optimum


def test_pbt_cli_report_and_replay(tmp_path, capsys):
    path = tmp_path / "pbt.yaml"
    path.write_text(
        "name: p\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 100}}\n"
        "model: {width: 0.25}\nepochs: 3\nbatch_size: 50\n"
        f"output: {tmp_path / 'out'}\npbt: {{population: 3}}\n"
    )
    assert main(["pbt", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "PBT best" in out and "uniform (p-uniform)" in out
    for name in ("schedule.png", "fitness.png", "lineage.png", "report.md", "report.html"):
        assert (tmp_path / "out" / name).is_file()
    assert main(["pbt", "replay", str(tmp_path / "out"), "--seeds", "0", "-q"]) == 0
    assert "replay of its schedule" in capsys.readouterr().out
    with Store(tmp_path / "out") as store:
        assert store.run("p-replay-s0")["status"] == "completed"


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("pbt.quantile=0.9", "pbt.quantile: Input should be less than or equal to 0.5"),
        ("pbt.fitness=best", "pbt.fitness: fitness: unknown spec 'best'"),
        ("pbt.factors=[]", "pbt.factors: List should have at least 1 item"),
        ("method.name=pcgrad", "method.name: PBT searches scalarization weights"),
    ],
)
def test_bad_pbt_configs_are_one_line_errors(tmp_path, capsys, override, expected):
    path = tmp_path / "pbt.yaml"
    path.write_text(f"name: p\nbenchmark: {{name: digits}}\noutput: {tmp_path / 'out'}\npbt: {{}}\n")
    assert main(["pbt", str(path), override]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_replay_of_a_directory_without_pbt_is_a_one_line_error(tmp_path, capsys):
    Store(tmp_path).close()
    assert main(["pbt", "replay", str(tmp_path)]) == 2
    assert "pbt_result.json: missing" in capsys.readouterr().err


def test_the_lr_weighted_weights_discount_late_weights():
    from scalarize.experiments.pbt import lr_weighted_weights

    schedule = [(0, [0.3, 0.7]), (8, [0.9, 0.1])]
    assert lr_weighted_weights(schedule, lambda t: 1.0, 10) == pytest.approx(
        [0.3 * 0.8 + 0.9 * 0.2, 0.7 * 0.8 + 0.1 * 0.2]
    )
    decaying = lambda t: 1.0 if t < 8 else 0.0  # noqa: E731 - the learning rate is 0 once the weights change
    assert lr_weighted_weights(schedule, decaying, 10) == pytest.approx([0.3, 0.7])
    assert lr_weighted_weights([(0, [0.5, 0.5])], lambda t: 0.0, 4) == [0.5, 0.5]
