"""The book's datasets: found on disk when they are there, downloaded safely when not.

Hand-written, not generated: downloading is plumbing, not what the book teaches.

``load_text(name)`` returns the text of a registered dataset (``DATASETS``). It
looks for ``<name>/<file>`` in three places, in order:

1. ``$ZERO2GPT_DATA``, a folder the reader (or CI) filled by hand;
2. the user cache, ``$XDG_CACHE_HOME/zero2gpt`` or ``~/.cache/zero2gpt``;
3. the dataset's canonical https URL, downloaded into the cache.

A dataset written for the book (``url=None``) ships inside the package, in
``zero2gpt/corpora/``, and is read from there.

Every file is checked against its SHA-256 before it is used. A download goes
to a temporary file in the cache folder, is flushed to disk, checked, and only
then renamed into place, so an interrupted or corrupted download never leaves
a file that looks valid, and two processes downloading at once both end with a
good copy. Nothing touches the network at import time.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zero2gpt.checks import check_integer, check_number
from zero2gpt.runtime import tqdm


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: one text file, where it comes from (None: the package's corpora folder), and its
    SHA-256."""

    filename: str
    url: str | None
    sha256: str
    size: int
    description: str


DATASETS: dict[str, Dataset] = {
    "tinyshakespeare": Dataset(
        filename="input.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        size=1_115_394,
        description="Tiny Shakespeare (char-rnn): 40,000 lines from several plays, 65 distinct characters",
    ),
    "reweight-gpt-cats": Dataset(
        filename="file.txt",
        url="https://raw.githubusercontent.com/hunar4321/reweight-gpt/main/data/file.txt",
        sha256="75fa8b21a2e61536762bf8b4d0a2997a6a963dcb4fbfc4f5f5bfbab64c61c87d",
        size=3_444,
        description="27 rhyming quatrains about cats, from the reweight-gpt repository",
    ),
    "cat-poems": Dataset(
        filename="cat_poems.txt",
        url=None,
        sha256="f4e1bd91b38f27169251cc6d57c9a21bb50e503972afc7ce8ddc56604a4a537d",
        size=25_926,
        description="198 short poems about cats, written for this book, in Tiny Shakespeare's characters",
    ),
}

# Where the datasets written for the book live: inside the package.
CORPORA = Path(__file__).resolve().parent / "corpora"

# Plain http is refused, except from this machine itself (the tests' local server).
_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class DatasetError(OSError):
    """A dataset could not be found, downloaded or verified."""


class HashMismatchError(DatasetError):
    """A file's SHA-256 is not the one registered for it."""


def cache_dir() -> Path:
    """The user cache the datasets download into: ``$XDG_CACHE_HOME/zero2gpt``, else ``~/.cache/zero2gpt``."""
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    return (Path(base) if base else Path.home() / ".cache") / "zero2gpt"


def sha256_of(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 hex digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checked_name(name: object) -> Dataset:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string; got {type(name).__name__} {name!r}")
    if name in ("", ".", "..") or any(sep in name for sep in ("/", "\\", os.sep)) or Path(name).is_absolute():
        raise ValueError(f"dataset name {name!r} would leave the data folder: a name is one plain word, "
                         f"one of {', '.join(DATASETS)}")
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def _set_aside(path: Path) -> Path:
    """Rename a bad file out of the way (never delete it: the reader may want to look) and return its new name."""
    aside = path.with_name(path.name + ".corrupt")
    os.replace(path, aside)
    return aside


def _mismatch(what: str, found: str, expected: str, aside: Path | None) -> HashMismatchError:
    kept = f"; the bad file was kept aside as {aside}" if aside else "; remove or replace it"
    return HashMismatchError(f"{what} has SHA-256 {found}, expected {expected}{kept}")


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS):
        return
    raise ValueError(f"refusing to download {url!r}: only https URLs are allowed")


