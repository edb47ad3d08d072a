"""Loaders of CelebA, DomainNet and CIFAR-10 + STL-10 on tiny fixtures in the official formats."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scalarize.data import BenchmarkError, benchmark_options, load_benchmark
from scalarize.data.cache import cache_dir
from scalarize.data.loaders import DataFileError, MissingDataError, celeba, cifar_stl
from scalarize.data.loaders.cifar_stl import CLASSES

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()


def _top_red(height: int, width: int, grey: int = 0) -> np.ndarray:
    """An RGB image [H, W, 3] whose top half is pure red and bottom half ``grey``."""
    image = np.full((height, width, 3), grey, dtype=np.uint8)
    image[: height // 2] = (255, 0, 0)
    return image


def _jpeg(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=95)


# ---------------------------------------------------------------- CelebA


def _celeba(root: Path, partition=(0, 0, 0, 0, 1, 1, 2, 2, 2)) -> np.ndarray:
    """Writes len(partition) faces of 18x22 (W x H); returns the attribute values [N, 40] in ±1."""
    values = np.where(np.random.default_rng(0).random((len(partition), 40)) < 0.5, -1, 1)
    files = [f"{i + 1:06d}.jpg" for i in range(len(partition))]
    for i, file in enumerate(files):
        _jpeg(root / "img_align_celeba" / file, _top_red(22, 18, grey=20 * i))
    rows = [f"{f} " + " ".join(f"{v:2d}" for v in row) for f, row in zip(files, values)]
    (root / "list_attr_celeba.txt").write_text(
        f"{len(files)}\n{' '.join(CELEBA_ATTRIBUTES)}\n" + "\n".join(rows) + "\n"
    )
    (root / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p in zip(files, partition)))
    return values


def test_celeba_is_40_binary_tasks_on_the_official_splits(tmp_path):
    values = _celeba(tmp_path)
    bench = load_benchmark("celeba", root=str(tmp_path), resize=16)
    assert bench.setting == "mtl" and bench.objectives == CELEBA_ATTRIBUTES
    assert all(t.kind == "binary" and t.num_outputs == 1 for t in bench.tasks)
    assert bench.sizes() == {"celeba": {"train": 4, "val": 2, "test": 3}}
    assert bench.input_shape == (3, 16, 16)
    train, test = bench.split("train"), bench.split("test")
    assert train.inputs.dtype == torch.float32 and 0 <= train.inputs.min() and train.inputs.max() <= 1
    assert torch.equal(train.targets["Smiling"], torch.as_tensor(values[:4, 31] == 1).long())
    assert torch.equal(test.targets["Young"], torch.as_tensor(values[6:, 39] == 1).long())
    # rows in file order; top half red, bottom half grey 20*i
    image = test.inputs[0]
    assert image[0, :6].mean() > 0.9 and image[1, :6].mean() < 0.1
    assert abs(float(image[:, 11:].mean()) - 120 / 255) < 0.05


def test_celeba_attributes_subset_native_size_and_max_per_split(tmp_path):
    _celeba(tmp_path)
    bench = load_benchmark("celeba", root=str(tmp_path), attributes="Smiling, Male", resize=0, max_per_split=2)
    assert bench.objectives == ["Smiling", "Male"] and bench.extras["attributes"] == ["Smiling", "Male"]
    assert bench.input_shape == (3, 22, 18)
    assert bench.sizes() == {"celeba": {"train": 2, "val": 2, "test": 2}}
    with pytest.raises(BenchmarkError, match=r"attributes: unknown name 'Smile'; allowed: 5_o_Clock"):
        load_benchmark("celeba", root=str(tmp_path), attributes=["Smile"])


def test_celeba_root_defaults_to_the_data_folder_and_decodes_once(tmp_path, monkeypatch):
    _celeba(tmp_path / "celeba")
    monkeypatch.setenv("SCALARIZE_DATA", str(tmp_path))
    monkeypatch.setenv("SCALARIZE_CACHE", str(tmp_path / "cache"))
    first = load_benchmark("celeba", resize=8)
    assert len(list(cache_dir().glob("celeba-*/meta.json"))) == 1
    again = load_benchmark("celeba", resize=8, attributes=["Male"])  # same images: from the cache
    assert len(list(cache_dir().glob("celeba-*/meta.json"))) == 1
    assert torch.equal(first.split("val").inputs, again.split("val").inputs)
    # a changed image changes the key: decoded again
    image = tmp_path / "celeba" / "img_align_celeba" / "000005.jpg"
    _jpeg(image, np.full((22, 18, 3), 255, dtype=np.uint8))
    os.utime(image, ns=(1, 1))
    changed = load_benchmark("celeba", resize=8)
    assert float(changed.split("val").inputs[0].mean()) > 0.95
    assert len(list(cache_dir().glob("celeba-*/meta.json"))) == 2


def test_celeba_missing_and_truncated_files_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("SCALARIZE_DATA", raising=False)
    with pytest.raises(BenchmarkError, match=r"root: not set .*SCALARIZE_DATA/celeba"):
        load_benchmark("celeba")
    with pytest.raises(BenchmarkError, match=r"nowhere: root folder missing \(CelebA needs img_align_celeba/"):
        load_benchmark("celeba", root=str(tmp_path / "nowhere"))
    _celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").unlink()
    with pytest.raises(BenchmarkError) as error:
        load_benchmark("celeba", root=str(tmp_path))
    message = str(error.value)
    assert "\n" not in message and f"{tmp_path}/list_eval_partition.txt: missing (CelebA needs" in message
    # called directly: the error is also a FileNotFoundError
    with pytest.raises(FileNotFoundError):
        celeba(root=str(tmp_path))

    _celeba(tmp_path)
    attr = tmp_path / "list_attr_celeba.txt"
    attr.write_text("\n".join(attr.read_text().splitlines()[:6]) + "\n")
    with pytest.raises(BenchmarkError, match=r"list_attr_celeba.txt: truncated \(expected 9 rows, got 4\)"):
        load_benchmark("celeba", root=str(tmp_path))

    _celeba(tmp_path)
    jpeg = tmp_path / "img_align_celeba" / "000003.jpg"
    jpeg.write_bytes(jpeg.read_bytes()[:100])
    with pytest.raises(BenchmarkError, match=r"000003.jpg: truncated or not an image"):
        load_benchmark("celeba", root=str(tmp_path), resize=8)
    jpeg.unlink()
    with pytest.raises(BenchmarkError, match=r"000003.jpg: missing"):
        load_benchmark("celeba", root=str(tmp_path), resize=8)


# ---------------------------------------------------------------- DomainNet

DOMAINNET_CLASSES = ("aircraft_carrier", "airplane", "zebra")
DOMAINNET_LABELS = (0, 1, 344)


def _domainnet(root: Path, domains=("clipart", "sketch"), train=10, test=4) -> None:
    """Per domain: ``train`` + ``test`` JPEGs of varying sizes, green level = 60 * class position."""
    for d, domain in enumerate(domains):
        for split, count in (("train", train), ("test", test)):
            lines = []
            for i in range(count):
                k = i % 3
                rel = f"{domain}/{DOMAINNET_CLASSES[k]}/{domain}_{k:03d}_{split}{i:06d}.jpg"
                array = np.zeros((20 + 4 * i + d, 30 + 2 * i, 3), dtype=np.uint8)
                array[..., 1] = 60 * k
                _jpeg(root / rel, array)
                lines.append(f"{rel} {DOMAINNET_LABELS[k]}")
            (root / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")


def test_domainnet_is_mdl_over_the_chosen_domains_with_carved_validation(tmp_path):
    _domainnet(tmp_path)
    bench = load_benchmark("domainnet", root=str(tmp_path), domains=["sketch", "clipart"], resize=12)
    assert bench.setting == "mdl" and bench.objectives == ["sketch", "clipart"]
    assert [(t.name, t.kind, t.num_outputs) for t in bench.tasks] == [("category", "multiclass", 345)]
    assert bench.sizes()["clipart"] == {"train": 9, "val": 1, "test": 4}
    assert bench.input_shape == (3, 12, 12)
    assert bench.extras["classes"] == dict(zip(DOMAINNET_LABELS, DOMAINNET_CLASSES))
    for domain in bench.objectives:
        for split in ("train", "val", "test"):
            data = bench.split(split, domain)
            # each image's green level encodes its class
            level = (data.inputs[:, 1].mean((1, 2)) * 255 / 60).round().long()
            assert torch.equal(torch.as_tensor(DOMAINNET_LABELS)[level], data.targets["category"])
    again = load_benchmark("domainnet", root=str(tmp_path), domains="sketch,clipart", resize=12)
    assert torch.equal(again.split("val", "sketch").inputs, bench.split("val", "sketch").inputs)
    small = load_benchmark("domainnet", root=str(tmp_path), domains=["clipart"], resize=12, max_per_split=3)
    assert small.sizes() == {"clipart": {"train": 3, "val": 1, "test": 3}}


def test_domainnet_bad_options_and_files_are_one_line_errors(tmp_path):
    _domainnet(tmp_path, domains=("clipart",))
    with pytest.raises(BenchmarkError, match=r"domains: unknown name 'photo'; allowed: clipart, infograph"):
        load_benchmark("domainnet", root=str(tmp_path), domains=["photo"])
    with pytest.raises(BenchmarkError, match=r"resize: expected an integer >= 1, got 0"):
        load_benchmark("domainnet", root=str(tmp_path), resize=0)
    with pytest.raises(BenchmarkError, match=rf"{tmp_path}/sketch_train.txt: missing \(DomainNet needs"):
        load_benchmark("domainnet", root=str(tmp_path), domains=["clipart", "sketch"])
    listing = tmp_path / "clipart_train.txt"
    listing.write_text(listing.read_text()[:-20])  # cut inside the last line
    with pytest.raises(
        BenchmarkError, match=r"clipart_train.txt: line 10: expected '<domain>/<class>/<file>.jpg <label>'"
    ):
        load_benchmark("domainnet", root=str(tmp_path), domains=["clipart"])
    _domainnet(tmp_path, domains=("clipart",))
    next((tmp_path / "clipart" / "zebra").iterdir()).unlink()
    with pytest.raises(BenchmarkError, match=r"clipart/zebra/clipart_002_\w+.jpg: missing"):
        load_benchmark("domainnet", root=str(tmp_path), domains=["clipart"])


# ---------------------------------------------------------------- CIFAR-10 + STL-10


def _cifar_batch(path: Path, labels: list[int]) -> None:
    """Image i: top half red; green level 20 * label (a row: 1024 R, 1024 G, 1024 B, row-major)."""
    images = np.stack([_top_red(32, 32) for _ in labels]).astype(np.int64)
    images[..., 1] = [[[20 * label]] for label in labels]
    rows = images.astype(np.uint8).transpose(0, 3, 1, 2).reshape(len(labels), 3072)
    with open(path, "wb") as file:
        pickle.dump({b"batch_label": b"x", b"labels": list(labels), b"data": rows, b"filenames": []}, file)


def _stl(folder: Path, split: str, labels: list[int]) -> None:
    """Image i: top half red; green level 20 * label; each channel written column-major."""
    images = np.stack([_top_red(96, 96) for _ in labels]).astype(np.int64)
    images[..., 1] = [[[20 * label]] for label in labels]
    chw = images.astype(np.uint8).transpose(0, 3, 1, 2)
    (folder / f"{split}_X.bin").write_bytes(chw.transpose(0, 1, 3, 2).tobytes())  # column-major
    (folder / f"{split}_y.bin").write_bytes(bytes(labels))


def _cifar_stl(root: Path) -> None:
    cifar = root / "cifar-10-batches-py"
    stl = root / "stl10_binary"
    cifar.mkdir(parents=True)
    stl.mkdir(parents=True)
    for i in range(1, 6):
        _cifar_batch(cifar / f"data_batch_{i}", list(range(10)) * 2)  # 20 per batch, 2 frogs
    _cifar_batch(cifar / "test_batch", list(range(10)))
    _stl(stl, "train", list(range(1, 11)) * 2)  # 20, 2 monkeys
    _stl(stl, "test", list(range(1, 11)))


def test_cifar_stl_shares_nine_classes_and_reads_both_formats_upright(tmp_path):
    _cifar_stl(tmp_path)
    bench = load_benchmark("cifar_stl", root=str(tmp_path), val_fraction=0.25)
    assert bench.setting == "mdl" and bench.objectives == ["cifar10", "stl10"]
    assert [(t.name, t.num_outputs) for t in bench.tasks] == [("label", 9)]
    assert bench.extras["classes"] == list(CLASSES) and "frog" not in CLASSES and "monkey" not in CLASSES
    assert bench.sizes() == {
        "cifar10": {"train": 68, "val": 22, "test": 9},  # 100 - 10 frogs, 25% to val
        "stl10": {"train": 14, "val": 4, "test": 9},  # 20 - 2 monkeys
    }
    assert bench.input_shape == (3, 32, 32)
    cifar_green = {0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 7: 6, 8: 7, 9: 8}  # original -> shared label
    stl_green = {1: 0, 2: 2, 3: 1, 4: 3, 5: 4, 6: 5, 7: 6, 9: 7, 10: 8}  # car is 3 in STL-10
    for domain, mapping in (("cifar10", cifar_green), ("stl10", stl_green)):
        for split in ("train", "val", "test"):
            data = bench.split(split, domain)
            original = (data.inputs[:, 1].mean((1, 2)) * 255 / 20).round().long().tolist()
            assert data.targets["label"].tolist() == [mapping[o] for o in original]
            # upright: the red half is on top, full width (a transposed STL image is red on the left)
            assert data.inputs[:, 0, :14].min() > 0.95 and data.inputs[:, 0, 18:].max() < 0.05
    assert sorted(bench.split("test", "stl10").targets["label"].tolist()) == list(range(9))

    big = load_benchmark("cifar_stl", root=str(tmp_path), resize=48, max_per_split=5)
    assert big.input_shape == (3, 48, 48)
    assert big.sizes()["stl10"] == {"train": 5, "val": 2, "test": 5}


def test_cifar_stl_missing_and_truncated_files_are_one_line_errors(tmp_path, monkeypatch):
    _cifar_stl(tmp_path)
    monkeypatch.setenv("SCALARIZE_DATA", str(tmp_path))
    assert load_benchmark("cifar_stl", max_per_split=2).extras["root"] == str(tmp_path.resolve())

    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    with open(batch, "rb") as file:
        content = pickle.load(file, encoding="bytes")
    content[b"data"] = content[b"data"][:12]
    with open(batch, "wb") as file:
        pickle.dump(content, file)
    with pytest.raises(BenchmarkError, match=r"data_batch_3: truncated \(expected 20 rows, got 12\)"):
        load_benchmark("cifar_stl")
    batch.write_bytes(pickle.dumps(content)[:500])
    with pytest.raises(BenchmarkError, match=r"data_batch_3: truncated or not a CIFAR-10 batch"):
        load_benchmark("cifar_stl")
    batch.unlink()
    with pytest.raises(BenchmarkError, match=r"cifar-10-batches-py/data_batch_3: missing \(CIFAR-10 \+ STL-10 needs"):
        load_benchmark("cifar_stl")

    _cifar_batch(batch, list(range(10)))
    x = tmp_path / "stl10_binary" / "test_X.bin"
    x.write_bytes(x.read_bytes()[:-7])
    with pytest.raises(DataFileError, match=r"test_X.bin: truncated \(expected 10 images of 27648 bytes"):
        cifar_stl()
    (tmp_path / "stl10_binary" / "test_y.bin").unlink()
    with pytest.raises(MissingDataError, match=r"stl10_binary/test_y.bin: missing"):
        cifar_stl()


def test_the_loaders_are_registered_with_their_options():
    assert benchmark_options("celeba") == {
        "root": None,
        "attributes": None,
        "resize": 64,
        "max_per_split": 0,
        "seed": 0,
        "storage": "auto",
    }
    assert set(benchmark_options("domainnet")) == {
        "root",
        "domains",
        "resize",
        "max_per_split",
        "val_fraction",
        "seed",
        "storage",
    }
    assert set(benchmark_options("cifar_stl")) == {"root", "resize", "max_per_split", "val_fraction", "seed", "storage"}
    with pytest.raises(BenchmarkError, match=r"benchmark.options.resize: expected an integer"):
        load_benchmark("cifar_stl", resize=32.5)


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (Path(self.marker),))


def test_a_cifar_batch_that_would_run_code_is_refused(tmp_path):
    _cifar_stl(tmp_path)
    marker = tmp_path / "ran"
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    with open(batch, "rb") as file:
        content = pickle.load(file, encoding="bytes")
    content[b"batch_label"] = _RunsCode(str(marker))
    batch.write_bytes(pickle.dumps(content))
    with pytest.raises(BenchmarkError, match=r"data_batch_2: refused: pathlib.*Path.touch is not allowed"):
        load_benchmark("cifar_stl", root=str(tmp_path))
    assert not marker.exists()
