"""Shared fixtures: a tiny GPT-2 built in code, an isolated GENMAGIC_HOME, a real IPython shell."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).parent))

from conftest_engines import llama_server, start_engine, tiny_gguf  # noqa: F401  (a real serving engine)
from fake_backend import EchoBackend
from fault_server import fault_server


@pytest.fixture(scope="session", autouse=True)
def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from genmagic.testing import build_tiny_text_model

    return build_tiny_text_model(tmp_path_factory.mktemp("models") / "tiny-gpt2", context=128)


@pytest.fixture(autouse=True)
def genmagic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own history, config and working directory."""
    home = tmp_path / "home"
    monkeypatch.setenv("GENMAGIC_HOME", str(home))
    monkeypatch.setenv("GENMAGIC_CONFIG_DIR", str(tmp_path / "config"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return home


@pytest.fixture(autouse=True)
def echo_backend() -> Any:
    from genmagic import registry

    registry.register_backend("echo", EchoBackend)
    yield EchoBackend
    registry.unregister_backend("echo")


@pytest.fixture(scope="session")
def _shell() -> Any:
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython()
    shell.run_line_magic("load_ext", "genmagic")
    return shell


@pytest.fixture
def ip(_shell: Any, tiny_text_dir: Path) -> Any:
    """The real IPython shell with genmagic loaded; ``tiny`` is registered as the tiny GPT-2."""
    import genmagic

    magics = genmagic._magics
    magics.conversation.clear()
    magics.default_text_model = ""
    engine = magics.engine
    engine.registry._session.clear()
    engine.registry._session_defaults.clear()
    engine.registry._loaded_stamp = None
    engine._checks = None  # the default safety checks, at the default level
    engine.safety_level = None
    _shell.run_line_magic("genmagic", f"register tiny {tiny_text_dir}")
    yield _shell
    for name in [k for k in _shell.user_ns if k.startswith("t_")]:
        del _shell.user_ns[name]


def run(ip: Any, cell: str) -> Any:
    """Run a cell; return its result or raise the exception it raised."""
    result = ip.run_cell(cell)
    if result.error_before_exec is not None:
        raise result.error_before_exec
    if result.error_in_exec is not None:
        raise result.error_in_exec
    return result.result


@pytest.fixture
def server() -> Any:
    """A local OpenAI-compatible endpoint that misbehaves on cue (tests/fault_server.py)."""
    with fault_server() as s:
        yield s



def kernel_execute(km: Any, kc: Any, code: str, interrupt_on: str = "", delay: float = 0.2) -> tuple[dict, list[dict]]:
    """Run ``code`` in a real kernel; its reply and iopub messages. With ``interrupt_on``, interrupt the
    kernel ``delay`` seconds after the first output whose HTML contains that text."""
    import time

    msg_id = kc.execute(code)
    seen: list[dict] = []
    interrupted = False
    while True:
        msg = kc.get_iopub_msg(timeout=300)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        seen.append(msg)
        content = msg["content"]
        if interrupt_on and not interrupted and interrupt_on in content.get("data", {}).get("text/html", ""):
            time.sleep(delay)
            km.interrupt_kernel()
            interrupted = True
        if msg["msg_type"] == "status" and content["execution_state"] == "idle":
            break
    while True:  # the reply to this request (a kernel_info reply from the start may still be queued)
        reply = kc.get_shell_msg(timeout=120)
        if reply["parent_header"].get("msg_id") == msg_id:
            return reply["content"], seen
