"""A tabular benchmark's packed rows (data/features.py) and the model door that hands their
layout to a builder taking ``features``."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from scalarize.data import Task
from scalarize.data.features import MAX_ID, FeatureSchema, SequenceFeature
from scalarize.models.registry import build_model, register_model

SCHEMA = FeatureSchema(
    dense=("age",), categorical=("city", "device"), vocabularies=(5, 9), sequences=(SequenceFeature("history", 7, 3),)
)


def test_a_row_unpacks_into_dense_ids_and_sequences():
    rows = torch.tensor([[0.5, 3.0, 8.0, 1.0, 2.0, 0.0], [-1.0, 0.0, 1.0, 6.0, 0.0, 0.0]])
    dense, ids, (history,) = SCHEMA.unpack(rows)
    assert SCHEMA.width == 6
    assert dense.tolist() == [[0.5], [-1.0]] and dense.dtype == torch.float32
    assert ids.tolist() == [[3, 8], [0, 1]] and ids.dtype == torch.long
    assert history.tolist() == [[1, 2, 0], [6, 0, 0]]


def test_a_schema_that_does_not_fit_is_one_line():
    with pytest.raises(ValueError, match="^features: 2 categorical columns but 1 vocabularies$"):
        FeatureSchema(categorical=("a", "b"), vocabularies=(3,))
    with pytest.raises(ValueError, match=f"^features: a vocabulary must hold 1 to {MAX_ID} ids, got 0$"):
        FeatureSchema(categorical=("a",), vocabularies=(0,))
    with pytest.raises(ValueError, match="^features: rows have 5 columns, the schema packs 6$"):
        SCHEMA.unpack(torch.zeros(2, 5))


def test_a_builder_that_takes_features_gets_the_benchmarks_layout():
    seen = {}

    def build(input_shape, tasks, features):
        seen["features"] = features
        trunk = nn.Linear(input_shape[0], 4)
        return trunk, {t.name: nn.Linear(4, 1) for t in tasks}

    register_model("features_probe", build)
    tasks = [Task("click", "binary", 1)]
    build_model("features_probe", (SCHEMA.width,), tasks, features=SCHEMA)
    assert seen["features"] is SCHEMA

    def plain(input_shape, tasks):
        return nn.Linear(input_shape[0], 4), {t.name: nn.Linear(4, 1) for t in tasks}

    register_model("features_plain", plain)
    build_model("features_plain", (SCHEMA.width,), tasks, features=SCHEMA)  # not handed to it: no error


def test_a_trunk_family_reads_the_packed_rows_as_they_are():
    model = build_model("mlp", (SCHEMA.width,), [Task("click", "binary", 1)], width=0.05, depth=1, features=SCHEMA)
    features, outputs = model(torch.zeros(3, SCHEMA.width))
    assert outputs["click"].shape[0] == 3
