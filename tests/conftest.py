import os

import pytest

os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Derived arrays go to one cache per test session, never to the user's."""
    monkeypatch.setenv("SCALARIZE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
