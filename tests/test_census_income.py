"""Census-Income (KDD): the published layout on a written fixture, and the real test half when
it is in ../shared/data/census-income-kdd/."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from scalarize.data.errors import BenchmarkError
from scalarize.data.loaders.census_income import COLLEGE, COLUMNS
from scalarize.data.registry import load_benchmark

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "census-income-kdd"
# The first row of census-income.test, as published (fields after ", ").
TEMPLATE = (
    "38, Private, 6, 36, 1st 2nd 3rd or 4th grade, 0, Not in universe, Married-civilian spouse present, "
    "Manufacturing-durable goods, Machine operators assmblrs & inspctrs, White, Mexican (Mexicano), Female, "
    "Not in universe, Not in universe, Full-time schedules, 0, 0, 0, Joint one under 65 & one 65+, "
    "Not in universe, Not in universe, Spouse of householder, Spouse of householder, 1032.38, ?, ?, ?, "
    "Not in universe under 1 year old, ?, 4, Not in universe, Mexico, Mexico, Mexico, "
    "Foreign born- Not a citizen of U S , 0, Not in universe, 2, 12, 95, - 50000."
).split(", ")


def _write(path: Path, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for i in range(n):
        row = list(TEMPLATE)
        row[0] = str(20 + i % 50)
        row[4] = COLLEGE[i % 7] if i % 3 else "High school graduate"
        row[7] = "Never married" if i % 2 else "Divorced"
        row[12] = "Male" if i % 4 else "Female"
        row[13] = ("Yes", "No", "Not in universe")[i % 3]
        row[28] = ("Yes", "No", "Not in universe under 1 year old")[i % 3]
        row[39] = str(52 if i % 5 else 10)
        row[18] = str(int(rng.integers(0, 2)) * 100)
        row[41] = "50000+." if i % 6 == 0 else "- 50000."
        lines.append(", ".join(row))
    with gzip.open(path, "wt") as f:
        f.write("\n".join(lines) + "\n")


def test_fixture_in_the_published_layout(tmp_path: Path) -> None:
    assert len(TEMPLATE) == len(COLUMNS) == 42
    _write(tmp_path / "census-income.test.gz", 60, seed=0)
    benchmark = load_benchmark("census_income", root=str(tmp_path), tasks="many", seed=1)
    assert benchmark.sizes()["all"] == {"train": 42, "val": 9, "test": 9}
    assert benchmark.objectives == [
        "income",
        "marital",
        "education",
        "female",
        "full_year",
        "investment",
        "union",
        "moved",
    ]
    assert all(t.primary_metric == "auc" for t in benchmark.tasks)
    targets = {
        k: torch.cat([benchmark.split(s).targets[k] for s in ("train", "val", "test")]) for k in benchmark.objectives
    }
    assert float(targets["income"].sum()) == 10 and float(targets["marital"].sum()) == 30
    assert float(targets["education"].sum()) == 40 and float(targets["female"].sum()) == 15
    assert int(torch.isnan(targets["union"]).sum()) == 20 and int(torch.isnan(targets["moved"]).sum()) == 20
    features = benchmark.extras["features"]
    for source in ("income_50k", "marital_stat", "education", "sex", "union_member", "mig_same", "instance_weight"):
        assert source not in features.dense + features.categorical
    again = load_benchmark("census_income", root=str(tmp_path), tasks="many", seed=1)
    assert torch.equal(again.split("test").inputs, benchmark.split("test").inputs)  # seeded


def test_both_files_follow_the_papers_protocol(tmp_path: Path) -> None:
    _write(tmp_path / "census-income.data.gz", 40, seed=0)
    _write(tmp_path / "census-income.test.gz", 30, seed=1)
    benchmark = load_benchmark("census_income", root=str(tmp_path), tasks="group2")
    assert benchmark.sizes()["all"] == {"train": 40, "val": 15, "test": 15}
    assert benchmark.objectives == ["education", "marital"]
    assert "education" not in benchmark.extras["features"].categorical


def test_missing_and_malformed_files_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError, match="no census-income.data.gz or census-income.test.gz"):
        load_benchmark("census_income", root=str(tmp_path))
    (tmp_path / "census-income.test.gz").write_bytes(gzip.compress(b"1, 2, 3\n4, 5, 6\n"))
    with pytest.raises(BenchmarkError, match="published layout") as error:
        load_benchmark("census_income", root=str(tmp_path))
    assert "\n" not in str(error.value)
    with pytest.raises(BenchmarkError, match="tasks: expected one of group1, group2, many"):
        load_benchmark("census_income", root=str(tmp_path), tasks="group3")


@pytest.mark.skipif(
    not (REAL / "census-income.test.gz").is_file(),
    reason=f"the real Census-Income test half is not in {REAL} (read its README)",
)
def test_real_test_half() -> None:
    benchmark = load_benchmark("census_income", root=str(REAL), tasks="group1")
    sizes = benchmark.sizes()["all"]
    assert sizes == {"train": 69833, "val": 14964, "test": 14965} and sum(sizes.values()) == 99762
    train = benchmark.split("train").targets
    assert float(train["income"].mean()) == pytest.approx(0.062, abs=0.003)  # 6,186 of 99,762 earn > 50K
    assert float(train["marital"].mean()) == pytest.approx(0.432, abs=0.005)  # 43,143 never married
    schema = benchmark.extras["features"]
    assert schema.width == benchmark.split("test").inputs.shape[1] == 7 + 32
    assert max(schema.vocabularies) < 100
