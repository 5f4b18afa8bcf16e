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
- A *lock* (``run_lock``) keeps two processes from training into one folder at
  once: the second is refused with a clear message instead of interleaving its
  checkpoints with the first's. The operating system drops the lock when its
  holder exits, however it exits (even killed with SIGKILL), so a crash never
  leaves a folder locked.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch

from zero2gpt.data import cache_dir, fsync_folder
from zero2gpt.runtime import profile

FORMAT = "zero2gpt-checkpoint"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
LOCK_NAME = ".lock"
_PACKAGE = Path(__file__).resolve().parent
# The folders this process holds locked, each with how many nested run_lock calls hold it.
_HELD: dict[Path, list] = {}


class CheckpointError(ValueError):
    """A checkpoint is missing, incomplete, of another kind, or does not fit the model at hand."""


class RunLockedError(RuntimeError):
    """Another process is training into the same output folder."""


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
    # a plain word: no "/", "..", or absolute path can take the folder out of the runs folder
    if not isinstance(name, str) or not name.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"run name must be a string of letters, digits, - and _ only; got {name!r}")
    try:
        key = json.dumps({"settings": dict(settings), "profile": profile(), "library": library_hash()},
                         sort_keys=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"settings must be a mapping of numbers, strings, lists and dicts; {error}") from None
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


def _try_lock(file, wait: bool = False) -> bool:
    """Take an exclusive lock on an open file: at once, or False if another process holds it; with ``wait``,
    when that process lets go."""
    if sys.platform == "win32":
        import msvcrt

        while True:
            file.seek(0)  # msvcrt locks bytes from the current position: always the first one
            try:
                msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                if not wait:
                    return False
                time.sleep(1)
    import fcntl

    try:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


@contextlib.contextmanager
def run_lock(folder: str | os.PathLike, *, wait: bool = False) -> Iterator[Path]:
    """Hold ``folder`` (created if missing) for this process while the ``with`` block runs; a RunLockedError if
    another process holds it, or with ``wait`` (for the shared runs folder) wait until it lets go. Re-entrant:
    a process that holds a folder may take it again (a notebook that trains twice into one folder, a fine-tune
    inside a training script)."""
    folder = prepare_output_folder(folder)
    key = folder.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield folder
        finally:
            _HELD[key][1] -= 1
        return
    file = open(folder / LOCK_NAME, "a+")
    if not _try_lock(file):
        if not wait:
            file.close()
            raise RunLockedError(f"another process is training into {str(folder)!r} (it holds {LOCK_NAME} there); "
                                 "wait for it to finish, stop it, or give another --out folder")
        print(f"waiting for another process that is training into {str(folder)!r}", file=sys.stderr, flush=True)
        _try_lock(file, wait=True)
    _HELD[key] = [file, 1]
    try:
        yield folder
    finally:
        _HELD[key][1] -= 1
        if not _HELD[key][1]:
            del _HELD[key]
            file.close()  # closing the file releases the lock
