"""A real serving engine for the remote-backend tests: llama-cpp-python's OpenAI-compatible
server (``make engine`` builds it) on the embedded tiny-text, converted to GGUF with the recipe
in its model card (llama.cpp's ``convert_hf_to_gguf.py`` and the ``gguf-py`` bundled in the
same sdist). The GGUF is made once and cached by a hash of the model's files (older ones are
removed); the server starts once per test session, and is stopped by its own PID.

With ``GENMAGIC_REQUIRE_ENGINE`` set (``make test`` sets it) or in CI (``CI`` set) a missing engine
fails the tests; elsewhere they are skipped with the command.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ENGINE_VERSION = "0.3.36"
TINY_TEXT = Path(__file__).parent.parent / "genmagic" / "models" / "tiny-text"


def engine_cache() -> Path:
    return Path(os.environ.get("GENMAGIC_ENGINE_CACHE") or "~/.cache/genmagic/wheels").expanduser()


def missing(what: str) -> None:
    message = (f"{what}; run `make engine` (builds llama-cpp-python[server]=={ENGINE_VERSION} once, "
               f"into {engine_cache()})")
    if os.environ.get("GENMAGIC_REQUIRE_ENGINE") or os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EngineServer:
    """``python -m llama_cpp.server`` on a GGUF file, answering at :attr:`url`."""

    def __init__(self, gguf: Path, log: Path, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        self.gguf, self.log_path, self.extra = gguf, log, extra
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120.0) -> EngineServer:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(self.gguf), "--host", "127.0.0.1",
                 "--port", str(self.port), "--model_alias", "tiny", "--n_threads", "1", "--verbose", "false", *self.extra],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the llama.cpp server exited with {self.proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(self.url + "/models", timeout=2) as answer:
                    if json.load(answer)["data"]:
                        return self
            except urllib.error.HTTPError as err:
                if err.code in (401, 403):  # up, and asking for its API key
                    return self
                time.sleep(0.2)
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the llama.cpp server did not answer {self.url}/models in {timeout:.0f} s")

    def kill(self) -> None:
        """SIGKILL, as a crash would: no goodbye to open streams."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class EngineMissing(RuntimeError):
    """llama-cpp-python or its sdist is not where ``make engine`` puts them."""


def make_tiny_gguf() -> Path:
    """The embedded tiny-text as GGUF (float32), made with the recipe of its model card and cached
    under the engine cache by a hash of the model's files (a fresh checkout finds it; the GGUFs of
    other versions of the model are removed after an hour)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise EngineMissing(f"llama-cpp-python {ENGINE_VERSION} is not installed")
    vendor = engine_cache() / f"llama_cpp_python-{ENGINE_VERSION}" / "vendor" / "llama.cpp"
    script = vendor / "convert_hf_to_gguf.py"
    if not script.is_file():
        raise EngineMissing(f"llama.cpp's converter is not at {script}")
    out = engine_cache() / "gguf" / f"tiny-text-{content_hash(TINY_TEXT)}.gguf"
    for old in out.parent.glob("tiny-text-*.gguf"):  # other versions' (an hour's grace: a parallel run's)
        if old != out and time.time() - old.stat().st_mtime > 3600:
            old.unlink(missing_ok=True)
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(f".{os.getpid()}.part")
        env = {**os.environ, "PYTHONPATH": str(vendor / "gguf-py")}  # the bundled gguf-py, not PyPI's
        done = subprocess.run([sys.executable, str(script), str(TINY_TEXT), "--outfile", str(partial),
                               "--outtype", "f32"], env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"convert_hf_to_gguf.py failed:\n{done.stderr[-2000:]}")
        partial.replace(out)
    return out


def content_hash(folder: Path) -> str:
    """A hash of the files' names and bytes: the same on every checkout (mtimes are not)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_gguf() -> Path:
    try:
        return make_tiny_gguf()
    except EngineMissing as err:
        missing(str(err))
        raise


@pytest.fixture(scope="session")
def llama_server(tiny_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineServer]:
    """One llama.cpp server for the session (model alias ``tiny``)."""
    server = EngineServer(tiny_gguf, tmp_path_factory.mktemp("engine") / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def start_engine(tiny_gguf: Path, tmp_path: Path) -> Iterator[Any]:
    """Start servers of this test's own (to kill or restart); they are all stopped at the end."""
    started: list[EngineServer] = []

    def start(port: int | None = None, extra: tuple[str, ...] = ()) -> EngineServer:
        server = EngineServer(tiny_gguf, tmp_path / "server.log", port, extra).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


if __name__ == "__main__":  # `python tests/conftest_engines.py`: make (or find) the tiny GGUF, print its path
    print(make_tiny_gguf())
