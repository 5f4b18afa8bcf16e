"""Sphinx extension: three corrections to the pages Jupyter Book 1 makes.

- Launch buttons open the chapter as an .ipynb. sphinx-book-theme points Colab
  and Binder at the page's source file, here a MyST Markdown notebook
  (`chapters/01_prediction.md`) on the source branch. Colab opens only .ipynb
  files, so the Pages workflow publishes every chapter converted to .ipynb on
  the branch named by `notebook_launch_branch`, and the links go there.
- Each inline script appears once. sphinx-thebe adds its settings script
  after the HTML builder has copied the registered scripts, so every page
  declared `const THEBE_JS_URL` twice and the browser reported a SyntaxError.
- A progress bar shows its last state only. A text progress bar redraws its
  line with a carriage return, and the kernel sends each redraw as its own
  stream message. myst-nb's `nb_merge_streams` puts a newline after every
  message before it resolves carriage returns, so a page showed every redraw
  on a line of its own. `merge_streams` joins the messages as the terminal
  would, then keeps what follows the last carriage return of each line.
"""

from __future__ import annotations

import inspect
from types import ModuleType
from typing import Any

import myst_nb
import myst_nb.core.render
from nbformat import NotebookNode
from sphinx.application import Sphinx
from sphinx.errors import ExtensionError

# The branch .github/workflows/gpu.yml pushes the executed notebooks to.
NOTEBOOK_BRANCH = "notebooks"


def launch_url(url: str, source: str, source_branch: str, notebook_branch: str) -> str:
    """A Colab or Binder `url` for the Markdown `source`, moved to the .ipynb on `notebook_branch`."""
    if not url.endswith(source):
        return url
    url = url[: -len(".md")] + ".ipynb"
    # Colab: .../blob/<branch>/<path>; Binder: .../v2/gh/<org>/<repo>/<branch>?urlpath=lab/tree/<path>
    for separator in "/?":
        url = url.replace(f"/{source_branch}{separator}", f"/{notebook_branch}{separator}", 1)
    return url


def point_launch_buttons_at_notebooks(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    source = app.env.doc2path(pagename, base=False)
    if not str(source).endswith(".md"):
        return
    options = app.config.html_theme_options
    source_branch = options.get("repository_branch", "main")
    for group in context.get("header_buttons", []):
        if group.get("label") == "launch-buttons":
            for button in group["buttons"]:
                if "url" in button:
                    button["url"] = launch_url(button["url"], str(source), source_branch, app.config.notebook_launch_branch)


def drop_repeated_scripts(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any) -> None:
    seen = set()
    unique = []
    for script in context.get("script_files", []):
        # Registered twice, the same script comes back once with filename None, once with "".
        key = (getattr(script, "filename", script) or None, tuple(sorted(getattr(script, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


def merge_streams(outputs: list[NotebookNode]) -> list[NotebookNode]:
    """The outputs of a cell with each stream (stdout, stderr) in one piece, as a terminal would show it."""
    merged, streams = [], {}
    for output in outputs:
        if output["output_type"] == "stream" and output["name"] in streams:
            streams[output["name"]]["text"] += output["text"]
            continue
        if output["output_type"] == "stream":
            output = streams[output["name"]] = NotebookNode(output)  # a copy: the notebook keeps its own text
        merged.append(output)
    for stream in streams.values():
        lines = stream["text"].split("\n")
        # A carriage return moves back to the start of the line: what follows the last one stays.
        stream["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)
    return merged


def replace_coalesce_streams(render: ModuleType) -> None:
    """Make ``render`` (myst_nb.core.render) merge streams with ``merge_streams``.

    Raises ExtensionError when myst-nb no longer calls ``coalesce_streams`` from
    that module: the fix would then silently do nothing, and pages would show
    every redraw of every progress bar.
    """
    if not callable(getattr(render, "coalesce_streams", None)) or "coalesce_streams(" not in inspect.getsource(render):
        raise ExtensionError(
            f"book/theme_fixes.py: {render.__name__} no longer calls coalesce_streams (myst-nb {myst_nb.__version__}), "
            "so the progress-bar fix cannot apply. Pin myst-nb to a release that does (pyproject.toml) or move the fix.")
    render.coalesce_streams = merge_streams


def setup(app: Sphinx) -> dict[str, Any]:
    # myst-nb calls coalesce_streams when nb_merge_streams is on; ours keeps carriage returns meaningful.
    replace_coalesce_streams(myst_nb.core.render)
    app.add_config_value("notebook_launch_branch", NOTEBOOK_BRANCH, "html")
    # After sphinx-book-theme (priority 501) has made the buttons.
    app.connect("html-page-context", point_launch_buttons_at_notebooks, priority=502)
    app.connect("html-page-context", drop_repeated_scripts, priority=502)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
