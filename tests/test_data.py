"""zero2gpt.data against a local HTTP server on 127.0.0.1: never the real internet."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from zero2gpt import data
from zero2gpt.data import DATASETS, Dataset, DatasetError, HashMismatchError, dataset_path, download, load_text

GOOD = ("To be, or not to be: that is the question.\n" * 2000).encode()
GOOD_SHA = hashlib.sha256(GOOD).hexdigest()
CORRUPT = GOOD[:-2] + b"?\n"  # the same length, one byte changed


class _Handler(http.server.BaseHTTPRequestHandler):
    requests: dict[str, int] = {}

    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass

    def _start(self, length: int) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def do_GET(self) -> None:
        seen = self.requests[self.path] = self.requests.get(self.path, 0) + 1
        if self.path == "/good":
            self._start(len(GOOD))
            self.wfile.write(GOOD)
        elif self.path == "/slow":  # good, in small pieces, so that two downloads overlap
            self._start(len(GOOD))
            for start in range(0, len(GOOD), 8192):
                self.wfile.write(GOOD[start:start + 8192])
                self.wfile.flush()
                time.sleep(0.1)
        elif self.path == "/corrupt":
            self._start(len(CORRUPT))
            self.wfile.write(CORRUPT)
        elif self.path == "/truncated":  # promises all the bytes, sends half, hangs up
            self._start(len(GOOD))
            self.wfile.write(GOOD[: len(GOOD) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif self.path == "/stall":  # sends a little, then nothing for longer than the client waits
            self._start(len(GOOD))
            self.wfile.write(GOOD[:100])
            self.wfile.flush()
            time.sleep(2.0)
        elif self.path == "/flaky" and seen == 1:
            self.send_error(503, "try again")
        elif self.path == "/flaky":
            self._start(len(GOOD))
            self.wfile.write(GOOD)
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def no_local_copies(tmp_path, monkeypatch):
    """An empty cache and no ZERO2GPT_DATA: the loader has to download."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("ZERO2GPT_DATA", raising=False)
    return tmp_path / "cache" / "zero2gpt"


def _register(monkeypatch, url: str, sha256: str = GOOD_SHA) -> str:
    monkeypatch.setitem(DATASETS, "hamlet", Dataset("hamlet.txt", url, sha256, len(GOOD), "a test dataset"))
    return "hamlet"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_a_good_download_is_verified_and_cached(server, no_local_copies, monkeypatch):
    name = _register(monkeypatch, f"{server}/good")
    assert load_text(name, progress=False) == GOOD.decode()
    cached = no_local_copies / name / "hamlet.txt"
    assert cached.read_bytes() == GOOD
    # The second call reads the cache: the server is never asked again.
    before = _Handler.requests["/good"]
    assert dataset_path(name, progress=False) == cached
    assert _Handler.requests["/good"] == before


def test_a_corrupted_download_is_refused_and_kept_aside(server, no_local_copies, monkeypatch):
    name = _register(monkeypatch, f"{server}/corrupt")
    with pytest.raises(HashMismatchError) as caught:
        load_text(name, progress=False)
    message = str(caught.value)
    assert GOOD_SHA in message and hashlib.sha256(CORRUPT).hexdigest() in message and "\n" not in message
    folder = no_local_copies / name
    assert not (folder / "hamlet.txt").exists(), "a file that failed its hash must never sit where a good one would"
    assert (folder / "hamlet.txt.corrupt").read_bytes() == CORRUPT
    assert str(folder / "hamlet.txt.corrupt") in message
    assert _leftovers(folder) == []
    assert _Handler.requests["/corrupt"] == 1, "a complete download with the wrong bytes is not fetched again"


def test_a_truncated_download_leaves_no_file_that_looks_valid(server, tmp_path):
    destination = tmp_path / "out" / "hamlet.txt"
    with pytest.raises(DatasetError, match="failed after 2 attempt"):
        download(f"{server}/truncated", destination, GOOD_SHA, attempts=2, backoff=0, progress=False)
    assert not destination.exists()
    assert _leftovers(destination.parent) == []


