import math

import pytest
import torch

from scalarize.cli.main import main
from scalarize.data import load_benchmark
from scalarize.data.benchmark import Benchmark, Split
from scalarize.experiments.sweep import SweepConfig, build_members, run_sweep
from scalarize.methods import Scalarization
from scalarize.models import build_model
from scalarize.population import Member, StackedPopulation, choose_engine, train_members
from scalarize.store import Store
from scalarize.train import TrainConfig, Trainer

SMALL = {"name": "multimnist", "options": {"train_size": 400, "test_size": 100}}


def _members(benchmark=SMALL, weights=((0.2, 0.8), (0.5, 0.5), (0.9, 0.1)), **kw):
    settings = dict(
        benchmark=benchmark,
        model={"width": 0.25},
        epochs=2,
        batch_size=50,
        stl=False,
        schedule={"name": "cosine"},
        optimizer={"lr": 0.003},
    )
    base = TrainConfig(**{**settings, **kw})
    return [
        Member(
            f"m{i}", base.model_copy(update={"method": base.method.model_copy(update={"weights": list(w)}), "seed": i})
        )
        for i, w in enumerate(weights)
    ]


def _alone(member, bench):
    torch.manual_seed(member.seed)
    model = build_model("mlp", bench.input_shape, bench.tasks, member.config.model.width, member.config.model.depth)
    return Trainer(member.config, bench, model, Scalarization(member.weights), progress=False).fit()


@pytest.mark.parametrize("spec", [SMALL, {"name": "digits"}])  # not "benchmark": pytest-benchmark's fixture
def test_each_member_matches_an_independent_run_with_the_same_seed(spec):
    members = _members(spec)
    bench = load_benchmark(spec["name"], **spec.get("options", {}))
    stacked = StackedPopulation(members, bench, progress=False).fit()
    for member, result in zip(members, stacked):
        alone = _alone(member, bench)
        assert [h["step"] for h in alone.history] == [h["step"] for h in result.history]
        for key, value in alone.history[-1].items():
            assert result.history[-1][key] == pytest.approx(value, abs=1e-5, rel=1e-5), key


def test_a_diverged_member_is_marked_and_the_others_continue(tmp_path):
    members = _members()
    bench = load_benchmark("multimnist", train_size=400, test_size=100)
    with Store(tmp_path) as store:
        for m in members:
            store.start_run(m.name, "member", {}, "x")
        population = StackedPopulation(members, bench, store=store, progress=False)
        population.run_until(3)
        with torch.no_grad():
            for value in population.params.values():
                value[1] = float("nan")
        results = population.fit()
        assert [r.status for r in results] == ["completed", "diverged", "completed"]
        assert results[1].message == "non-finite loss at step 4"
        assert all(math.isfinite(v) for v in results[0].test.values())
        assert results[2].steps == population.total_steps
        assert store.run("m1")["status"] == "diverged"


def test_a_non_finite_gradient_skips_that_members_step_only(tmp_path):
    """Finite losses, a NaN in member 1's gradient at step 2: its parameters and optimizer state
    stay as they were, the step is counted and stored, and every member goes on; the others
    train exactly as in a population without the NaN."""
    members = _members()
    bench = load_benchmark("multimnist", train_size=400, test_size=100)
    reference = StackedPopulation(_members(), bench, progress=False).fit()
    with Store(tmp_path) as store:
        for m in members:
            store.start_run(m.name, "member", {}, "x")
        population = StackedPopulation(members, bench, store=store, progress=False)
        first = next(iter(population.params.values()))
        first.register_hook(
            lambda g: g.index_fill(0, torch.tensor([1], device=g.device), float("nan")) if population.step == 2 else g
        )
        population.run_until(2)
        before = [t[1].clone() for t in population._member_slices()]
        population.train_step()
        for old, tensor in zip(before, population._member_slices()):
            assert torch.equal(old, tensor[1])
        assert population.skipped_steps == [0, 1, 0]
        results = population.fit()
        assert [r.status for r in results] == ["completed"] * 3
        assert [r.skipped_steps for r in results] == [0, 1, 0]
        assert results[1].message == "1 step(s) skipped: non-finite gradients"
        assert [v for _, v in store.history("m1", "train")["skipped_steps"]] == [1.0, 0.0]  # evaluations at steps 8, 16
    for index in (0, 2):
        assert results[index].test == pytest.approx(reference[index].test, abs=1e-6)


