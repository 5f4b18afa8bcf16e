"""Every chapter has the same anatomy: install cell, module, closing summary, exercises, glossary links."""

from __future__ import annotations

import re
from pathlib import Path

import jupytext
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.md"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


def code_cells(path: Path) -> list:
    return [cell for cell in jupytext.read(path, fmt="md:myst").cells if cell.cell_type == "code"]


def test_chapters_are_in_the_table_of_contents_in_order():
    listed = [file for file in toc_files() if file.startswith("chapters/")]
    assert listed == [f"chapters/{path.stem}" for path in CHAPTERS]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_first_code_cell_installs_the_library_from_the_repository(path):
    first = code_cells(path)[0]
    assert "remove-cell" in first.metadata.get("tags", []), "hide the install cell from the page"
    repository = CONFIG["repository"]["url"]
    assert f'%pip install --quiet "zero2gpt @ git+{repository}"' in first.source
    assert "except ImportError" in first.source, "install only where zero2gpt is missing"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_last_code_cell_reports_time_profile_and_device(path):
    last = code_cells(path)[-1]
    assert "remove-input" in last.metadata.get("tags", [])
    assert last.source.strip().endswith("Markdown(run_summary())")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_closes_with_what_it_added_and_exercises_with_solutions(path):
    text = path.read_text()
    added = text.find("## What we added to `zero2gpt`")
    exercises = text.find("## Exercises")
    assert 0 < added < exercises, "end with 'What we added to `zero2gpt`', then 'Exercises'"
    labels = re.findall(r"```\{exercise-start\}\n:label: (\S+)", text)
    assert 2 <= len(labels) <= 4, f"{path.name} has {len(labels)} exercises; the book gives 2 to 4"
    for label in labels:
        assert re.search(rf"```\{{solution-start\}} {re.escape(label)}\n:class: dropdown\n", text), (
            f"exercise {label} needs a collapsed solution (solution-start with :class: dropdown)"
        )


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_links_its_terms_to_the_glossary(path):
    glossary = (ROOT / "book" / "glossary.md").read_text()
    defined = {term.lower() for term in re.findall(r"^(\S[^\n]*)\n  \S", glossary.split("```{glossary}")[1], flags=re.MULTILINE)}
    used = re.findall(r"\{term\}`([^`<]+?)(?: <([^>]+)>)?`", path.read_text())
    assert used, f"{path.name} links no term to the glossary"
    for text, target in used:
        assert (target or text).lower() in defined, f"{path.name} links {text!r} to a term the glossary lacks"
