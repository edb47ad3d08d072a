"""The README's and the documentation's Python examples run as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# In this order: the README's example writes experiments/readme-example, which the quick start's
# "Using a trained model" loads.
DOCUMENTS = ["README.md", "docs/quickstart.md", "docs/own-model.md", "docs/methods.md", "docs/lightning.md"]


def python_blocks(document: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (ROOT / document).read_text(encoding="utf-8"), flags=re.S)


def test_every_document_with_python_examples_is_listed():
    """A Python example added to any page is run here (or the page is added to DOCUMENTS); the
    pages of docs/examples/ embed the scripts of examples/, which tests/test_examples.py runs."""
    pages = ["README.md", *(str(p.relative_to(ROOT)) for p in sorted((ROOT / "docs").rglob("*.md")))]
    pages = [p for p in pages if not p.startswith("docs/examples/")]
    assert sorted(p for p in pages if python_blocks(p)) == sorted(DOCUMENTS)


def test_readme_and_docs_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ran = 0
    for document in DOCUMENTS:
        blocks = python_blocks(document)
        assert blocks, document
        for block in blocks:
            namespace: dict = {}
            exec(compile(block, str(ROOT / document), "exec"), namespace)
            ran += 1
    assert ran >= 6
    assert (tmp_path / "experiments" / "readme-example" / "scalarize.db").is_file()
