"""Files and names from outside cannot make the library run code or write outside its folders.

- A checkpoint is read with ``torch.load(weights_only=True)``: a file that would run code when unpickled is
  refused, and the code does not run.
- Run and dataset names cannot climb out of their folders.
- Downloads are https only (plain http only from this machine, for the tests' local server), checked before
  any connection is made, and verified against their SHA-256.
- Nothing in lib/ evaluates a string, unpickles with plain pickle, or starts a shell.
"""

from __future__ import annotations

import ast
import pickle
import re
import urllib.request
from pathlib import Path

import pytest
import torch

from zero2gpt import data
from zero2gpt.finetune import finetune_folder
from zero2gpt.gpt import gpt_preset, load_gpt
from zero2gpt.runs import CheckpointError, load_checkpoint, run_folder

LIBRARY = Path(data.__file__).resolve().parent


def leave_a_mark(path: str) -> None:
    """What the booby-trapped checkpoint would do when unpickled: create a file (harmless, and visible)."""
    Path(path).write_text("code ran")


class BoobyTrap:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return leave_a_mark, (str(self.marker),)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch notes a plain pickle.dump's protocol
@pytest.mark.parametrize("how", ["torch.save", "pickle.dump"])
def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path, how):
    marker, target = tmp_path / "marker.txt", tmp_path / "run" / "checkpoint.pt"
    target.parent.mkdir()
    trap = {"format": "zero2gpt-checkpoint", "version": 1, "kind": "gpt", "model": BoobyTrap(marker)}
    if how == "torch.save":
        torch.save(trap, target)
    else:
        with open(target, "wb") as file:
            pickle.dump(trap, file)
    # the trap works: plain unpickling runs it
    with open(tmp_path / "control.pkl", "wb") as file:
        pickle.dump(BoobyTrap(tmp_path / "control.txt"), file)
    with open(tmp_path / "control.pkl", "rb") as file:
        pickle.load(file)
    assert (tmp_path / "control.txt").exists()

    for load in (load_checkpoint, load_gpt):
        with pytest.raises(CheckpointError, match=re.escape(repr(str(target)))):
            load(target.parent)
    assert not marker.exists(), "loading a checkpoint ran code hidden in it"


@pytest.mark.parametrize("name", ["../escape", "a/b", "/etc", "..", "a\\b", "", " ", "name.with.dots", 7, None])
def test_run_names_cannot_leave_the_runs_folder(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_RUNS", str(tmp_path))
    with pytest.raises(ValueError, match="run name must be a string of letters, digits, - and _ only"):
        run_folder(name, {})


@pytest.mark.parametrize("dataset", ["../escape", "a/b", "/etc/passwd"])
def test_a_fine_tuning_folder_cannot_leave_the_runs_folder(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_RUNS", str(tmp_path))
    config = gpt_preset("smoke")
    with pytest.raises(ValueError, match="run name must be"):
        finetune_folder(dataset, config, config)


@pytest.mark.parametrize("name", ["../tinyshakespeare", "tinyshakespeare/../x", "/etc/passwd", "..", ".", "a\\b"])
def test_dataset_names_cannot_leave_the_data_folder(name, tmp_path, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="would leave the data folder"):
        data.load_text(name)


@pytest.mark.parametrize("url", ["http://example.com/input.txt", "ftp://example.com/input.txt",
                                 "file:///etc/passwd", "HTTP://example.com/x", "//example.com/x", "input.txt"])
def test_only_https_is_downloaded_and_nothing_connects_first(url, tmp_path, monkeypatch):
    def no_network(*arguments, **keywords):
        raise AssertionError(f"a connection was attempted for {url}")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(ValueError, match="only https URLs are allowed"):
        data.download(url, tmp_path / "file.txt", "0" * 64, attempts=1)
    assert list(tmp_path.iterdir()) == []


def test_every_registered_download_is_https_with_a_sha256():
    for name, dataset in data.DATASETS.items():
        assert dataset.url is None or dataset.url.startswith("https://"), name
        assert re.fullmatch(r"[0-9a-f]{64}", dataset.sha256), name


def calls_in_library() -> list[tuple[str, int, str]]:
    """(file, line, what) for each call in lib/ that could run a string or unpickle: eval, exec, compile,
    pickle.load(s), torch.load, os.system, os.popen, and subprocess calls."""
    found = []
    for path in sorted(LIBRARY.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = ast.unparse(node.func)
            risky = name in ("eval", "exec", "compile", "__import__", "pickle.load", "pickle.loads", "os.system",
                             "os.popen", "torch.load", "importlib.import_module") or name.startswith("subprocess.")
            if risky:
                found.append((path.name, node.lineno, ast.unparse(node)))
    return found


def test_nothing_in_the_library_runs_a_string_or_unpickles_unsafely():
    found = calls_in_library()
    # The one torch.load in the library reads checkpoints, and only with weights_only=True.
    assert [(file, call) for file, _, call in found] == [
        ("runs.py", "torch.load(target, map_location='cpu', weights_only=True)")]
