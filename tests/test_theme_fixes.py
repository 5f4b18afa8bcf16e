"""book/theme_fixes.py: launch links to the published notebooks, and no script twice."""

from sphinx.builders.html._assets import _JavaScript

from nbformat import NotebookNode

import types

import myst_nb.core.render
import pytest
from sphinx.errors import ExtensionError

from theme_fixes import drop_repeated_scripts, launch_url, merge_streams, replace_coalesce_streams

SOURCE = "chapters/01_prediction.md"


def test_colab_link_opens_the_notebook_on_the_notebook_branch():
    url = f"https://colab.research.google.com/github/org/repo/blob/main/{SOURCE}"
    assert launch_url(url, SOURCE, "main", "notebooks") == (
        "https://colab.research.google.com/github/org/repo/blob/notebooks/chapters/01_prediction.ipynb"
    )


def test_binder_link_opens_the_notebook_on_the_notebook_branch():
    url = f"https://mybinder.org/v2/gh/org/repo/main?urlpath=lab/tree/{SOURCE}"
    assert launch_url(url, SOURCE, "main", "notebooks") == (
        "https://mybinder.org/v2/gh/org/repo/notebooks?urlpath=lab/tree/chapters/01_prediction.ipynb"
    )


def test_links_to_other_files_are_left_alone():
    url = "https://github.com/org/repo/blob/main/README.md"
    assert launch_url(url, SOURCE, "main", "notebooks") == url


def test_a_script_registered_twice_is_kept_once_and_distinct_scripts_stay():
    first = _JavaScript(None, body="const A = 1", priority=500)
    again = _JavaScript("", body="const A = 1", priority=500)
    other = _JavaScript(None, body="const B = 2", priority=500)
    context = {"script_files": [first, other, again]}
    drop_repeated_scripts(None, "page", "page.html", context, None)
    assert context["script_files"] == [first, other]


def stream(name: str, text: str) -> NotebookNode:
    return NotebookNode(output_type="stream", name=name, text=text)


def test_a_progress_bar_keeps_only_its_last_state():
    # What a kernel sends for a tqdm bar: one message per redraw, each starting with a carriage return.
    outputs = [
        stream("stderr", "\rsearch:   0%|          | 0/10"),
        stream("stdout", "best: 3\n"),
        stream("stderr", "\rsearch:  50%|#####     | 5/10"),
        stream("stderr", "\rsearch: 100%|##########| 10/10\n"),
        NotebookNode(output_type="display_data", data={"text/plain": "a figure"}, metadata={}),
        stream("stdout", "done\n"),
    ]
    merged = merge_streams(outputs)
    assert [output["output_type"] for output in merged] == ["stream", "stream", "display_data"]
    assert merged[0]["text"] == "search: 100%|##########| 10/10\n"
    assert merged[1]["text"] == "best: 3\ndone\n"
    assert outputs[0]["text"] == "\rsearch:   0%|          | 0/10", "the notebook's own outputs stay as they were"


def test_merge_streams_replaces_myst_nb_coalescing():
    import myst_nb.core.render

    import theme_fixes

    class FakeApp:
        def add_config_value(self, *args):
            pass

        def connect(self, *args, **kwargs):
            pass

    theme_fixes.setup(FakeApp())
    assert myst_nb.core.render.coalesce_streams is merge_streams


def test_the_stream_fix_reaches_the_module_myst_nb_renders_with():
    original = myst_nb.core.render.coalesce_streams
    try:
        replace_coalesce_streams(myst_nb.core.render)
        assert myst_nb.core.render.coalesce_streams is merge_streams
    finally:
        myst_nb.core.render.coalesce_streams = original


def test_the_build_fails_loudly_when_myst_nb_moved_the_function():
    moved = types.ModuleType("myst_nb.core.render")  # a render module that no longer has coalesce_streams
    with pytest.raises(ExtensionError, match="no longer calls coalesce_streams"):
        replace_coalesce_streams(moved)
