"""The Python examples in README.md and the how-to-use page run, and print what they say."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md", "book/how-to-use.md"]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.DOTALL)


@pytest.mark.parametrize("page", PAGES)
def test_examples_run(page, capsys):
    blocks = python_blocks(ROOT / page)
    assert blocks, f"{page} has no Python example"
    for block in blocks:
        exec(compile(block, page, "exec"), {})
        printed = capsys.readouterr().out
        for claimed in re.findall(r"# .*?(\[[0-9 ]+\])", block):
            assert claimed in printed, f"{page} says the example prints {claimed}, but it printed {printed!r}"
