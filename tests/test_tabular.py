"""Tables as data: preprocessing fit on train only, packing, derived targets, masks, config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from scalarize.data import expressions
from scalarize.data.errors import BenchmarkError
from scalarize.data.registry import load_benchmark
from scalarize.data.tabular import Preprocessor, SequenceColumn, benchmark_from_table, split_rows


def _frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "price": rng.normal(5, 2, n),
            "user": rng.integers(0, 20, n),
            "city": rng.choice(["a", "b", "c"], n),
            "tags": rng.choice(["x|y", "y", "", "z|x|y|w"], n),
            "click": rng.random(n) < 0.4,
            "purchase": (rng.random(n) < 0.5).astype(np.int64),
        }
    )


def test_preprocessor_fits_train_only_and_maps_rare_and_unknown_to_zero() -> None:
    train = pa.table({"x": [1.0, 3.0, None], "c": ["a", "a", "b"], "s": ["p|q", "p", ""]})
    pre = Preprocessor(["x"], ["c"], [SequenceColumn("s", 3)], min_count=2).fit(train)
    assert pre.statistics["x"] == (2.0, 1.0)
    assert pre.vocabularies == {"c": ["a"], "s": ["p"]}  # b and q occur once: rare
    rows = pre.transform(pa.table({"x": [2.0, None], "c": ["a", "zzz"], "s": ["p|q|p|p", None]}))
    assert rows.dtype == torch.float32 and rows.shape == (2, pre.schema.width) == (2, 5)
    assert rows.tolist() == [[0.0, 1.0, 1.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0]]
    dense, ids, sequences = pre.schema.unpack(rows)
    assert ids.dtype == torch.long and sequences[0].tolist() == [[1, 0, 1], [0, 0, 0]]


def test_preprocessor_state_round_trips_through_json() -> None:
    pre = Preprocessor(["price"], ["city", "user"], [SequenceColumn("tags", 2)]).fit(pa.Table.from_pandas(_frame()))
    again = Preprocessor.from_state(json.loads(json.dumps(pre.state_dict())))
    rows = _frame(30, seed=1)
    assert torch.equal(pre.transform(rows), again.transform(rows)) and again.schema == pre.schema


def test_benchmark_from_table_targets_masks_and_groups() -> None:
    frame = _frame()
    benchmark = benchmark_from_table(
        frame,
        dense=["price"],
        categorical=["user", "city"],
        sequences=[SequenceColumn("tags", 3)],
        targets={
            "ctr": "click",
            "ctcvr": {"product": ["click", "purchase"]},
            "cvr": {"label": "purchase", "where": "click == 1"},
        },
        split={"val": 0.2, "test": 0.2, "seed": 3},
    )
    assert benchmark.sizes()["all"] == {"train": 120, "val": 40, "test": 40}
    assert [t.primary_metric for t in benchmark.tasks] == ["auc"] * 3
    train = benchmark.split("train")
    ctr, ctcvr, cvr = (train.targets[k] for k in ("ctr", "ctcvr", "cvr"))
    assert torch.equal(torch.isnan(cvr), ctr == 0)
    assert torch.equal(ctcvr, ctr * torch.nan_to_num(cvr, nan=0.0))
    assert benchmark.extras["features"].width == train.inputs.shape[1] == 1 + 2 + 3
    # the preprocessing saw only the training rows
    train_rows = split_rows(pa.Table.from_pandas(frame), {"val": 0.2, "test": 0.2, "seed": 3}, 0)["train"]
    assert benchmark.extras["preprocessor"].statistics["price"][0] == pytest.approx(frame.price.iloc[train_rows].mean())
    grouped = benchmark_from_table(frame, categorical=["city"], targets=["click"], group="user")
    assert grouped.split("val").targets["click"].shape == (20, 2) and grouped.tasks[0].primary_metric == "gauc"


def test_table_from_config_reads_parquet_and_csv(tmp_path) -> None:
    frame = _frame()
    frame.to_csv(tmp_path / "t.csv", index=False)
    pq.write_table(pa.Table.from_pandas(frame), tmp_path / "t.parquet")
    options = dict(
        dense=["price"],
        categorical=["user"],
        targets={"ctr": "click", "ctcvr": "click * purchase"},
        split={"val": 0.1, "test": 0.1},
    )
    from_csv = load_benchmark("table", path=str(tmp_path / "t.csv"), **options)
    from_parquet = load_benchmark("table", path=str(tmp_path / "t.parquet"), **options)
    assert torch.equal(from_csv.split("test").targets["ctcvr"], from_parquet.split("test").targets["ctcvr"])
    assert torch.allclose(from_csv.split("train").inputs, from_parquet.split("train").inputs)
    fold = frame.assign(fold=np.arange(len(frame)) % 3)
    by_column = load_benchmark(
        "table",
        data=fold,
        categorical=["city"],
        targets=["click"],
        split={"column": "fold", "train": 0, "val": 1, "test": 2},
    )
    assert by_column.sizes()["all"] == {"train": 67, "val": 67, "test": 66}


@pytest.mark.parametrize(
    "options, message",
    [
        ({"targets": {"x": "__import__('os').system('true')"}}, "Call is not allowed"),
        ({"targets": {"x": "price"}}, "must be 0 or 1"),
        ({"targets": {"x": "nope"}}, "no column 'nope'"),
        ({"targets": ["click"], "dense": ["city"]}, "not numeric"),
        ({"targets": ["click"], "split": {"val": 0.6, "test": 0.5}}, "summing below 1"),
    ],
)
def test_bad_table_options_are_one_line(options, message) -> None:
    with pytest.raises(BenchmarkError, match=message) as error:
        load_benchmark("table", data=_frame(), **options)
    assert "\n" not in str(error.value)


def test_expressions() -> None:
    columns = {"a": pa.array([1, 0, None]), "s": pa.array(["x", "y", "x"]), "b": pa.array([True, False, True])}
    value = lambda text: expressions.evaluate(text, columns).to_pylist()  # noqa: E731
    assert value("a * b") == [1, 0, None]
    assert value("s in ['x', 'z']") == [True, False, True]
    assert value("s == 'x' and not b") == [False, False, False]
    assert value("1 - a") == [0, 1, None]
    assert value("0 <= a < 1") == [False, True, None]
    assert expressions.names("click * (purchase + click)") == ["click", "purchase"]
    for bad in ("a.real", "a[0]", "lambda: 1", "a if b else s"):
        with pytest.raises(expressions.ExpressionError):
            expressions.parse(bad)


def test_a_million_rows_stay_columnar() -> None:
    n = 1_000_000
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=n), "u": rng.integers(0, 100_000, n), "y": rng.integers(0, 2, n)}
    benchmark = benchmark_from_table(data, dense=["x"], categorical=["u"], targets=["y"])
    assert benchmark.split("train").inputs.shape == (800_000, 2)
