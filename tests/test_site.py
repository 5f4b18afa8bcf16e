"""The built website as a reader meets it: every page in headless Chromium, with no network.

These tests read `_build/html`, so run `make book` first. Without a built site
or without Chromium they skip and say why; `.ci/run` sets
`ZERO2GPT_REQUIRE_SITE=1`, which turns those skips into failures.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
REQUIRED = os.environ.get("ZERO2GPT_REQUIRE_SITE") == "1"
NOT_PAGES = {"_static", "_sources", "_images", "reports"}
PAGES = sorted(
    path.relative_to(SITE).as_posix()
    for path in SITE.rglob("*.html")
    if not NOT_PAGES & set(path.relative_to(SITE).parts) and path != SITE / "index.html"  # a redirect, tested apart
)
CHAPTERS = sorted(f"chapters/{path.stem}.html" for path in (ROOT / "chapters").glob("[0-9][0-9]_*.md"))


def unavailable(reason: str) -> None:
    """Skip, or fail when the run requires the site test (CI)."""
    if REQUIRED:
        pytest.fail(f"{reason} (ZERO2GPT_REQUIRE_SITE=1 forbids skipping)")
    pytest.skip(reason)


def chromium() -> str | None:
    """Path of a Chromium-like browser: $CHROMIUM, else the first on PATH."""
    candidates = [os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"]
    return next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)


@pytest.fixture(scope="module")
def browser():
    if not (SITE / "index.html").exists():
        unavailable(f"no built site at {SITE}: run `make book` first")
    executable = chromium()
    if executable is None:
        unavailable("Chromium not found: install Debian's `chromium` (apt-get install chromium) or set $CHROMIUM")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e '.[test]'")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


class OfflinePage:
    """A page loaded from disk with the network switched off, remembering what it tried to fetch."""

    def __init__(self, browser, relative: str, query: str = ""):
        self.context = browser.new_context(offline=True, viewport={"width": 1280, "height": 1600})
        self.page = self.context.new_page()
        self.outside = []  # requests that left the disk
        self.missing = []  # files the page refers to that are not there
        self.script_errors = []
        self.page.on("request", self._note_request)
        self.page.on("requestfailed", lambda r: self.missing.append(r.url) if r.url.startswith("file:") else None)
        self.page.on("pageerror", lambda error: self.script_errors.append(str(error)))
        self.page.goto((SITE / relative).as_uri() + query, wait_until="load")
        # MathJax typesets after loading; wait for it where the page uses it.
        self.page.evaluate("() => window.MathJax?.startup?.promise ?? true")

    def _note_request(self, request) -> None:
        if not request.url.startswith(("file:", "data:", "blob:", "about:")):
            self.outside.append(request.url)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser):
    opened = []

    def load(relative: str, query: str = "") -> OfflinePage:
        opened.append(OfflinePage(browser, relative, query))
        return opened[-1]

    yield load
    for page in opened:
        page.close()


# Everything a page shows that a reader would call broken, collected in one pass.
INSPECT = """() => {
  const text = el => el.textContent.trim().slice(0, 120);
  const prose = [...document.querySelectorAll('article p, article li, article td, article dd')]
    .filter(el => !el.closest('pre, code, .cell_output, script, mjx-container'));
  return {
    mathElements: document.querySelectorAll('.math').length,
    untypesetMath: [...document.querySelectorAll('.math')].filter(el => !el.querySelector('mjx-container')).map(text),
    rawDelimiters: prose.filter(el => /\\$\\$|\\\\\\[|\\\\\\(/.test(el.textContent)).map(text),
    brokenImages: [...document.images].filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.getAttribute('src')),
    images: document.images.length,
    emptyGlue: [...document.querySelectorAll('.pasted-text, .pasted-inline')].filter(el => !el.textContent.trim()).length,
    glueErrors: /No key found in glue|glue key .* not found/i.test(document.body.innerText),
    errorBoxes: [...document.querySelectorAll('.output.traceback, .output.error')]
      .filter(el => !el.closest('.tag_raises-exception')).map(text),
    warningsShown: [...document.querySelectorAll('.output.stderr')]
      .filter(el => /Warning|Error|Traceback/.test(el.textContent)).map(text),
    // A redrawn bar: an unfinished state (n < total) followed by a later state of the same bar.
    // Several finished bars in one output, one per run, are fine.
    redrawnBars: [...document.querySelectorAll('.output.stderr')].filter(el => {
      const bars = el.textContent.split('\\n')
        .map(line => line.match(/^(.*?)\\s*\\d+%\\|.*?\\|\\s*(\\d+)\\/(\\d+)/)).filter(Boolean);
      return bars.some((bar, i) => bar[2] !== bar[3] && bars.slice(i + 1).some(later => later[1] === bar[1]));
    }).map(text),
    highlightedCode: document.querySelectorAll('.highlight pre span[class]').length,
    links: [...document.querySelectorAll('a[href]')].map(a => a.href),
  };
}"""


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    """The ids a page defines, i.e. the #fragments a link into it may use."""
    return frozenset(re.findall(r'\sid="([^"]+)"', path.read_text(encoding="utf-8")))


def broken_internal_links(links: list[str]) -> list[str]:
    """The links into the site whose file or #fragment does not exist."""
    broken = []
    for link in links:
        parts = urlsplit(link)
        if parts.scheme != "file":
            continue
        target = Path(unquote(parts.path))
        if not target.exists():
            broken.append(link)
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target):
            broken.append(link)
    return broken


