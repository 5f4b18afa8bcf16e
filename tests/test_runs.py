"""zero2gpt.runs: checkpoints written atomically and read without running code; the shared runs folder."""

import os
import zipfile
from pathlib import Path

import pytest
import torch

from zero2gpt import runs
from zero2gpt.runs import CheckpointError, load_checkpoint, run_folder, save_checkpoint

STATE = {"kind": "gpt", "step": 7, "weights": torch.arange(6.0).reshape(2, 3), "log": {"loss": [1.5, 1.25]}}


def test_a_checkpoint_round_trips_and_leaves_no_temporary_file(tmp_path):
    path = save_checkpoint(tmp_path / "run", STATE)
    assert path == tmp_path / "run" / "checkpoint.pt"
    loaded = load_checkpoint(tmp_path / "run", kind="gpt")
    assert loaded["step"] == 7 and loaded["log"] == {"loss": [1.5, 1.25]}
    assert torch.equal(loaded["weights"], STATE["weights"])
    assert sorted(item.name for item in path.parent.iterdir()) == ["checkpoint.pt"]


def test_a_failed_write_keeps_the_old_checkpoint(tmp_path):
    save_checkpoint(tmp_path, STATE)

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("cannot be saved")

    with pytest.raises(RuntimeError, match="cannot be saved"):
        save_checkpoint(tmp_path, {**STATE, "step": 8, "bad": Unsaveable()})
    assert load_checkpoint(tmp_path)["step"] == 7
    assert sorted(item.name for item in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_a_missing_checkpoint_says_where_it_looked(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at .*checkpoint.pt"):
        load_checkpoint(tmp_path / "nothing-here")


def test_a_truncated_checkpoint_is_refused_in_one_line(tmp_path):
    path = save_checkpoint(tmp_path, STATE)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a complete zero2gpt checkpoint") as caught:
        load_checkpoint(path)
    assert "\n" not in str(caught.value)


def test_files_of_another_kind_are_refused(tmp_path):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a complete zero2gpt checkpoint"):
        load_checkpoint(text)
    plain = tmp_path / "plain.pt"
    torch.save({"weights": torch.ones(2)}, plain)  # a real torch file, but not one of ours
    with pytest.raises(CheckpointError, match="not a zero2gpt checkpoint"):
        load_checkpoint(plain)
    save_checkpoint(tmp_path / "other", {**STATE, "kind": "lstm"})
    with pytest.raises(CheckpointError, match="holds a 'lstm' model, not a 'gpt' one"):
        load_checkpoint(tmp_path / "other", kind="gpt")


class _RunsCode:
    """An object whose unpickling would create a file: a stand-in for malicious code in a checkpoint."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_does_not_run(tmp_path):
    marker = tmp_path / "the-code-ran"
    path = tmp_path / "evil.pt"
    torch.save({"format": runs.FORMAT, "version": runs.FORMAT_VERSION, "kind": "gpt", "payload": _RunsCode(marker)}, path)
    assert zipfile.is_zipfile(path)
    with pytest.raises(CheckpointError, match="not a complete zero2gpt checkpoint"):
        load_checkpoint(path)
    assert not marker.exists()


def test_the_output_folder_must_be_a_folder_we_can_write(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        runs.prepare_output_folder(afile)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(PermissionError, match="cannot write into the output folder"):
            runs.prepare_output_folder(locked)


def test_run_folders_are_keyed_by_settings_profile_and_library(tmp_path, monkeypatch):
    monkeypatch.setenv("ZERO2GPT_RUNS", str(tmp_path))
    monkeypatch.setenv("ZERO2GPT_PROFILE", "smoke")
    first = run_folder("gpt-tinyshakespeare", {"n_layer": 2, "steps": 10})
    assert first.parent == tmp_path / "smoke" and first.name.startswith("gpt-tinyshakespeare-")
    assert run_folder("gpt-tinyshakespeare", {"steps": 10, "n_layer": 2}) == first  # order does not matter
    assert run_folder("gpt-tinyshakespeare", {"n_layer": 3, "steps": 10}) != first
    monkeypatch.setattr(runs, "library_hash", lambda: "0" * 16)
    assert run_folder("gpt-tinyshakespeare", {"n_layer": 2, "steps": 10}) != first  # other code, other run
    monkeypatch.setenv("ZERO2GPT_PROFILE", "laptop")
    assert run_folder("gpt-tinyshakespeare", {"n_layer": 2, "steps": 10}).parent == tmp_path / "laptop"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "a b"])
def test_run_names_cannot_leave_the_runs_folder(name):
    with pytest.raises(ValueError, match="run name must be"):
        run_folder(name, {})


def test_the_default_runs_folder_is_git_ignored_in_the_repository(monkeypatch):
    monkeypatch.delenv("ZERO2GPT_RUNS", raising=False)
    folder = runs.runs_dir()
    root = Path(__file__).resolve().parent.parent
    assert folder == root / "runs"
    assert "runs/" in (root / ".gitignore").read_text().splitlines()
