"""Tables as data: a :class:`~scalarize.data.Benchmark` from a pandas DataFrame, a Parquet or CSV
file (read through pyarrow), a pyarrow Table or a ``{column: array}`` mapping.

A config names the columns::

    benchmark:
      name: table
      options:
        path: data/impressions.parquet          # or {train: a.parquet, val: b.parquet, test: c.parquet}
        dense: [price, age]                     # normalised with the training mean and std
        categorical: [user_id, item_id, city]   # embedded: ids 1.. by training frequency >= min_count
        sequences: {history: 20}                # multi-hot / history: {column: length} (list or "a|b|c")
        targets:                                # binary tasks, in this order
          click: click                          # a 0/1 column (null: undefined label)
          ctcvr: click * purchase               # an expression (scalarize.data.expressions)
          cvr: {label: purchase, where: click == 1}   # defined only where the condition holds
          both: {product: [click, purchase]}
        group: user_id                          # optional: GAUC per user (scalarize.data.auc)
        split: {val: 0.1, test: 0.1, seed: 0}   # or {column: fold, train: 0, val: 1, test: 2}

**Preprocessing is fit on the training split only** (:class:`Preprocessor`): the dense columns'
mean and standard deviation (a null becomes the mean, i.e. 0 after normalisation; a constant
column keeps std 1), and one vocabulary per categorical and sequence column, the values that
occur at least ``min_count`` times in training, sorted, ids 1..V; id 0 is every unknown, rare or
null value and the sequences' padding. Rows are packed by :class:`~scalarize.data.features.FeatureSchema`
into one float32 tensor, so every engine takes the table as it takes images. The fitted state
(:meth:`Preprocessor.state_dict`, JSON) travels in ``benchmark.extras["preprocessor"]``;
:meth:`Preprocessor.transform` packs raw rows at inference the same way
(``scalarize.load(...).predict_table(rows)``).

Everything is columnar: pyarrow kernels and numpy over whole columns (``value_counts``,
``index_in``, ``list_parent_indices``); no Python object is made per row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from numpy.typing import NDArray

from scalarize.data import expressions
from scalarize.data.benchmark import SPLITS, AnySplit, Benchmark, Split
from scalarize.data.features import MAX_ID, FeatureSchema, SequenceFeature
from scalarize.data.task import Task

TableLike = Any  # pa.Table, pandas.DataFrame, {column: array}


def to_table(data: TableLike) -> pa.Table:
    """``data`` as a pyarrow Table (a DataFrame, a Table, a ``{column: array}`` mapping)."""
    if isinstance(data, pa.Table):
        return data
    if hasattr(data, "columns") and hasattr(data, "dtypes"):  # pandas
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        return pa.table({str(k): _array(v) for k, v in data.items()})
    raise ValueError(
        f"a table must be a pandas DataFrame, a pyarrow Table or a {{column: array}} mapping, got {type(data).__name__}"
    )


def _array(value: Any) -> pa.Array:
    if isinstance(value, (pa.Array, pa.ChunkedArray)):
        return value
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    return pa.array(value)


def read_table(
    path: str | os.PathLike[str], columns: Sequence[str] | None = None, file_format: str = "auto"
) -> pa.Table:
    """A Parquet or CSV file (``.csv.gz`` too) read through pyarrow, only ``columns`` when given."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ValueError(f"{path}: no such file (a table is a .parquet or .csv file)")
    kind = file_format if file_format != "auto" else ("parquet" if path.suffix in (".parquet", ".pq") else "csv")
    wanted = list(dict.fromkeys(columns)) if columns is not None else None
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=wanted)
        if kind == "csv":
            import pyarrow.csv as csv

            return csv.read_csv(path, convert_options=csv.ConvertOptions(include_columns=wanted))
    except (pa.ArrowInvalid, pa.ArrowKeyError, KeyError) as error:
        raise ValueError(f"{path}: {str(error).splitlines()[0]}") from None
    raise ValueError(f"format: expected auto, parquet or csv, got {file_format!r}")