@pytest.fixture
def float64():
    """Models built in float64 while the test runs."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def _in_float64(bench: Benchmark) -> Benchmark:
    domains = {
        d: {s: Split(split.inputs.double(), split.targets) for s, split in splits.items()}
        for d, splits in bench.domains.items()
    }
    return Benchmark(bench.name, bench.setting, bench.tasks, domains)


def test_batch_norm_members_stack_and_match_independent_runs(float64):
    """The ResNet's running statistics are stacked buffers: after training, each member's
    parameters, statistics and metrics match an independent run's.

    In float64, to 1e-9: the stacked (grouped) and the plain convolutions sum in different orders,
    and in float32 that rounding (about 1e-7 after one step) is amplified by Adam wherever a
    gradient is near 0 (its first step is lr * sign(g)), by how much depends on the CPU's kernels
    and thread count (5e-4 after 6 steps on one 2-core machine). In float64 the same rounding is
    1e-16 and stays far below the tolerance on every machine."""
    members = _members(
        model={"family": "resnet", "width": 0.25, "depth": 1},
        weights=((0.3, 0.7), (0.8, 0.2)),
        steps=6,
        eval_every=3,
        device="cpu",
    )  # on a GPU, TF32 convolutions differ far more
    bench = _in_float64(load_benchmark("multimnist", train_size=400, test_size=100))
    assert choose_engine(members, bench, "vectorized") == ("vectorized", "as configured (engine: vectorized)")
    population = StackedPopulation(members, bench, progress=False)
    results = population.fit()
    for index, (member, result) in enumerate(zip(members, results)):
        torch.manual_seed(member.seed)
        model = build_model("resnet", bench.input_shape, bench.tasks, 0.25, 1)
        alone = Trainer(member.config, bench, model, Scalarization(member.weights), progress=False).fit()
        stacked = population.member_model(index).state_dict()
        assert next(iter(stacked.values())).dtype == torch.float64
        for key, value in model.state_dict().items():
            torch.testing.assert_close(stacked[key], value, rtol=1e-9, atol=1e-9, msg=key)
        assert any("running_mean" in key for key in stacked)
        for key, value in alone.history[-1].items():
            assert result.history[-1][key] == pytest.approx(value, abs=1e-9), key


def test_interrupted_chunk_resumes_to_the_same_numbers(tmp_path, interrupt_at_checkpoint):
    members = _members(epochs=3)
    for m in members:
        object.__setattr__(m, "config", m.config.model_copy(update={"output": str(tmp_path / "a")}))
    with Store(tmp_path / "ref") as store:
        reference = train_members(members, store, engine="vectorized", progress=False)

    interrupt_at_checkpoint(StackedPopulation, 2)
    with Store(tmp_path / "a") as store, pytest.raises(KeyboardInterrupt):
        train_members(members, store, engine="vectorized", progress=False)
    with Store(tmp_path / "a") as store:
        resumed = train_members(members, store, engine="vectorized", progress=False)
        again = train_members(members, store, engine="vectorized", progress=False)  # all stored
    for name in reference:
        assert resumed[name].test == reference[name].test
        assert again[name].test == reference[name].test


def test_sweep_members_cross_weights_factors_and_seeds():
    config = SweepConfig(name="s", sweep={"step": 0.5, "seeds": [0, 1], "factors": {"optimizer.lr": [0.1, 0.01]}})
    members = build_members(config, 2)
    assert len(members) == 3 * 2 * 2
    assert members[0].weights == [0.0, 1.0] and members[0].config.optimizer.lr == 0.1 and members[0].seed == 0
    assert members[1].seed == 1 and members[2].config.optimizer.lr == 0.01
    assert len({m.name for m in members}) == len(members)


def test_the_sweep_table_has_a_column_per_factor():
    from scalarize.experiments.sweep import SweepResult
    from scalarize.report.sweep import front_rows
    from scalarize.train.trainer import RunResult

    config = SweepConfig(name="s", sweep={"step": 1.0, "factors": {"optimizer.lr": [0.1, 0.01], "model.depth": [1, 3]}})
    members = build_members(config, 2)
    results = {
        m.name: RunResult(
            m.name, "completed", ["a", "b"], 0, 1, {}, {"a/accuracy": 0.5 + i / 100, "b/accuracy": 0.5 - i / 100}, 1
        )
        for i, m in enumerate(members)
    }
    result = SweepResult(config, members, results, primary=[("a/accuracy", True), ("b/accuracy", True)])
    header, rows = front_rows(result)
    assert header[:5] == ["member", "weights", "optimizer.lr", "model.depth", "seed"]
    by_name = {row[0]: row for row in rows}
    for member in members:
        assert by_name[member.name][2:4] == [f"{member.config.optimizer.lr:g}", str(member.config.model.depth)]


def test_sweep_end_to_end_writes_the_front(tmp_path, capsys):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "name: s\nbenchmark: {name: multimnist, options: {train_size: 300, test_size: 100}}\n"
        "model: {width: 0.25}\nepochs: 1\nbatch_size: 50\n"
        f"output: {tmp_path / 'out'}\nsweep: {{step: 0.5, engine: vectorized}}\n"
    )
    assert main(["sweep", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "hypervolume" in out and "s-000" in out and "engine: vectorized" in out
    for name in ("front.png", "metric_vs_weight.png", "report.md", "report.html"):
        assert (tmp_path / "out" / name).is_file()


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("sweep.design=list", "sweep: design 'list' needs sweep.weights"),
        ("sweep.weights=[[1,-1]]", None),
        ("sweep.step=0.3", "sweep: "),
        ("sweep.engine=gpu", "sweep.engine: Input should be 'auto', 'vectorized' or 'loop'"),
    ],
)
def test_bad_sweeps_are_one_line_errors(tmp_path, capsys, override, expected):
    path = tmp_path / "sweep.yaml"
    path.write_text(f"name: s\nbenchmark: {{name: digits}}\noutput: {tmp_path / 'out'}\n")
    overrides = [override] if expected is not None else ["sweep.design=list", override]
    assert main(["sweep", str(path), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and (expected or "weights") in err, err
    assert not (tmp_path / "out").exists()


def test_sweep_refuses_non_scalarization_methods(tmp_path):
    from scalarize.train import ConfigError

    with pytest.raises(ConfigError, match="a sweep varies scalarization weights"):
        run_sweep(SweepConfig(method={"name": "pcgrad"}, output=str(tmp_path)), progress=False)
