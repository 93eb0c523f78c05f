"""The lab sidebar's front end: its jest unit tests, and Playwright driving the system's Chromium
against a real ``jupyter lab`` on 127.0.0.1 whose GENMAGIC_HOME holds text and image runs and one
run held for review (tests/lab_history.py). ``GENMAGIC_UPDATE_SCREENSHOTS=1`` writes the screenshots
to docs/images/ (the README's); otherwise they go to the test's temporary folder.

``make setup`` installs what these need (the node packages in labextension/, Chromium); with
``GENMAGIC_REQUIRE_LAB`` set (``make test``) or in CI, anything missing fails the tests, elsewhere
it skips them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest_engines import free_port

REPO = Path(__file__).resolve().parent.parent
LAB = REPO / "labextension"
BUILT = REPO / "genmagic" / "labextension"
SCREENSHOTS = REPO / "docs" / "images"

SETTINGS = {"defaultTextModel": "tiny-text", "safetyLevel": "warn", "historyPageSize": 4}

pytestmark = pytest.mark.slow


def missing(what: str) -> None:
    message = f"{what}; run `make setup` (installs the node packages in labextension/ and Chromium)"
    if os.environ.get("GENMAGIC_REQUIRE_LAB") or os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def node_tool(name: str) -> Path:
    if shutil.which("node") is None:
        missing("node is not installed")
    tool = LAB / "node_modules" / ".bin" / name
    if not tool.exists():
        missing(f"{tool.relative_to(REPO)} is missing")
    return tool


def chromium() -> str:
    found = shutil.which(os.environ.get("CHROMIUM") or "chromium") or shutil.which("chromium-browser")
    if not found:
        missing(f"Chromium is not installed ({os.environ.get('CHROMIUM') or 'apt-get install -y chromium'})")
    return str(found)


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 900) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{output[-6000:]}"
    return output


def test_panel_logic_jest() -> None:
    output = run([str(node_tool("jest")), "--ci"], LAB)
    assert "failed" not in output.split("Tests:")[-1]


def ensure_built() -> None:
    """The sidebar built from the current sources (jlpm build:prod when a source is newer)."""
    marker = BUILT / "package.json"
    sources = [p for d in ("src", "style", "schema") for p in (LAB / d).rglob("*") if p.is_file()]
    if marker.exists() and max(p.stat().st_mtime for p in sources) <= marker.stat().st_mtime:
        return
    node_tool("tsc")
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    run([str(Path(sys.executable).parent / "jlpm"), "build:prod"], LAB, env)


class Lab:
    """``jupyter lab`` on 127.0.0.1 with its own config, settings and a root with two notebooks."""

    def __init__(self, tmp: Path) -> None:
        self.tmp, self.root, self.home = tmp, tmp / "root", tmp / "genmagic-home"
        self.token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.proc: subprocess.Popen[bytes] | None = None

    def prepare(self) -> dict[str, str]:
        import nbformat

        self.root.mkdir()
        for name in ("story.ipynb", "other.ipynb"):
            nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("%load_ext genmagic")])
            nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            nbformat.write(nb, self.root / name)
        # written by another process, as kernels do: its pid is gone, so no model shows as loaded yet
        run([sys.executable, str(Path(__file__).parent / "lab_history.py"), str(self.home), str(self.root)], REPO,
            dict(os.environ, PYTHONPATH=str(REPO)))
        config = self.tmp / "config"
        (config / "labconfig").mkdir(parents=True)
        (config / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"genmagic.server": True}}}))
        # the "Jupyter news" pop-up would cover the screenshots
        (config / "labconfig" / "page_config.json").write_text(json.dumps(
            {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
        # the sidebar's settings as the Settings Editor saves them: the UI test checks their effect
        settings = self.tmp / "settings" / "genmagic"
        settings.mkdir(parents=True)
        (settings / "sidebar.jupyterlab-settings").write_text(json.dumps(SETTINGS))
        share = self.tmp / "share" / "jupyter" / "labextensions"
        share.mkdir(parents=True)
        (share / "genmagic").symlink_to(BUILT)  # this checkout's build, also where none is installed
        return dict(
            os.environ,
            GENMAGIC_HOME=str(self.home),
            GENMAGIC_CONFIG_DIR=str(self.tmp / "genmagic-config"),
            JUPYTER_CONFIG_DIR=str(config),
            JUPYTER_PATH=str(self.tmp / "share" / "jupyter"),
            JUPYTER_RUNTIME_DIR=str(self.tmp / "runtime"),
            JUPYTERLAB_SETTINGS_DIR=str(self.tmp / "settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(self.tmp / "workspaces"),
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            OMP_NUM_THREADS="1",
        )

    def start(self, env: dict[str, str], timeout: float = 120) -> None:
        log = (self.tmp / "lab.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--allow-root", "--no-browser", "--ip=127.0.0.1",
             f"--port={self.port}", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
             "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited: {self.log()[-4000:]}")
            try:
                request = urllib.request.Request(f"{self.url}genmagic/api/models",
                                                 headers={"Authorization": f"token {self.token}"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise AssertionError(f"jupyter lab did not answer in {timeout} s: {self.log()[-4000:]}")

    def log(self) -> str:
        return (self.tmp / "lab.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # this server's own PID; it shuts its kernels down
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lab, dict[str, str]]]:
    server = Lab(tmp_path)
    env = server.prepare()
    server.start(env)
    try:
        yield server, env
    finally:
        server.stop()


@pytest.fixture
def browser() -> str:
    """Checked before the server starts: a missing browser fails (or skips) at once."""
    node_tool("playwright")
    return chromium()


def test_sidebar_in_a_real_browser(browser: str, lab: tuple[Lab, dict[str, str]]) -> None:
    playwright = node_tool("playwright")
    ensure_built()
    server, env = lab
    shots = SCREENSHOTS if os.environ.get("GENMAGIC_UPDATE_SCREENSHOTS") else server.tmp / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    env = dict(env, GENMAGIC_LAB_URL=server.url, GENMAGIC_LAB_TOKEN=server.token, CHROMIUM=browser,
               GENMAGIC_SCREENSHOTS=str(shots), GENMAGIC_UI_OUT=str(server.tmp / "playwright"))
    try:
        run([str(playwright), "test"], LAB, env, timeout=600)
    except AssertionError as err:
        raise AssertionError(f"{err}\n--- jupyter lab log ---\n{server.log()[-4000:]}") from None
    from genmagic import safety

    os.environ["GENMAGIC_HOME"] = env["GENMAGIC_HOME"]  # the conftest fixture restores it
    assert safety.pending() == []  # the approval in the browser reached the store the kernels use
