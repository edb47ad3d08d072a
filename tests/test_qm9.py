"""QM9 from qm9pack: targets, units, split and normalisation as Nash-MTL's, geometry-derived graph
features, the MPNN, and a run through the commands (on the first molecules of the real files)."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from scalarize.cli.main import main
from scalarize.data import BenchmarkError, load_benchmark
from scalarize.data.loaders import qm9 as qm9_module
from scalarize.data.loaders.qm9 import (
    HARTREE_EV,
    MOLECULES,
    PUBLISHED_SINGLE_TASK,
    TARGETS,
    collate_molecules,
    complete_edges,
    qm9pack_files,
    read_molecules,
)
from scalarize.models import build_model

PACKAGE = Path(list(importlib.util.find_spec("qm9pack").submodule_search_locations)[0]) / "data"
ROWS = (14, 10, 8)  # molecules taken from the head of each of the three real files


@pytest.fixture
def head_files(tmp_path, monkeypatch):
    """The first molecules of qm9pack's three files, in its format, as the installed package."""
    files = []
    for part, rows in zip((1, 2, 3), ROWS):
        with open(PACKAGE / f"qm9_part{part}.csv") as source:
            lines = [next(source) for _ in range(rows + 1)]
        path = tmp_path / f"qm9_part{part}.csv"
        path.write_text("".join(lines))
        files.append(path)
    monkeypatch.setattr(qm9_module, "qm9pack_files", lambda: files)
    return files


def test_the_package_holds_every_molecule():
    import pandas as pd

    files = qm9pack_files()
    assert sum(len(pd.read_csv(p, usecols=["Index"])) for p in files) == MOLECULES == 130_831


def test_targets_in_pytorch_geometric_units(head_files):
    arrays = read_molecules(head_files)
    assert arrays["counts"][:6].tolist() == [5, 4, 3, 4, 3, 4]  # CH4, NH3, H2O, C2H2, HCN, H2CO
    assert arrays["z"][:5].tolist() == [6, 1, 1, 1, 1]
    methane = dict(zip(TARGETS, arrays["y"][0]))
    # atomization energy: U0(CH4) - U0(C) - 4 U0(H), QM9's atomref, in eV
    assert methane["U0"] == pytest.approx((-40.47893 - (-37.846772 + 4 * -0.500273)) * HARTREE_EV, abs=1e-9)
    assert methane["U0"] == pytest.approx(-17.172, abs=1e-3)
    assert methane["homo"] == pytest.approx(-0.3877 * HARTREE_EV)
    assert methane["alpha"] == pytest.approx(13.21) and methane["cv"] == pytest.approx(6.469)
    assert methane["mu"] == 0.0 and methane["zpve"] == pytest.approx(0.044749 * HARTREE_EV)


def test_graph_features_from_the_geometry(head_files):
    arrays = read_molecules(head_files)
    offsets = np.concatenate([[0], np.cumsum(arrays["counts"])])

    def molecule(i):
        return qm9_module.Molecule(
            torch.as_tensor(arrays["z"][offsets[i] : offsets[i + 1]].astype(np.int64)),
            torch.as_tensor(arrays["pos"][offsets[i] : offsets[i + 1]]),
        )

    batch = collate_molecules([molecule(0), molecule(3), molecule(5)])  # CH4, HC≡CH, H2C=O
    assert batch.x.shape == (13, 11) and batch.edge_attr.shape == (5 * 4 + 4 * 3 + 4 * 3, 5)
    assert batch.batch.tolist() == [0] * 5 + [1] * 4 + [2] * 4
    carbon, acetylene_c, formaldehyde_c = batch.x[0], batch.x[5], batch.x[9]
    # one-hot H C N O F, atomic number, aromatic, sp, sp2, sp3, bonded hydrogens
    assert carbon.tolist() == [0, 1, 0, 0, 0, 6, 0, 0, 0, 1, 4]
    assert acetylene_c.tolist() == [0, 1, 0, 0, 0, 6, 0, 1, 0, 0, 1]
    assert formaldehyde_c.tolist() == [0, 1, 0, 0, 0, 6, 0, 0, 1, 0, 2]
    assert batch.x[1].tolist() == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]  # a hydrogen
    classes = batch.edge_attr[:, :4].sum(0).tolist()  # single, double, triple, aromatic (both directions)
    assert classes == [2 * (4 + 2 + 2), 2 * 1, 2 * 1, 0]  # C-H x8, C=O, C≡C
    distances = batch.edge_attr[:, 4]
    assert distances.min() > 0.9 and math.isclose(float(distances[0]), float((batch.pos[0] - batch.pos[1]).norm()))
    bonds = collate_molecules([molecule(0)], graph="bonds")
    assert bonds.edge_index.shape == (2, 8) and (bonds.edge_attr[:, 0] == 1).all()


def test_complete_edges_order():
    assert complete_edges(torch.tensor([2, 3])).tolist() == [[0, 1, 2, 2, 3, 3, 4, 4], [1, 0, 3, 4, 2, 4, 2, 3]]


