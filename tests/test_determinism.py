"""On a CPU, running a chapter twice gives the same glued numbers, to the last digit.

Chapter 3 is executed twice, each time in a fresh kernel (nbclient, the executor myst-nb itself uses), and the
values it glues are compared exactly: the text of every glued value, and the PNG bytes of every glued figure.
It is the fastest chapter whose glued numbers come out of training (gradient descent, logistic regression,
stochastic gradient descent with random batches), so seeds matter in it.

Glued timings cannot repeat, and are left out by a naming convention the chapters follow: a glue name that
contains one of ``TIMING_WORDS`` is a measurement of speed or time (``microseconds_per_evaluation``,
``measured_million_years_20``, ``tokens_per_second``). A timing glued under another name would make this test
fail, which is how it would be noticed.
"""

from __future__ import annotations

import os
from pathlib import Path

import jupytext
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "chapters" / "03_regression.md"
GLUE_PREFIX = "application/papermill.record/"
TIMING_WORDS = ("second", "speed", "measured", "elapsed", "timing", "_ms", "minutes", "per_hour")


def is_timing(name: str) -> bool:
    """Whether a glue name says it holds a measured time or speed (the book's convention)."""
    return any(word in name for word in TIMING_WORDS)


def executed_glue(chapter: Path) -> dict[str, dict[str, str]]:
    """Execute ``chapter`` in a fresh kernel, in its own folder; every glued value, by name and MIME type."""
    notebook = jupytext.read(chapter, fmt="md:myst")
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(chapter.parent)}}).execute()
    glued: dict[str, dict[str, str]] = {}
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            name = output.get("metadata", {}).get("scrapbook", {}).get("name")
            for mime, value in output.get("data", {}).items():
                if name and mime.startswith(GLUE_PREFIX):
                    glued.setdefault(name, {})[mime[len(GLUE_PREFIX):]] = value
    return glued


def test_the_timing_convention_finds_timings_and_only_them():
    assert is_timing("microseconds_per_evaluation") and is_timing("measured_million_years_20")
    assert is_timing("tokens_per_second") and is_timing("speedup")  # a ratio of two timings
    assert not any(map(is_timing, ["final_log_loss", "w_after_descent", "sgd_excess", "n_steps", "fig_logistic"]))


@pytest.mark.skipif(os.environ.get("ZERO2GPT_PROFILE") not in (None, "smoke"),
                    reason="runs the chapter twice; the smoke profile keeps that quick")
def test_a_chapter_run_twice_on_the_cpu_glues_the_same_values(monkeypatch):
    monkeypatch.setenv("ZERO2GPT_PROFILE", "smoke")
    monkeypatch.setenv("ZERO2GPT_DEVICE", "cpu")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    first, second = executed_glue(CHAPTER), executed_glue(CHAPTER)
    compared = sorted(name for name in first if not is_timing(name))
    assert {"w_after_descent", "final_log_loss", "sgd_excess"} <= set(compared), "the training results are glued"
    assert sorted(first) == sorted(second)
    differ = [name for name in compared if first[name] != second[name]]
    assert not differ, {name: (first[name].get("text/plain"), second[name].get("text/plain")) for name in differ}
