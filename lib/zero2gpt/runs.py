"""Trained models on disk: checkpoints written safely, read safely, and a runs folder the chapters share.

Hand-written, not generated: saving files is plumbing, not what the book teaches.

- A *checkpoint* is one file, ``checkpoint.pt``, inside a run's folder. It is a
  dictionary of tensors, numbers and strings, marked with ``FORMAT``. It is written
  to a temporary file in the same folder, flushed to disk and renamed into place,
  so a crash or Ctrl-C at any moment leaves either the old checkpoint or the new
  one, never half of one. It is read with ``torch.load(weights_only=True)``,
  which cannot run code hidden in the file.
- The *runs folder* keeps the models that chapters train for later chapters
  (chapter 13's GPT for chapter 14, say): ``$ZERO2GPT_RUNS``, else ``runs/`` in
  the repository (git-ignored), else ``~/.cache/zero2gpt/runs`` outside one. A
  run's folder is named by what produced it: the configuration, the profile and a
  hash of the library's code, so a checkpoint from older code is never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import torch

from zero2gpt.data import cache_dir, fsync_folder
from zero2gpt.runtime import profile

FORMAT = "zero2gpt-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
_PACKAGE = Path(__file__).resolve().parent


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, of another kind, or does not fit the model at hand."""


def runs_dir() -> Path:
    """The folder shared runs live in: ``$ZERO2GPT_RUNS``, else ``runs/`` in the repository, else the user cache."""
    chosen = os.environ.get("ZERO2GPT_RUNS", "").strip()
    if chosen:
        return Path(chosen).expanduser()
    repository = _PACKAGE.parent.parent
    if (repository / "pyproject.toml").is_file() and (repository / "chapters").is_dir():
        return repository / "runs"
    return cache_dir() / "runs"


def library_hash() -> str:
    """16 hex digits that change whenever any of the library's ``.py`` files changes."""
    digest = hashlib.sha256()
    for path in sorted(_PACKAGE.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def run_folder(name: str, settings: Mapping[str, object]) -> Path:
    """The shared folder for the run ``name`` made with ``settings`` (numbers and strings), in this profile,
    by this version of the library: ``runs_dir()/<profile>/<name>-<16 hex digits>``."""
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"run name must be letters, digits, - and _ only; got {name!r}")
    key = json.dumps({"settings": dict(settings), "profile": profile(), "library": library_hash()}, sort_keys=True)
    return runs_dir() / profile() / f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def checkpoint_path(path: str | os.PathLike) -> Path:
    """The checkpoint file of a run: ``path`` itself if it names a file, else ``path/checkpoint.pt``."""
    path = Path(path).expanduser()
    return path if path.suffix == ".pt" or path.is_file() else path / CHECKPOINT_NAME


def prepare_output_folder(path: str | os.PathLike) -> Path:
    """``path`` as a folder that exists and can be written to; a clear error if it is a file or read-only."""
    folder = Path(path).expanduser()
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"output path {str(folder)!r} is a file: give a folder for the run's checkpoint")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise PermissionError(f"cannot write into the output folder {str(folder)!r}: {error.strerror or error}") from None
    return folder


def save_checkpoint(path: str | os.PathLike, state: Mapping[str, object]) -> Path:
    """Write ``state`` (a dict of tensors, numbers, strings, lists and dicts) as a checkpoint, atomically;
    return the file's path. ``path`` is a run folder or a ``.pt`` file."""
    target = checkpoint_path(path)
    prepare_output_folder(target.parent)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            torch.save({"format": FORMAT, "version": FORMAT_VERSION, **state}, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    fsync_folder(target.parent)
    return target


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None) -> dict:
    """The state a checkpoint holds, read without running any code; ``kind`` (e.g. "gpt") must match its own."""
    target = checkpoint_path(path)
    if not target.is_file():
        raise CheckpointError(f"no checkpoint at {str(target)!r}: train one first (zero2gpt train --out ...)")
    try:
        state = torch.load(target, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds: truncated zip, pickle refused, not a zip at all
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{str(target)!r} is not a complete zero2gpt checkpoint (truncated, or another kind "
                              f"of file): {reason[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{str(target)!r} is not a zero2gpt checkpoint (it has no {FORMAT!r} mark)")
    if state.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{str(target)!r} is checkpoint format version {state.get('version')!r}; this library "
                              f"reads version {FORMAT_VERSION}")
    if kind is not None and state.get("kind") != kind:
        raise CheckpointError(f"{str(target)!r} holds a {state.get('kind')!r} model, not a {kind!r} one")
    return state
