"""The root conftest.py: nbval executes MyST chapters and reports failures by chapter and cell."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FRONT = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A chapter
"""


def cell(source: str, tags: str = "") -> str:
    options = f":tags: [{tags}]\n\n" if tags else ""
    return f"\n```{{code-cell}} ipython3\n{options}{source}\n```\n"


def test_a_failing_cell_names_its_chapter_and_cell(pytester):
    pytester.makeconftest((ROOT / "conftest.py").read_text())
    chapters = pytester.mkdir("chapters")
    (chapters / "01_good.md").write_text(FRONT + cell("x = 41") + cell("1 / 0", "raises-exception") + cell("assert x + 1 == 42"))
    (chapters / "02_bad.md").write_text(FRONT + cell("y = 1") + cell("assert y == 2, 'y should be 2'"))
    (chapters / "notes.md").write_text("# Plain Markdown, not a notebook\n")
    result = pytester.runpytest_subprocess("--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider", "chapters")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*chapters/02_bad.md::Cell 1*", "*assert y == 2*", "*y should be 2*"])


def test_every_notebook_is_collected_once():
    listing = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    notebooks = sorted({line.split("::")[0] for line in listing.splitlines() if ".md::" in line})
    expected = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "chapters").glob("*.md"))
    assert expected and set(expected) <= set(notebooks)
    # The executable pages of book/ (a kernel in their front matter) run too: pyproject's testpaths names each.
    pages = sorted(path.relative_to(ROOT).as_posix() for path in (ROOT / "book").glob("*.md")
                   if "kernelspec" in path.read_text(encoding="utf-8").split("\n---", 1)[0])
    assert "book/epilogue.md" in pages and set(pages) <= set(notebooks), sorted(set(pages) - set(notebooks))
    assert all(not name.startswith(("_build", ".venv", "node_modules")) for name in notebooks)
