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


LONG_EXPORT = 40  # lines: an exported cell longer than this hides behind a teaching version
TEACHING = 25  # lines: the most a teaching cell may have ("about 20")


def defines_something(source: str) -> bool:
    return re.search(r"^(def|class) \w+", source, flags=re.MULTILINE) is not None


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_long_exported_cells_are_hidden_behind_a_teaching_version(path):
    cells = code_cells(path)
    since_last_long = 0  # teaching cells are looked for after the previous long exported cell
    for number, cell in enumerate(cells):
        tags = cell.metadata.get("tags", [])
        lines = cell.source.strip("\n").count("\n") + 1
        if "export" not in tags or lines <= LONG_EXPORT:
            continue
        where = f"{path.name}, code cell {number} ({lines} lines)"
        assert "hide-input" in tags, f"{where}: an exported cell over {LONG_EXPORT} lines must be tagged hide-input"
        teaching = [earlier for earlier in cells[since_last_long:number]
                    if "export" not in earlier.metadata.get("tags", []) and defines_something(earlier.source)
                    and earlier.source.strip("\n").count("\n") + 1 <= TEACHING]
        assert teaching, (f"{where}: show a teaching version first, an unexported cell of at most {TEACHING} lines "
                          "that defines the idea alone")
        since_last_long = number + 1


CLOCKS = {"perf_counter", "perf_counter_ns", "monotonic", "process_time", "time", "timeit"}


def timing_names(trees: list) -> set[str]:
    """Names whose value comes from a clock: assigned from one, directly or through other such names or functions."""
    import ast

    def mentions(node, tainted: set[str]) -> bool:
        for child in ast.walk(node):
            if isinstance(child, ast.Attribute) and child.attr in CLOCKS and isinstance(child.value, ast.Name) \
                    and child.value.id in {"time", "timeit"}:
                return True
            if isinstance(child, ast.Name) and child.id in tainted:
                return True
        return False

    tainted: set[str] = set()
    while True:
        before = len(tainted)
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.FunctionDef) and any(
                        isinstance(child, ast.Return) and child.value is not None and mentions(child.value, tainted)
                        for child in ast.walk(node)):
                    tainted.add(node.name)  # a function that returns a time
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                        and node.func.attr in {"append", "extend", "insert", "add", "update"} \
                        and isinstance(node.func.value, ast.Name) and any(mentions(arg, tainted) for arg in node.args):
                    tainted.add(node.func.value.id)  # seconds.append(time.perf_counter() - start)
                elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None \
                        and mentions(node.value, tainted):
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    # plain names and tuples of them; `history.seconds = ...` taints the field, not `history`
                    tainted |= {n.id for t in targets for n in ([t] if isinstance(t, ast.Name) else getattr(t, "elts", []))
                                if isinstance(n, ast.Name)}
        if len(tainted) == before:
            return tainted


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_chapter_asserts_a_timing(path):
    """Machines are noisy: a chapter glues a measured time or speed, and asserts none (speed targets live in make bench)."""
    import ast

    trees = []
    for cell in code_cells(path):
        # IPython magics (%pip, !ls) are not Python: read each as `pass` at its indentation.
        source = "\n".join(line[:len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
                           for line in cell.source.splitlines())
        trees.append(ast.parse(source))
    tainted = timing_names(trees)
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assert):
                used = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)} & tainted
                assert not used, f"{path.name} asserts on a timing ({', '.join(sorted(used))}): glue it, and keep speed claims in make bench"