def _strings(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    """A column as strings (ids of numbers are their text), one chunk."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


def _vocabulary(values: pa.Array, min_count: int) -> list[str]:
    """The values seen at least ``min_count`` times, sorted (nulls excluded)."""
    counts = pc.value_counts(values.drop_null())
    if not len(counts):
        return []
    kept = counts.field("values").filter(pc.greater_equal(counts.field("counts"), min_count))
    return sorted(kept.to_pylist())  # one entry per distinct value, not per row


def _ids(values: pa.Array, vocabulary: pa.Array) -> NDArray[np.float32]:
    """Ids 1..V of ``values`` in the sorted ``vocabulary``; 0 for unknown, rare or null."""
    index = pc.index_in(values, value_set=vocabulary)
    return np.asarray(pc.fill_null(pc.add(index, 1), 0).to_numpy(zero_copy_only=False), dtype=np.float32)


def _lists(column: pa.ChunkedArray | pa.Array, separator: str) -> pa.Array:
    """A sequence column as a list array: a list column as it is, a string column split at
    ``separator`` (an empty string: an empty list)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        return column
    text = _strings(column)
    parts = pc.split_pattern(text, pattern=separator)
    empty = pc.equal(pc.utf8_length(text), 0)
    return pc.if_else(pc.fill_null(empty, True), pa.scalar([], parts.type), parts)


@dataclass(frozen=True)
class SequenceColumn:
    """A multi-hot or history column packed into ``length`` ids (the first ``length`` kept)."""

    name: str
    length: int
    separator: str = "|"


class Preprocessor:
    """Fits on the training rows and packs any rows into ``[N, width]`` float32 (module docstring)."""

    def __init__(
        self,
        dense: Sequence[str] = (),
        categorical: Sequence[str] = (),
        sequences: Sequence[SequenceColumn] = (),
        min_count: int = 1,
    ) -> None:
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count: expected an integer >= 1, got {min_count!r}")
        names = [*dense, *categorical, *(s.name for s in sequences)]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"column {twice[0]!r} is named twice among dense, categorical and sequences")
        self.dense, self.categorical = list(dense), list(categorical)
        self.sequences, self.min_count = list(sequences), min_count
        self.statistics: dict[str, tuple[float, float]] = {}
        self.vocabularies: dict[str, list[str]] = {}

    @property
    def columns(self) -> list[str]:
        return [*self.dense, *self.categorical, *(s.name for s in self.sequences)]

    def _check(self, table: pa.Table) -> None:
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            raise ValueError(f"the table has no column {missing[0]!r}; columns: {', '.join(table.column_names)}")

    def fit(self, table: pa.Table) -> Preprocessor:
        """Statistics and vocabularies of ``table`` (the training split)."""
        self._check(table)
        for name in self.dense:
            values = self._dense(table, name)
            mean = float(np.nanmean(values)) if np.isfinite(values).any() else 0.0
            std = float(np.nanstd(values)) if np.isfinite(values).any() else 1.0
            self.statistics[name] = (mean, std if std > 0 else 1.0)
        for name in self.categorical:
            self.vocabularies[name] = self._fit_vocabulary(name, _strings(table.column(name)))
        for sequence in self.sequences:
            flat = pc.list_flatten(_lists(table.column(sequence.name), sequence.separator))
            self.vocabularies[sequence.name] = self._fit_vocabulary(sequence.name, _strings(flat))
        return self

    def _fit_vocabulary(self, name: str, values: pa.Array) -> list[str]:
        vocabulary = _vocabulary(values, self.min_count)
        if len(vocabulary) + 1 > MAX_ID:
            raise ValueError(
                f"column {name!r}: {len(vocabulary)} values, more than float32 ids hold ({MAX_ID - 1}); raise min_count"
            )
        return vocabulary

    @staticmethod
    def _dense(table: pa.Table, name: str) -> NDArray[np.float64]:
        column = table.column(name)
        try:
            cast = pc.cast(column, pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(f"dense column {name!r} is not numeric ({column.type}); list it as categorical") from None
        return np.asarray(cast.to_numpy(zero_copy_only=False), dtype=np.float64)

    @property
    def schema(self) -> FeatureSchema:
        """The layout of the packed rows."""
        self._fitted()
        return FeatureSchema(
            dense=tuple(self.dense),
            categorical=tuple(self.categorical),
            vocabularies=tuple(len(self.vocabularies[c]) + 1 for c in self.categorical),
            sequences=tuple(
                SequenceFeature(s.name, len(self.vocabularies[s.name]) + 1, s.length) for s in self.sequences
            ),
        )

    def _fitted(self) -> None:
        if len(self.statistics) != len(self.dense) or len(self.vocabularies) != len(self.categorical) + len(
            self.sequences
        ):
            raise ValueError("the preprocessor is not fitted: call fit(train_table) or from_state(state)")

    def transform(self, data: TableLike) -> torch.Tensor:
        """Raw rows (any :func:`to_table` input) packed as ``[N, width]`` float32."""
        self._fitted()
        table = to_table(data)
        self._check(table)
        width = self.schema.width
        out = np.zeros((table.num_rows, width), dtype=np.float32)
        for j, name in enumerate(self.dense):
            mean, std = self.statistics[name]
            values = (self._dense(table, name) - mean) / std
            out[:, j] = np.where(np.isfinite(values), values, 0.0)
        start = len(self.dense)
        for j, name in enumerate(self.categorical):
            out[:, start + j] = _ids(_strings(table.column(name)), pa.array(self.vocabularies[name], pa.string()))
        start += len(self.categorical)
        for sequence in self.sequences:
            self._pack_sequence(table, sequence, out[:, start : start + sequence.length])
            start += sequence.length
        return torch.from_numpy(out)

    def _pack_sequence(self, table: pa.Table, sequence: SequenceColumn, out: NDArray[np.float32]) -> None:
        lists = _lists(table.column(sequence.name), sequence.separator)
        flat = pc.list_flatten(lists)
        if not len(flat):
            return
        rows = np.asarray(pc.list_parent_indices(lists).to_numpy(), dtype=np.int64)
        position = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left")
        keep = position < sequence.length
        ids = _ids(_strings(flat), pa.array(self.vocabularies[sequence.name], pa.string()))
        out[rows[keep], position[keep]] = ids[keep]

    def state_dict(self) -> dict[str, Any]:
        """The fitted state, JSON-serialisable."""
        self._fitted()
        return {
            "dense": {n: list(self.statistics[n]) for n in self.dense},
            "categorical": {n: self.vocabularies[n] for n in self.categorical},
            "sequences": [
                {"name": s.name, "length": s.length, "separator": s.separator, "vocabulary": self.vocabularies[s.name]}
                for s in self.sequences
            ],
            "min_count": self.min_count,
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Preprocessor:
        """The preprocessor :meth:`state_dict` describes."""
        sequences = [
            SequenceColumn(s["name"], int(s["length"]), s.get("separator", "|")) for s in state.get("sequences", [])
        ]
        made = cls(
            list(state.get("dense", {})), list(state.get("categorical", {})), sequences, int(state.get("min_count", 1))
        )
        made.statistics = {n: (float(v[0]), float(v[1])) for n, v in state.get("dense", {}).items()}
        made.vocabularies = {n: list(v) for n, v in state.get("categorical", {}).items()}
        made.vocabularies.update({s["name"]: list(s["vocabulary"]) for s in state.get("sequences", [])})
        made._fitted()
        return made


# --- targets -----------------------------------------------------------------------------------


def target_expressions(targets: Any) -> dict[str, tuple[str, str | None]]:
    """``{task: (label expression, where expression or None)}`` from the config's ``targets``:
    a list of columns, or a mapping of task to a column or expression, ``{label: ..., where: ...}``
    or ``{product: [a, b, ...]}`` (CTCVR = CTR x CVR)."""
    if isinstance(targets, str):
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    if isinstance(targets, (list, tuple)):
        targets = {str(t): str(t) for t in targets}
    if not isinstance(targets, Mapping) or not targets:
        raise ValueError("targets: expected a list of 0/1 columns or a {task: column | expression} mapping")
    parsed: dict[str, tuple[str, str | None]] = {}
    for name, spec in targets.items():
        where: str | None = None
        if isinstance(spec, Mapping):
            unknown = sorted(set(spec) - {"label", "where", "product"})
            if unknown or ("label" in spec) == ("product" in spec):
                raise ValueError(f"targets.{name}: expected {{label: expr, where: expr}} or {{product: [columns]}}")
            if "product" in spec:
                factors = spec["product"]
                if (
                    not isinstance(factors, (list, tuple))
                    or not factors
                    or not all(isinstance(f, str) for f in factors)
                ):
                    raise ValueError(f"targets.{name}.product: expected a list of columns")
                label = " * ".join(f"({f})" for f in factors)
            else:
                label = str(spec["label"])
            where = None if spec.get("where") is None else str(spec["where"])
        elif isinstance(spec, str):
            label = spec
        else:
            raise ValueError(f"targets.{name}: expected a column, an expression or a mapping, got {spec!r}")
        try:
            expressions.parse(label)
            if where is not None:
                expressions.parse(where)
        except expressions.ExpressionError as error:
            raise ValueError(f"targets.{name}: {error}") from None
        parsed[str(name)] = (label, where)
    return parsed


def target_columns(targets: Mapping[str, tuple[str, str | None]]) -> list[str]:
    """The columns the targets read."""
    used: list[str] = []
    for label, where in targets.values():
        for text in (label, where):
            if text is not None:
                used += [n for n in expressions.names(text) if n not in used]
    return used


def evaluate_target(table: pa.Table, name: str, label: str, where: str | None) -> NDArray[np.float32]:
    """``[N]`` labels in {0, 1}, NaN where undefined (a null, or ``where`` not true)."""
    columns = {c: table.column(c) for c in table.column_names}
    try:
        value = expressions.evaluate(label, columns)
        if where is not None:
            condition = pc.fill_null(expressions.evaluate(where, columns), False)
            value = pc.if_else(condition, value, pa.scalar(None, value.type))
        numbers = pc.cast(value, pa.float64())
    except expressions.ExpressionError as error:
        raise ValueError(f"targets.{name}: {error}") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        raise ValueError(f"targets.{name}: {label!r}: {str(error).splitlines()[0]}") from None
    if isinstance(numbers, pa.Scalar):
        raise ValueError(f"targets.{name}: {label!r} reads no column")
    result = np.asarray(numbers.to_numpy(zero_copy_only=False), dtype=np.float64)
    bad = ~np.isnan(result) & (result != 0) & (result != 1)
    if bad.any():
        raise ValueError(
            f"targets.{name}: a binary label must be 0 or 1 (null: undefined); {label!r} gives "
            f"{result[bad][0]:g} at row {int(np.flatnonzero(bad)[0])}"
        )
    return result.astype(np.float32)


# --- splits ------------------------------------------------------------------------------------


def split_rows(table: pa.Table, split: Mapping[str, Any] | None, seed: int) -> dict[str, NDArray[np.int64]]:
    """Row positions of train/val/test: by a column's values (``{column: c, train: v, val: v,
    test: v}``), or a random partition of the fractions ``val`` and ``test`` (default 0.1 each)
    drawn with ``seed`` (numpy's PCG64)."""
    split = dict(split or {})
    n = table.num_rows
    if "column" in split:
        column = split.pop("column")
        if column not in table.column_names:
            raise ValueError(f"split.column: the table has no column {column!r}")
        values = table.column(column)
        rows: dict[str, NDArray[np.int64]] = {}
        for name in SPLITS:
            if name not in split:
                raise ValueError(f"split: by column {column!r} needs the value of each of train, val, test")
            mask = pc.fill_null(pc.is_in(values, value_set=pa.array([split[name]]).cast(values.type)), False)
            rows[name] = np.flatnonzero(np.asarray(mask.to_numpy(zero_copy_only=False)))
        return rows
    unknown = sorted(set(split) - {"val", "test", "seed"})
    if unknown:
        raise ValueError(
            f"split.{unknown[0]}: unknown; give {{val: fraction, test: fraction}} or {{column: ..., "
            "train: ..., val: ..., test: ...}}"
        )
    fractions = [split.get("val", 0.1), split.get("test", 0.1)]
    if (
        any(isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f < 1 for f in fractions)
        or sum(fractions) >= 1
    ):
        raise ValueError(f"split: val and test must be fractions in (0, 1) summing below 1, got {fractions}")
    order = np.random.default_rng(int(split.get("seed", seed))).permutation(n)
    n_val, n_test = max(1, round(fractions[0] * n)), max(1, round(fractions[1] * n))
    parts = {"val": order[:n_val], "test": order[n_val : n_val + n_test], "train": order[n_val + n_test :]}
    return {k: np.sort(v) for k, v in parts.items()}


# --- the benchmark -----------------------------------------------------------------------------


def sequence_columns(sequences: Any) -> list[SequenceColumn]:
    """``{column: length}`` or ``{column: {length: L, separator: "|"}}`` as :class:`SequenceColumn` s."""
    if sequences is None:
        return []
    if not isinstance(sequences, Mapping):
        raise ValueError("sequences: expected {column: length} or {column: {length: L, separator: '|'}}")
    made = []
    for name, spec in sequences.items():
        spec = {"length": spec} if not isinstance(spec, Mapping) else dict(spec)
        length = spec.get("length")
        if isinstance(length, bool) or not isinstance(length, int) or length < 1:
            raise ValueError(f"sequences.{name}.length: expected an integer >= 1, got {length!r}")
        made.append(SequenceColumn(str(name), length, str(spec.get("separator", "|"))))
    return made


def _names(option: str, value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{option}: expected a list of column names, got {value!r}")
    return list(value)


def _group_ids(table: pa.Table, column: str) -> NDArray[np.float32]:
    """Group ids 0..G-1 of ``column`` (for GAUC), exact in float32."""
    if column not in table.column_names:
        raise ValueError(f"group: the table has no column {column!r}")
    encoded = pc.dictionary_encode(_strings(table.column(column)))
    if len(encoded.dictionary) > MAX_ID:
        raise ValueError(f"group: {len(encoded.dictionary)} groups, more than float32 ids hold ({MAX_ID})")
    return np.asarray(pc.fill_null(encoded.indices, len(encoded.dictionary)).to_numpy(), dtype=np.float32)


def benchmark_from_table(
    table: TableLike | Mapping[str, TableLike],
    *,
    dense: Sequence[str] = (),
    categorical: Sequence[str] = (),
    sequences: Sequence[SequenceColumn] = (),
    targets: Any = None,
    group: str | None = None,
    min_count: int = 1,
    split: Mapping[str, Any] | None = None,
    seed: int = 0,
    name: str = "table",
    description: str = "",
) -> Benchmark:
    """An MTL benchmark with one ``binary`` task (primary metric AUC) per target of ``table``
    (one table split by ``split``, or ``{train: t, val: t, test: t}``); the preprocessing is fit on
    the training rows (module docstring)."""
    parsed = target_expressions(targets)
    if isinstance(table, Mapping) and set(table) == set(SPLITS):
        parts = {s: to_table(table[s]) for s in SPLITS}
    else:
        whole = to_table(table)
        parts = {s: whole.take(pa.array(rows)) for s, rows in split_rows(whole, split, seed).items()}
    for split_name, part in parts.items():
        if not part.num_rows:
            raise ValueError(f"split {split_name!r} has no rows")
    preprocessor = Preprocessor(dense, categorical, sequences, min_count).fit(parts["train"])
    splits: dict[str, AnySplit] = {
        s: Split(preprocessor.transform(part), _targets(part, parsed, group)) for s, part in parts.items()
    }
    tasks = [Task(t, "binary", 1, primary_metric="gauc" if group else "auc") for t in parsed]
    return Benchmark(
        name,
        "mtl",
        tasks,
        {"all": splits},
        description or f"{len(tasks)} binary tasks on a table",
        extras={"features": preprocessor.schema, "preprocessor": preprocessor},
    )


def _targets(
    table: pa.Table, parsed: Mapping[str, tuple[str, str | None]], group: str | None
) -> dict[str, torch.Tensor]:
    groups = _group_ids(table, group) if group else None
    out = {}
    for task, (label, where) in parsed.items():
        labels = evaluate_target(table, task, label, where)
        stacked = labels if groups is None else np.stack([labels, groups], axis=1)
        out[task] = torch.from_numpy(np.ascontiguousarray(stacked))
    return out


def table(
    path: str | dict[str, str] | None = None,
    data: TableLike | None = None,
    format: str = "auto",  # noqa: A002 - the option's name in configs
    dense: list[str] | None = None,
    categorical: list[str] | None = None,
    sequences: dict[str, Any] | None = None,
    targets: Any = None,
    group: str | None = None,
    min_count: int = 1,
    split: dict[str, Any] | None = None,
    seed: int = 0,
) -> Benchmark:
    """The ``table`` benchmark of configs: ``path`` (a Parquet or CSV file, or ``{train, val,
    test}`` files) or ``data`` (a DataFrame, Table or ``{column: array}``, from Python); the
    other options as in the module docstring. Only the named columns are read."""
    dense_names, categorical_names = _names("dense", dense), _names("categorical", categorical)
    sequence_specs = sequence_columns(sequences)
    parsed = target_expressions(targets)
    if (path is None) == (data is None):
        raise ValueError("give path (a .parquet or .csv file, or {train, val, test} files) or data, not both")
    split_column = [split["column"]] if isinstance(split, Mapping) and "column" in split else []
    wanted = [
        *dense_names,
        *categorical_names,
        *(s.name for s in sequence_specs),
        *target_columns(parsed),
        *([group] if group else []),
        *split_column,
    ]
    source: Any
    if isinstance(path, Mapping):
        missing = [s for s in SPLITS if s not in path]
        if missing:
            raise ValueError(f"path: a mapping needs train, val and test files; {missing[0]} is missing")
        source = {s: read_table(path[s], wanted, format) for s in SPLITS}
    elif path is not None:
        source = read_table(path, wanted, format)
    else:
        source = to_table(data)
    return benchmark_from_table(
        source,
        dense=dense_names,
        categorical=categorical_names,
        sequences=sequence_specs,
        targets={k: {"label": v[0], "where": v[1]} for k, v in parsed.items()},
        group=group,
        min_count=min_count,
        split=split,
        seed=seed,
    )