def test_split_normalisation_and_metric_units(head_files):
    bench = load_benchmark("qm9", test_size=5, val_size=5)
    assert [t.name for t in bench.tasks] == list(TARGETS) and bench.sizes()["all"] == {"train": 22, "val": 5, "test": 5}
    train = bench.split("train")
    _, targets = train.batch(torch.arange(len(train)))
    y = torch.cat([targets[t] for t in TARGETS], dim=1)
    assert torch.allclose(y.mean(0), torch.zeros(11), atol=1e-5)  # standardised on the training split
    assert torch.allclose(y.std(0), torch.ones(11), atol=1e-5)
    homo = bench.tasks[TARGETS.index("homo")]
    assert homo.behaviour.scale == pytest.approx(bench.extras["std"]["homo"] * 1000)  # eV -> meV
    assert bench.tasks[0].behaviour.scale == pytest.approx(bench.extras["std"]["mu"])
    assert bench.extras["published_single_task"]["U0/mae"] == PUBLISHED_SINGLE_TASK["U0"] == 58.838
    again = load_benchmark("qm9", test_size=5, val_size=5)  # the same split for the same seed
    assert again.split("test").dataset.molecule_index.tolist() == bench.split("test").dataset.molecule_index.tolist()
    other = load_benchmark("qm9", test_size=5, val_size=5, split_seed=1)
    assert other.split("test").dataset.molecule_index.tolist() != bench.split("test").dataset.molecule_index.tolist()
    assert load_benchmark("qm9", targets="mu,U0", test_size=5, val_size=5, max_train=7).sizes()["all"]["train"] == 7


def test_bad_input_is_one_line(head_files, tmp_path, monkeypatch):
    with pytest.raises(BenchmarkError, match="targets: unknown name 'gap'; allowed: mu, alpha"):
        load_benchmark("qm9", targets=["gap"])
    with pytest.raises(BenchmarkError, match="graph: must be one of complete, bonds, got 'radius'"):
        load_benchmark("qm9", graph="radius")
    truncated = tmp_path / "cut" / "qm9_part1.csv"
    truncated.parent.mkdir()
    truncated.write_text(head_files[0].read_text()[:900])
    monkeypatch.setattr(qm9_module, "qm9pack_files", lambda: [truncated])
    with pytest.raises(ValueError, match=r"cut/qm9_part1.csv: truncated or unreadable") as error:
        read_molecules([truncated])
    assert "\n" not in str(error.value)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"qm9pack: not installed \(QM9 comes with the qm9pack package"):
        qm9pack_files()  # the function itself (the fixture replaced the module's name)


def test_mpnn_shapes_and_parameters(head_files, one_thread):
    bench = load_benchmark("qm9", test_size=5, val_size=5)
    model = build_model("mpnn", bench.input_shape, bench.tasks, width=1.0, depth=3)
    # Nash-MTL's Net(n_tasks=11, dim=64): lin0, NNConv(edge net 5-128-4096), GRU, Set2Set, lin1, 11 heads
    assert sum(p.numel() for p in model.parameters()) == 617_675
    x, _ = bench.split("train").batch(torch.arange(4))
    features, outputs = model(x)
    assert features.shape == (4, 64) and outputs["U0"].shape == (4, 1)


def test_train_and_sweep_on_graphs(head_files, tmp_path, capsys, one_thread):
    config = tmp_path / "qm9.yaml"
    config.write_text(
        "name: q\nbenchmark: {name: qm9, options: {targets: [mu, homo, U0], test_size: 5, val_size: 5}}\n"
        "model: {family: mpnn, width: 0.25, depth: 2}\nmethod: {name: mgda_ub}\nbatch_size: 8\n"
        "steps: 3\nstl: false\ndevice: cpu\n"
        "single_task: {mu/mae: 0.0671, homo/mae: 60.576, U0/mae: 58.838}\n"
    )
    assert main(["train", str(config), f"output={tmp_path / 't'}", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "U0/mae (test)" in printed and "Δm %" in printed
    row = next(line for line in printed.splitlines() if line.startswith("q "))
    assert float(row.split()[-1]) < 0  # far from the published single-task MAEs after 3 steps
    assert (
        main(
            [
                "sweep",
                str(config),
                "method.name=scalarization",
                f"output={tmp_path / 's'}",
                "sweep={design: list, weights: [[1, 1, 2], [2, 1, 1]]}",
                "-q",
            ]
        )
        == 0
    )
    assert (
        "engine: loop for 2 run(s) (inputs that are not tensors (e.g. graphs) cannot be stacked)"
        in capsys.readouterr().out
    )
    code = main(
        ["pbt", str(config), "method.name=scalarization", "pbt={population: 2}", f"output={tmp_path / 'p'}", "-q"]
    )
    assert code == 2 and "use --backend ray (one trial per member)" in capsys.readouterr().err