@pytest.mark.parametrize("relative", PAGES or ["(no built site)"])
def test_page_reads_well_offline(open_page, relative):
    loaded = open_page(relative)
    found = loaded.page.evaluate(INSPECT)
    assert loaded.outside == [], f"{relative} reached for the network: {loaded.outside}"
    assert loaded.missing == [], f"{relative} refers to files that are not in the site: {loaded.missing}"
    assert loaded.script_errors == [], f"{relative} raised JavaScript errors: {loaded.script_errors}"
    assert found["untypesetMath"] == [], f"{relative}: MathJax left math untypeset: {found['untypesetMath']}"
    assert found["rawDelimiters"] == [], f"{relative}: raw TeX delimiters in the text: {found['rawDelimiters']}"
    assert found["brokenImages"] == [], f"{relative}: images that did not load: {found['brokenImages']}"
    assert found["emptyGlue"] == 0 and not found["glueErrors"], f"{relative}: a glued value is missing"
    assert found["errorBoxes"] == [], f"{relative}: execution errors on the page: {found['errorBoxes']}"
    assert found["warningsShown"] == [], f"{relative}: warnings printed on the page: {found['warningsShown']}"
    assert found["redrawnBars"] == [], f"{relative}: a progress bar shows every redraw: {found['redrawnBars']}"
    assert broken_internal_links(found["links"]) == [], f"{relative}: broken internal links"


def test_front_page_leads_to_the_introduction(browser):
    context = browser.new_context(offline=True)
    page = context.new_page()
    page.goto((SITE / "index.html").as_uri())
    page.wait_for_url("**/book/intro.html", timeout=10_000)
    assert page.locator("h1").first.inner_text().strip()
    context.close()


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_has_the_reader_conveniences(open_page, chapter):
    if chapter not in PAGES:
        unavailable(f"{chapter} is not in the built site: run `make book`")
    loaded = open_page(chapter)
    found = loaded.page.evaluate(INSPECT)
    notebook = Path(chapter).with_suffix(".ipynb").as_posix()
    assert any(link.endswith(f"_sources/{notebook}") for link in found["links"]), "no .ipynb download"
    repository = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    repo_path = urlsplit(repository).path.strip("/")
    assert any("colab.research.google.com/github/" + repo_path in link and link.endswith(notebook) for link in found["links"])
    assert any("mybinder.org/v2/gh/" + repo_path in link and link.endswith(notebook) for link in found["links"])
    assert found["mathElements"] > 0 and found["images"] > 0 and found["highlightedCode"] > 0
    assert any("glossary.html#term-" in link for link in found["links"]), "no term links to the glossary"
    summary = loaded.page.locator("text=The code on this page ran in").first.inner_text()
    assert re.search(r"ran in [\d.]+ s in the (smoke|laptop|full) profile on (cpu|cuda|mps)", summary), summary


def test_build_status_lists_every_chapter(open_page):
    if "book/build-status.html" not in PAGES:
        unavailable("no build-status page in the built site: run `make book`")
    rows = open_page("book/build-status.html").page.locator("table tbody tr").all_inner_texts()
    for chapter in CHAPTERS:
        name = Path(chapter).stem
        assert any(name in row for row in rows), f"{name} missing from the execution table: {rows}"


def test_search_works_offline(open_page):
    loaded = open_page("search.html", "?q=perceptron")
    loaded.page.wait_for_selector("#search-results ul.search li", timeout=15_000)
    results = loaded.page.locator("#search-results ul.search li a").evaluate_all("links => links.map(a => a.href)")
    assert any("chapters/01_prediction.html" in link for link in results), results
    assert loaded.outside == []


@pytest.fixture
def served_site():
    """The site served over HTTP on 127.0.0.1, as `make serve` does; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(SITE))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()
    server.server_close()


def test_site_served_from_loopback_needs_nothing_else(browser, served_site):
    context = browser.new_context()
    elsewhere = []

    def only_loopback(route):
        if route.request.url.startswith(served_site):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.goto(served_site + "chapters/01_prediction.html", wait_until="load")
    page.evaluate("() => window.MathJax?.startup?.promise ?? true")
    assert page.locator("mjx-container").count() > 0
    page.goto(served_site + "search.html?q=perceptron", wait_until="load")
    page.wait_for_selector("#search-results ul.search li", timeout=15_000)
    context.close()
    assert elsewhere == [], f"the served site reached beyond 127.0.0.1: {elsewhere}"


@pytest.mark.parametrize("relative", ["book/intro.html", "chapters/01_prediction.html"])
def test_screenshot_for_people_to_look_at(open_page, relative):
    if relative not in PAGES:
        unavailable(f"{relative} is not in the built site: run `make book`")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / (Path(relative).stem + ".png")
    open_page(relative).page.screenshot(path=target, full_page=True)
    assert target.stat().st_size > 50_000, f"{target} is suspiciously small: a blank page?"
