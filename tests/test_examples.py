"""Every script of examples/ runs at its CI size (--small), in a fresh process, and the docs
site embeds each one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("*.py"))


def test_every_example_has_its_docs_page():
    assert EXAMPLES
    for name in EXAMPLES:
        page = ROOT / "docs" / "examples" / name.replace(".py", ".md")
        assert f'--8<-- "examples/{name}"' in page.read_text(encoding="utf-8"), page


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_small(name, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCALARIZE_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), "--small"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip()