def _fetch_once(url: str, destination: Path, timeout: float, progress: bool) -> None:
    """Stream ``url`` into ``destination`` (a temporary file), flushed to disk; raise on any short read."""
    with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as file:
        expected = response.headers.get("Content-Length")
        total = int(expected) if expected and expected.isdigit() else None
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=Path(urllib.parse.urlsplit(url).path).name,
                  disable=not progress, leave=False) as bar:
            for block in iter(lambda: response.read(1 << 16), b""):
                file.write(block)
                received += len(block)
                bar.update(len(block))
        file.flush()
        os.fsync(file.fileno())
    if total is not None and received != total:
        raise DatasetError(f"download of {url} stopped after {received:,} of {total:,} bytes")


def download(url: str, destination: str | os.PathLike, sha256: str, *, attempts: int = 4, timeout: float = 30.0,
             backoff: float = 1.0, progress: bool = True) -> Path:
    """Download ``url`` to ``destination`` and check its SHA-256; return the destination.

    Up to ``attempts`` tries, ``timeout`` seconds without data failing a try, waiting ``backoff``, then twice as long,
    between tries. The file appears at ``destination`` only once complete and verified. A complete download whose hash
    is wrong is kept beside it as ``<destination>.corrupt`` and raises HashMismatchError at once.
    """
    _check_url(url)
    attempts = check_integer("attempts", attempts, minimum=1)
    timeout = check_number("timeout", timeout, minimum=0, exclusive_minimum=True)
    backoff = check_number("backoff", backoff, minimum=0)
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    last_error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        handle, temporary_name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.",
                                                  suffix=".part")
        os.close(handle)
        temporary = Path(temporary_name)
        try:
            _fetch_once(url, temporary, timeout, progress)
            found = sha256_of(temporary)
            if found != sha256:  # a complete download with the wrong bytes: trying again would not help
                aside = destination.with_name(destination.name + ".corrupt")
                os.replace(temporary, aside)
                raise _mismatch(f"the download of {url}", found, sha256, aside)
            os.replace(temporary, destination)  # atomic: readers see the old state or the whole verified file
            fsync_folder(destination.parent)
            return destination
        except HashMismatchError:
            raise
        except (OSError, http.client.HTTPException) as error:  # URLError, timeouts and resets are OSErrors
            last_error = error
        finally:
            temporary.unlink(missing_ok=True)
    reason = getattr(last_error, "reason", None) or last_error
    raise DatasetError(f"the download of {url} failed after {attempts} attempt(s): {reason}")


def fsync_folder(folder: Path) -> None:
    """Make a rename durable: flush the folder's entry to disk (a no-op where the OS does not allow it)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def dataset_path(name: str, *, progress: bool = True) -> Path:
    """The local path of the registered dataset ``name``: found, or downloaded into the cache, and verified."""
    dataset = _checked_name(name)
    if dataset.url is None:
        path = CORPORA / dataset.filename
        if not path.is_file():
            raise DatasetError(f"{name} ships with the library, but {path} is missing: reinstall zero2gpt")
        found = sha256_of(path)
        if found != dataset.sha256:
            raise _mismatch(f"{name}: {path}", found, dataset.sha256, None)
        return path
    data_root = os.environ.get("ZERO2GPT_DATA", "").strip()
    if data_root:
        path = Path(data_root) / name / dataset.filename
        if path.is_file():
            found = sha256_of(path)
            if found != dataset.sha256:
                raise _mismatch(f"{name}: {path}", found, dataset.sha256, None)
            return path
    cached = cache_dir() / name / dataset.filename
    if cached.is_file():
        found = sha256_of(cached)
        if found == dataset.sha256:
            return cached
        _set_aside(cached)  # a bad cached copy is kept for inspection and fetched again
    try:
        return download(dataset.url, cached, dataset.sha256, progress=progress)
    except HashMismatchError:
        raise
    except DatasetError as error:
        where = f"$ZERO2GPT_DATA/{name}/{dataset.filename} (ZERO2GPT_DATA is {data_root!r})" if data_root \
            else f"$ZERO2GPT_DATA/{name}/{dataset.filename} (ZERO2GPT_DATA is not set)"
        raise DatasetError(f"{name} is not on this machine, and {error}; put a copy at {where} or at {cached}") from None


def load_text(name: str, *, progress: bool = True) -> str:
    """The text of the registered dataset ``name`` (see ``DATASETS``), verified against its SHA-256."""
    path = dataset_path(name, progress=progress)
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: byte {error.start} is {data[error.start]:#04x}") from None
