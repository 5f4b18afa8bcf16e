"""book/theme_fixes.py: launch links to the published notebooks, and no script twice."""

from sphinx.builders.html._assets import _JavaScript

from theme_fixes import drop_repeated_scripts, launch_url

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
