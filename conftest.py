"""Let nbval execute the book's MyST notebooks (chapters/*.md and book/*.md).

nbval 0.11 collects only .ipynb files and reads them with ``nbformat.read``
inside ``IPyNbFile.collect``. Here a subclass lends that collector a reader
that goes through jupytext, so nbval's own collection, tags (``raises-exception``,
``nbval-skip``) and failure reports work unchanged on the Markdown sources.
A failing cell is reported as ``chapters/NN_slug.md::Cell K``.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import jupytext
import nbval.plugin
from nbval.plugin import IPyNbFile

ROOT = Path(__file__).parent
pytest_plugins = ["pytester"]  # tests/test_notebook_collection.py runs pytest on sample chapters
NOTEBOOK_FOLDERS = (ROOT / "chapters", ROOT / "book")


def _read_myst(path: str, as_version: int = 4):
    return jupytext.read(path, fmt="md:myst")


class MystNotebook(IPyNbFile):
    """nbval's notebook collector, reading a MyST Markdown notebook."""

    def collect(self):
        original = nbval.plugin.nbformat
        nbval.plugin.nbformat = SimpleNamespace(read=_read_myst)
        try:
            yield from super().collect()
        finally:
            nbval.plugin.nbformat = original


def _is_notebook(path: Path) -> bool:
    """A Markdown file is a notebook when its jupytext front matter names a kernel."""
    return "kernelspec" in jupytext.read(path, fmt="md:myst").metadata


def pytest_collect_file(file_path: Path, parent):
    options = parent.config.option
    if not (options.nbval or options.nbval_lax):
        return None
    if file_path.suffix == ".md" and file_path.parent in NOTEBOOK_FOLDERS and _is_notebook(file_path):
        return MystNotebook.from_parent(parent, path=file_path)
    return None
