import math

import pytest
import torch

from scalarize.cli.main import main
from scalarize.data import load_benchmark
from scalarize.models import build_model
from scalarize.train.conflict import ConflictProbe, conflict_statistics, pairwise_cosines


def test_pairwise_cosines_on_hand_made_gradients():
    jacobian = torch.tensor([[1.0, 0.0], [0.0, 2.0], [-3.0, 0.0]])
    # pairs (0,1), (0,2), (1,2): orthogonal, opposite, orthogonal
    assert pairwise_cosines(jacobian).tolist() == pytest.approx([0.0, -1.0, 0.0])


def test_conflict_statistics_over_batches():
    aligned = torch.tensor([[1.0, 1.0], [2.0, 2.0]])  # cos 1
    conflicting = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])  # cos -1/sqrt(2)
    stats = conflict_statistics([aligned, conflicting])
    assert stats["mean_cosine"] == pytest.approx((1 - 1 / math.sqrt(2)) / 2)
    assert stats["negative_fraction"] == 0.5


def test_a_zero_gradient_counts_as_no_conflict():
    assert pairwise_cosines(torch.tensor([[0.0, 0.0], [1.0, 0.0]])).tolist() == [0.0]


def test_probe_leaves_the_model_and_the_rng_untouched():
    bench = load_benchmark("multimnist", train_size=300, test_size=50)
    torch.manual_seed(0)
    model = build_model("resnet", bench.input_shape, bench.tasks, width=0.25, depth=1)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    stats = ConflictProbe(bench, batches=2, batch_size=16).measure(model)
    assert -1.0 <= stats["mean_cosine"] <= 1.0 and 0.0 <= stats["negative_fraction"] <= 1.0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # batch-norm stats too
    assert torch.equal(rng, torch.get_rng_state())
    assert all(p.grad is None for p in model.parameters())


def test_probe_on_domains():
    bench = load_benchmark("digits")
    torch.manual_seed(0)
    model = build_model("mlp", bench.input_shape, bench.tasks, width=0.25)
    stats = ConflictProbe(bench, batches=2, batch_size=16).measure(model)
    assert math.isfinite(stats["mean_cosine"])


def test_study_end_to_end(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(
        "name: st\nbenchmark: {name: synthetic, options: {num_tasks: 3, train_size: 300, val_size: 100, test_size: 100}}\n"
        f"model: {{family: mlp}}\nepochs: 2\nbatch_size: 50\noutput: {tmp_path / 'out'}\n"
        "study: {depths: [1, 2], widths: [0.125], groups: [[task0, task1], [task1, task2]], sweep: {step: 0.5}}\n"
    )
    assert main(["study", str(path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "task0+task1" in out and "task1+task2" in out and "Pearson r" in out
    directory = tmp_path / "out"
    for name in (
        "report.md",
        "report.html",
        "sizes_task0_task1.png",
        "conflict.png",
        "best_weights_and_delta.csv",
        "conflict.csv",
    ):
        assert (directory / name).is_file(), name
    rows = (directory / "conflict.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 2 * 3  # header + groups x depths x 3 members
    # single-task models are shared by the groups: 3 objectives x 2 depths
    import sqlite3

    with sqlite3.connect(directory / "scalarize.db") as db:
        assert db.execute("SELECT COUNT(*) FROM runs WHERE kind = 'stl'").fetchone()[0] == 6
        assert db.execute("SELECT COUNT(*) FROM metrics WHERE split = 'conflict'").fetchone()[0] > 0


def test_bad_study_groups_are_one_line_errors(tmp_path, capsys):
    path = tmp_path / "study.yaml"
    path.write_text(
        f"name: st\nbenchmark: {{name: multimnist}}\noutput: {tmp_path / 'out'}\nstudy: {{groups: [[left, middle]]}}\n"
    )
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert "study.groups: each group needs >= 2 of left, right; got ['left', 'middle']" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()
