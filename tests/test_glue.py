"""Every glued float on the built site is quoted with a format spec, so no page shows 0.010000000000000002.

The build leaves each executed page's glue data in `_build/jupyter_execute/`,
as `<page>.glue.json` (name -> the glued output). A glued NumPy scalar
(`np.float64(0.5)`) is refused: myst-nb cannot format it. A glued value whose text is a float must be quoted in the page's source
as {glue:text}`name:.3f` (any format spec), never bare. Without a built site
this skips, or fails under ZERO2GPT_REQUIRE_SITE=1 as the site tests do.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "_build" / "jupyter_execute"
REQUIRED = os.environ.get("ZERO2GPT_REQUIRE_SITE") == "1"
GLUE_PREFIX = "application/papermill.record/"
# {glue}`key`, {glue:text}`key:.3f`, {glue:any}`key`; the path form `page::key` is not used in this book.
GLUE_ROLE = re.compile(r"\{glue(?::(?:text|any))?\}`([^`:]+)(?::([^`]*))?`")
FLOAT_TEXT = re.compile(r"^(?:np\.float\d+\()?([-+]?(?:\d+\.\d*|\.\d+|\d+(?:\.\d*)?[eE][-+]?\d+|nan|inf))\)?$")
PAGES = sorted(path for path in (ROOT / "chapters").glob("[0-9][0-9]_*.md")) + sorted((ROOT / "book").glob("*.md"))


def glued_texts(glue_data: dict) -> dict[str, str]:
    """Each glue name of a built page (its .glue.json), with the plain text of its value."""
    found = {}
    for name, output in glue_data.items():
        data = output.get("data", {})
        found[name] = data.get("text/plain", data.get(GLUE_PREFIX + "text/plain", ""))
    return found


def numpy_scalars(glued: dict[str, str]) -> list[str]:
    """Glued values that are NumPy scalars (np.float64(...)): myst-nb cannot apply a format spec to them."""
    return [f"{name} = {text.strip()}" for name, text in glued.items() if re.match(r"^np\.\w+\(", text.strip())]


def unformatted_floats(source: str, glued: dict[str, str]) -> list[str]:
    """The glue names in ``source`` that hold a float and are quoted without a format spec."""
    bad = []
    for name, spec in GLUE_ROLE.findall(source):
        text = glued.get(name.strip(), "")
        if FLOAT_TEXT.match(text.strip()) and not spec:
            bad.append(f"{name.strip()} = {text.strip()}")
    return bad


def test_the_check_finds_a_bare_float_and_passes_formatted_ones():
    glued = {"rate": "0.010000000000000002", "loss": "np.float64(0.123456789)", "steps": "200", "name": "'smoke'"}
    source = ("rate {glue:text}`rate` and {glue}`loss`, formatted {glue:text}`rate:.2f`, "
              "count {glue:text}`steps`, profile {glue:text}`name`")
    assert unformatted_floats(source, glued) == ["rate = 0.010000000000000002", "loss = np.float64(0.123456789)"]
    assert unformatted_floats("{glue:text}`loss:.3f` and {glue:text}`steps:,d`", glued) == []
    assert numpy_scalars(glued) == ["loss = np.float64(0.123456789)"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_glued_floats_carry_a_format_spec(page):
    source = page.read_text()
    if "{glue" not in source:
        return  # nothing glued on this page
    glue_file = EXECUTED / page.relative_to(ROOT).with_suffix(".glue.json")
    if not glue_file.exists():
        if REQUIRED:
            pytest.fail(f"no glue data at {glue_file}: run `make book` first (ZERO2GPT_REQUIRE_SITE=1 forbids skipping)")
        pytest.skip(f"no glue data at {glue_file}: run `make book` first")
    glued = glued_texts(json.loads(glue_file.read_text()))
    quoted = {name.strip() for name, _ in GLUE_ROLE.findall(source)}
    missing = sorted(quoted - set(glued))
    assert not missing, f"{page.name} quotes glue names the build did not record: {', '.join(missing)}"
    assert any(FLOAT_TEXT.match(text.strip()) for text in glued.values()) or not glued, \
        f"{page.name}: none of its glued values reads as a float; is the glue data what this test expects?"
    scalars = numpy_scalars(glued)
    assert not scalars, (f"{page.name} glues NumPy scalars, which myst-nb cannot format (the -W build fails): "
                         f"{', '.join(scalars)}; glue float(x) or int(x)")
    bad = unformatted_floats(source, glued)
    assert not bad, f"{page.name} quotes glued floats without a format spec (add one, like :.3f): {', '.join(bad)}"
