import os
import re
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
# One Ray authentication mode for every Ray the tests start (local ones and the 2-node cluster):
# Ray caches the mode in the process, and a cluster started under another one refuses its clients.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs 2 workers: one torch thread each, no
    torch.set_num_threads(1)  # oversubscription of the cores


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Derived arrays go to one cache per test session, never to the user's."""
    monkeypatch.setenv("SCALARIZE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def interrupt_at_checkpoint(monkeypatch):
    """``interrupt_at_checkpoint(cls, n)``: the n-th checkpoint ``cls`` saves is written, then the
    process is 'killed' (KeyboardInterrupt), as a kill right after a checkpoint would."""

    def patch(cls, n: int) -> None:
        original, calls = cls.save_checkpoint, []

        def save_then_die(self):
            original(self)
            calls.append(1)
            if len(calls) == n:
                monkeypatch.setattr(cls, "save_checkpoint", original)
                raise KeyboardInterrupt

        monkeypatch.setattr(cls, "save_checkpoint", save_then_die)

    return patch


#: The numerics-heavy tests, by file name: ``.ci/run`` runs them again under other CPUs' kernels
#: (``-m numerics``). A new file whose name matches is in the set without a list to edit.
NUMERICS = re.compile(
    r"population|stacked|resume|precision|pareto|search|designs|pbt|pb2|mopbt|sweep|selection|"
    r"synthetic_linear|gradient_engines|min_norm"
)


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(str(item.fspath))
        if "methods" in path.parent.parts[-1:] or NUMERICS.search(path.stem):
            item.add_marker(pytest.mark.numerics)
