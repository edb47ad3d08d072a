"""The bundled dense benchmark (multimnist_dense) and its run through every command: train, sweep,
compare and pbt, on tiny sizes, with Δm over every metric of the dense tasks."""

import json

import numpy as np
import torch

from scalarize.cli.main import main
from scalarize.data import load_benchmark
from scalarize.data.bundled.multimnist_dense import BACKGROUND, DEPTH_RANGE
from scalarize.pareto import delta_m
from scalarize.store.database import Store

BASE = """name: dense
benchmark: {name: multimnist_dense, options: {train_size: 40, test_size: 16}}
model: {family: resnet_dilated, width: 0.0625, depth: 14, options: {stem: imagenet, decoder: light}}
epochs: 1
batch_size: 16
device: cpu
"""
METRICS = ["segmentation/miou", "segmentation/pixel_accuracy", "depth/abs_err", "depth/rel_err"]


def _config(tmp_path, extra: str = "") -> str:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + extra)
    return str(path)


def test_targets_are_consistent():
    bench = load_benchmark("multimnist_dense", train_size=40, test_size=16)
    assert bench.input_shape == (1, 36, 36) and bench.sizes()["multimnist_dense"] == {"train": 36, "val": 4, "test": 16}
    split = bench.split("train")
    seg, depth = split.targets["segmentation"], split.targets["depth"][:, 0]
    assert seg.dtype == torch.int64 and set(seg.unique().tolist()) <= set(range(-1, BACKGROUND + 1))
    assert ((seg == BACKGROUND) == (depth == 0)).logical_or(seg == -1).all()  # depth measured on digits only
    digits = (seg >= 0) & (seg < BACKGROUND)
    assert depth[digits].min() >= DEPTH_RANGE[0] and depth[digits].max() <= DEPTH_RANGE[1]
    assert 0 < (seg == -1).float().mean() < 0.1  # faint stroke borders are ignored
    # each image shows at most two digit classes and two depths, the brighter digit nearer
    for i in range(5):
        depths = depth[i][digits[i]].unique()
        assert 1 <= len(depths) <= 2
        bright = [split.inputs[i, 0][digits[i] & (depth[i] == d)].max() for d in depths]
        assert bright == sorted(bright, reverse=True)  # depths come sorted ascending: nearer first


def test_train_with_single_task_runs_and_with_given_values(tmp_path, capsys, one_thread):
    out = tmp_path / "train"
    assert main(["train", _config(tmp_path), f"output={out}", "-q"]) == 0
    printed = capsys.readouterr().out
    assert all(f"{m} (test)" in printed for m in METRICS)
    with Store(out) as store:
        main_test = store.final("dense")["test"]
        stl = {m: store.final(f"stl-{m.split('/')[0]}")["test"][m] for m in METRICS}
    expected = delta_m([main_test[m] for m in METRICS], [stl[m] for m in METRICS], [True, True, False, False])
    row = next(line for line in printed.splitlines() if line.startswith("dense "))
    assert row.split()[-1] == f"{expected:+.2f}"
    # the same run against given single-task values: nothing retrained, Δm against them
    given = {"segmentation/miou": 0.5, "segmentation/pixel_accuracy": 0.9, "depth/abs_err": 0.5, "depth/rel_err": 0.2}
    assert main(["train", _config(tmp_path), f"output={out}", f"single_task={json.dumps(given)}", "-q"]) == 0
    printed = capsys.readouterr().out
    expected = delta_m([main_test[m] for m in METRICS], [given[m] for m in METRICS], [True, True, False, False])
    row = next(line for line in printed.splitlines() if line.startswith("dense "))
    assert row.split()[-1] == f"{expected:+.2f}"
    assert "already trained" in printed  # read back from the store


def test_bad_single_task_values_are_one_line(tmp_path, capsys):
    code = main(["train", _config(tmp_path), f"output={tmp_path / 'x'}", "single_task={segmentation/miou: 0.5}"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "single_task: no value for segmentation/pixel_accuracy, depth/abs_err, depth/rel_err" in err
    assert not (tmp_path / "x").exists()


def test_sweep(tmp_path, capsys, one_thread):
    out = tmp_path / "sweep"
    config = _config(tmp_path, "stl: false\nsweep: {design: lattice, step: 0.5}\n")
    assert main(["sweep", config, f"output={out}"]) == 0
    printed = capsys.readouterr().out
    assert "engine: loop for 3 run(s)" in printed  # a convolutional trunk on the CPU
    assert (out / "report.md").is_file() and printed.count("dense-") >= 3


def test_compare_methods_on_a_feature_map(tmp_path, capsys, one_thread):
    out = tmp_path / "compare"
    config = _config(tmp_path, "stl: false\ncompare: {methods: [{name: mgda_ub}, {name: pcgrad}]}\n")
    assert main(["compare", config, f"output={out}", "-q"]) == 0
    printed = capsys.readouterr().out
    for label in ("uniform", "mgda_ub", "pcgrad"):
        assert any(line.startswith(label) and "1/1" in line for line in printed.splitlines()), printed
    assert "depth/rel_err (test)" in printed


def test_pbt_on_a_stacked_encoder_decoder(tmp_path, capsys, one_thread):
    out = tmp_path / "pbt"
    config = _config(tmp_path, "steps: 2\neval_every: 1\npbt: {population: 2, interval: 1, compare_uniform: false}\n")
    assert main(["pbt", config, f"output={out}", "-q"]) == 0
    result = json.loads((out / "pbt_result.json").read_text())
    assert len(result["schedule"]) >= 1 and set(METRICS) <= set(result["test"])
    assert np.isfinite([result["test"][m] for m in METRICS]).all()
