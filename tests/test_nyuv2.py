"""NYUv2 and Cityscapes from MTAN's preprocessed .npy layout, on tiny fixtures written in that
layout, with one-line errors for missing, truncated or misshapen files."""

import numpy as np
import pytest
import torch

from scalarize.data import BenchmarkError, load_benchmark
from scalarize.data.loaders.cityscapes import PUBLISHED_SINGLE_TASK as CITYSCAPES_STL
from scalarize.data.loaders.nyuv2 import PUBLISHED_SINGLE_TASK as NYUV2_STL
from scalarize.train.evaluate import check_single_task, delta_metrics

H, W = 6, 8


def _arrays(index: int, classes: int):
    rng = np.random.default_rng(index)
    image = rng.random((H, W, 3), dtype=np.float32)
    label = rng.integers(-1, classes, size=(H, W)).astype(np.float32)  # MTAN stores labels as floats
    depth = rng.uniform(0.5, 5, size=(H, W, 1)).astype(np.float32)
    depth[0, 0, 0] = 0.0  # no measurement
    normal = rng.normal(size=(H, W, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return {"image": image, "label": label, "depth": depth, "normal": normal}


def _write(root, split: str, count: int, folders: dict[str, str], classes: int = 13):
    for index in range(count):
        for key, folder in folders.items():
            path = root / split / folder / f"{index}.npy"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, _arrays(index + (1000 if split == "val" else 0), classes)[key])


NYU = {"image": "image", "label": "label", "depth": "depth", "normal": "normal"}


@pytest.fixture
def nyu_root(tmp_path):
    root = tmp_path / "nyuv2"
    _write(root, "train", 5, NYU)
    _write(root, "val", 3, NYU)
    return root


def test_nyuv2_reads_the_layout(nyu_root):
    bench = load_benchmark("nyuv2", root=str(nyu_root))
    assert [t.name for t in bench.tasks] == ["segmentation", "depth", "normals"]
    assert bench.sizes() == {"nyuv2": {"train": 5, "val": 3, "test": 3}}  # val/ is the papers' test split
    assert bench.input_shape == (3, H, W)
    x, targets = bench.split("train").batch(torch.tensor([1, 3]))
    expected = [_arrays(i, 13) for i in (1, 3)]
    assert torch.equal(x, torch.tensor(np.stack([np.moveaxis(e["image"], -1, 0) for e in expected])))
    assert targets["segmentation"].dtype == torch.int64
    assert torch.equal(targets["segmentation"], torch.tensor(np.stack([e["label"] for e in expected])).long())
    assert targets["depth"].shape == (2, 1, H, W) and targets["depth"][0, 0, 0, 0] == 0
    assert targets["normals"].shape == (2, 3, H, W)
    for task in bench.tasks:
        task.check(torch.zeros(2, task.num_outputs, H, W), targets[task.name])
    capped = load_benchmark("nyuv2", root=str(nyu_root), eval_batch=2).split("train").subset(torch.tensor([0, 2, 4]))
    assert [len(x) for x, _ in capped.batches(1024)] == [2, 1]  # the run core asks for 1,024
    carved = load_benchmark("nyuv2", root=str(nyu_root), val_fraction=0.4)
    assert carved.sizes() == {"nyuv2": {"train": 3, "val": 2, "test": 3}}
    check_single_task(NYUV2_STL, delta_metrics(bench))  # the published vector fits the Δm metrics


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda r: (r / "train/depth/3.npy").unlink(), "train/depth/3.npy: missing (5 images in"),
        (lambda r: (r / "val/image/1.npy").unlink(), "val/image/1.npy: missing (the images are numbered 0..2)"),
        (
            lambda r: (r / "train/normal/2.npy").write_bytes((r / "train/normal/2.npy").read_bytes()[:200]),
            "train/normal/2.npy: truncated or not a .npy array",
        ),
        (
            lambda r: (r / "train/label/4.npy").write_text("not numpy"),
            "train/label/4.npy: truncated or not a .npy array",
        ),
        (
            lambda r: np.save(r / "train/depth/0.npy", np.zeros((H, W + 1, 1), np.float32)),
            "train/depth/0.npy: shape (6, 9, 1), expected (6, 8, 1) like",
        ),
        (
            lambda r: np.save(r / "val/image/0.npy", np.zeros((3, H, W), np.float32)),
            "val/image/0.npy: shape (3, 6, 8), expected H x W x 3 (channels last)",
        ),
    ],
)
def test_nyuv2_bad_files_are_one_line(nyu_root, damage, expected):
    damage(nyu_root)
    with pytest.raises(BenchmarkError) as error:
        load_benchmark("nyuv2", root=str(nyu_root))
    message = str(error.value)
    assert "\n" not in message and expected in message, message


def test_missing_root_names_the_layout(tmp_path, monkeypatch):
    monkeypatch.delenv("SCALARIZE_DATA", raising=False)
    with pytest.raises(BenchmarkError, match=r"root: not set .*\$SCALARIZE_DATA/nyuv2; NYUv2 needs train/ and val/"):
        load_benchmark("nyuv2")
    with pytest.raises(BenchmarkError, match=r"train/: missing \(NYUv2 needs"):
        load_benchmark("nyuv2", root=str(tmp_path))


@pytest.mark.parametrize("folder", ["label_7", "label"])  # MTAN's release, LibMTL's renamed copy
def test_cityscapes(tmp_path, folder):
    root = tmp_path / "cityscapes"
    folders = {"image": "image", "label": folder, "depth": "depth"}
    _write(root, "train", 4, folders, classes=7)
    _write(root, "val", 2, folders, classes=7)
    bench = load_benchmark("cityscapes", root=str(root))
    assert [t.name for t in bench.tasks] == ["segmentation", "depth"] and bench.tasks[0].num_outputs == 7
    assert bench.sizes() == {"cityscapes": {"train": 4, "val": 2, "test": 2}}
    x, targets = bench.split("test").batch(torch.tensor([0, 1]))
    assert x.shape == (2, 3, H, W) and targets["segmentation"].max() < 7
    check_single_task(CITYSCAPES_STL, delta_metrics(bench))
    with pytest.raises(BenchmarkError, match=r"train/label_19/: missing \(Cityscapes needs"):
        load_benchmark("cityscapes", root=str(root), classes=19)
    with pytest.raises(BenchmarkError, match="classes: must be one of 2, 7, 19, got 5"):
        load_benchmark("cityscapes", root=str(root), classes=5)


def test_configs_quote_the_published_vectors():
    from scalarize.data.loaders.qm9 import PUBLISHED_SINGLE_TASK as QM9_STL
    from scalarize.train.config import TrainConfig, load_yaml

    root = __import__("pathlib").Path(__file__).resolve().parents[1] / "configs"

    def given(name: str) -> dict:
        data = load_yaml(root / name)
        training = {k: v for k, v in data.items() if k not in ("compare", "sweep", "pbt")}
        return TrainConfig.model_validate(training).single_task  # the rest of the config is valid too

    assert given("nyuv2-segnet.yaml") == NYUV2_STL
    assert given("cityscapes-segnet.yaml") == CITYSCAPES_STL
    for name in (
        "qm9.yaml",
        "qm9-reduced.yaml",
        "qm9-compare.yaml",
        "qm9-reduced-compare.yaml",
        "qm9-reduced-sweep.yaml",
    ):
        assert given(name) == {f"{t}/mae": v for t, v in QM9_STL.items()}