def test_a_stalled_download_times_out(server, tmp_path):
    destination = tmp_path / "hamlet.txt"
    started = time.perf_counter()
    with pytest.raises(DatasetError, match="failed after 1 attempt.*timed out"):
        download(f"{server}/stall", destination, GOOD_SHA, attempts=1, timeout=0.3, progress=False)
    assert time.perf_counter() - started < 1.9, "the timeout, not the server, should end the stalled download"
    assert not destination.exists()


def test_a_failed_attempt_is_retried(server, tmp_path):
    destination = download(f"{server}/flaky", tmp_path / "hamlet.txt", GOOD_SHA, attempts=3, backoff=0.01,
                           progress=False)
    assert destination.read_bytes() == GOOD
    assert _Handler.requests["/flaky"] == 2


def test_two_processes_downloading_at_once_both_end_with_a_good_file(server, tmp_path):
    destination = tmp_path / "shared" / "hamlet.txt"
    script = ("import sys; from zero2gpt.data import download; "
              "download(sys.argv[1], sys.argv[2], sys.argv[3], progress=False); print('ok')")
    processes = [subprocess.Popen([sys.executable, "-c", script, f"{server}/slow", str(destination), GOOD_SHA],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err
        assert out.strip() == "ok"
    assert destination.read_bytes() == GOOD
    assert _leftovers(destination.parent) == []


def test_zero2gpt_data_comes_first(tmp_path, monkeypatch, no_local_copies):
    name = _register(monkeypatch, "https://example.invalid/never-fetched")
    (tmp_path / "mine" / name).mkdir(parents=True)
    (tmp_path / "mine" / name / "hamlet.txt").write_bytes(GOOD)
    monkeypatch.setenv("ZERO2GPT_DATA", str(tmp_path / "mine"))
    assert dataset_path(name) == tmp_path / "mine" / name / "hamlet.txt"


def test_a_wrong_file_in_zero2gpt_data_is_an_error_naming_both_hashes(tmp_path, monkeypatch, no_local_copies):
    name = _register(monkeypatch, "https://example.invalid/never-fetched")
    (tmp_path / "mine" / name).mkdir(parents=True)
    (tmp_path / "mine" / name / "hamlet.txt").write_bytes(CORRUPT)
    monkeypatch.setenv("ZERO2GPT_DATA", str(tmp_path / "mine"))
    with pytest.raises(HashMismatchError, match=f"hamlet.txt has SHA-256 {hashlib.sha256(CORRUPT).hexdigest()}, "
                                                f"expected {GOOD_SHA}"):
        load_text(name)
    assert (tmp_path / "mine" / name / "hamlet.txt").exists(), "the reader's own folder is never changed"


def test_a_bad_cached_copy_is_set_aside_and_fetched_again(server, no_local_copies, monkeypatch):
    name = _register(monkeypatch, f"{server}/good")
    (no_local_copies / name).mkdir(parents=True)
    (no_local_copies / name / "hamlet.txt").write_bytes(CORRUPT)
    assert load_text(name, progress=False) == GOOD.decode()
    assert (no_local_copies / name / "hamlet.txt.corrupt").read_bytes() == CORRUPT


def test_offline_without_a_copy_names_the_url_and_zero2gpt_data(server, no_local_copies, monkeypatch):
    import socket

    with socket.socket() as probe:  # a port on this machine that nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed}/hamlet.txt"
    name = _register(monkeypatch, url)
    monkeypatch.setattr(data, "download", functools.partial(download, attempts=1, backoff=0))  # one quick try
    with pytest.raises(DatasetError) as caught:
        load_text(name)
    message = str(caught.value)
    assert url in message and "ZERO2GPT_DATA" in message and "\n" not in message


def test_only_https_is_downloaded(tmp_path):
    with pytest.raises(ValueError, match="only https"):
        download("http://example.com/input.txt", tmp_path / "x", GOOD_SHA)
    with pytest.raises(ValueError, match="only https"):
        download("ftp://example.com/input.txt", tmp_path / "x", GOOD_SHA)


@pytest.mark.parametrize("bad, error, fragment", [
    ("../x", ValueError, "would leave the data folder"),
    ("a/b", ValueError, "would leave the data folder"),
    ("/etc/passwd", ValueError, "would leave the data folder"),
    ("..", ValueError, "would leave the data folder"),
    ("shakespeare", ValueError, "known datasets: tinyshakespeare, reweight-gpt-cats"),
    (3, TypeError, "must be a string; got int 3"),
])
def test_bad_names_are_refused(bad, error, fragment):
    with pytest.raises(error, match=fragment):
        load_text(bad)


def test_download_arguments_are_checked(tmp_path):
    with pytest.raises(ValueError, match="attempts must be an integer >= 1; got 0"):
        download("https://example.com/x", tmp_path / "x", GOOD_SHA, attempts=0)
    with pytest.raises(ValueError, match="timeout must be"):
        download("https://example.com/x", tmp_path / "x", GOOD_SHA, timeout=0)


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path, monkeypatch, no_local_copies):
    latin = "café".encode("latin-1")
    name = "hamlet"
    monkeypatch.setitem(DATASETS, name, Dataset("hamlet.txt", "https://example.invalid/x",
                                                hashlib.sha256(latin).hexdigest(), len(latin), "latin-1"))
    (tmp_path / "mine" / name).mkdir(parents=True)
    (tmp_path / "mine" / name / "hamlet.txt").write_bytes(latin)
    monkeypatch.setenv("ZERO2GPT_DATA", str(tmp_path / "mine"))
    with pytest.raises(ValueError, match="is not UTF-8 text: byte 3 is 0xe9"):
        load_text(name)


def test_importing_touches_no_network():
    script = ("import socket\n"
              "def refuse(*args, **kwargs): raise AssertionError('network touched at import')\n"
              "socket.socket.connect = refuse\nsocket.create_connection = refuse\nsocket.getaddrinfo = refuse\n"
              "import zero2gpt.data\nprint('ok')\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "ZERO2GPT_DATA": ""})
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_registered_datasets_match_the_shared_copies():
    root = os.environ.get("ZERO2GPT_DATA")
    if not root:
        pytest.skip("ZERO2GPT_DATA is not set")
    for name, dataset in DATASETS.items():
        path = dataset_path(name, progress=False)
        assert path.stat().st_size == dataset.size, name
        assert data.sha256_of(path) == dataset.sha256, name


def test_the_book_s_own_cat_poems_ship_with_the_library(no_local_copies, monkeypatch):
    def refuse(*arguments, **keywords):
        raise AssertionError("the cat poems must not be downloaded")

    monkeypatch.setattr(data, "download", refuse)
    text = load_text("cat-poems")
    assert dataset_path("cat-poems") == data.CORPORA / "cat_poems.txt"
    assert len(text) == DATASETS["cat-poems"].size
    poems = text.strip("\n").split("\n\n")
    assert len(poems) >= 150 and all(poem.strip() for poem in poems)
    # Only characters of Tiny Shakespeare's vocabulary, so a Shakespeare model can read and write them.
    shakespeare = set("\n !$&',-.3:;?") | set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    assert set(text) <= shakespeare, sorted(set(text) - shakespeare)


def test_a_changed_package_corpus_is_an_error_naming_both_hashes(tmp_path, monkeypatch):
    (tmp_path / "cat_poems.txt").write_text("The cat sat.\n")
    monkeypatch.setattr(data, "CORPORA", tmp_path)
    with pytest.raises(HashMismatchError, match="cat-poems: .*cat_poems.txt has SHA-256 .*, expected f4e1bd91"):
        load_text("cat-poems")
    (tmp_path / "cat_poems.txt").unlink()
    with pytest.raises(DatasetError, match="ships with the library, but .* is missing"):
        load_text("cat-poems")
