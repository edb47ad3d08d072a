"""The store's trackers read the store through its public methods: ``store/tracking.py`` neither
imports ``store/database.py`` (which imports it) nor touches the store's private connection."""

import ast
from pathlib import Path

import scalarize.store.tracking as tracking

SOURCE = Path(tracking.__file__).read_text()


def _imported_modules(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_tracking_does_not_import_the_database():
    assert "scalarize.store.database" not in _imported_modules(SOURCE)
    assert "scalarize.store" not in _imported_modules(SOURCE)


def test_tracking_uses_no_private_member_of_the_store():
    assert "_connection" not in SOURCE


def test_evaluation_step_is_public(tmp_path):
    from scalarize.store.database import Store

    with Store(tmp_path) as store:
        store.start_run("r", "main", {}, "f")
        store.record_evaluation("r", 0, 5, {"val": {"m": 1.0}})
        assert store.evaluation_step("r", 0) == 5
        assert store.evaluation_step("r", 1) is None
