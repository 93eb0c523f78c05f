"""The wiring that makes ``pip install genmagic`` give JupyterLab the sidebar and jupyter_server its
extension: the names in pyproject.toml, labextension/package.json, the server config and the package
must agree (a mismatch installs files nobody loads)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tomllib

import genmagic
import genmagic.server

REPO = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
PACKAGE = json.loads((REPO / "labextension" / "package.json").read_text())


def test_the_built_extension_is_installed_where_jupyterlab_looks() -> None:
    [paths] = genmagic._jupyter_labextension_paths()
    shared = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    built = (REPO / "labextension" / PACKAGE["jupyterlab"]["outputDir"]).resolve()
    assert built == (Path(genmagic.__file__).parent / paths["src"]).resolve()
    assert shared[str(built.relative_to(REPO))] == f"share/jupyter/labextensions/{PACKAGE['name']}"
    assert paths["dest"] == PACKAGE["name"] == "genmagic"
    install = json.loads((REPO / "labextension" / "install.json").read_text())
    assert install["packageName"] == PYPROJECT["project"]["name"]
    hook = PYPROJECT["tool"]["hatch"]["build"]["hooks"]["jupyter-builder"]
    assert all(target.startswith(str(built.relative_to(REPO))) for target in hook["ensured-targets"])
    assert hook["build-kwargs"]["build_dir"] == str(built.relative_to(REPO))


def test_the_server_config_enables_the_server_extension() -> None:
    shared = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]["shared-data"]
    [(source, target)] = [(k, v) for k, v in shared.items() if k.startswith("jupyter-config")]
    assert target == "etc/jupyter/jupyter_server_config.d"
    config = json.loads((REPO / source / "genmagic.json").read_text())
    [module] = [m for m, on in config["ServerApp"]["jpserver_extensions"].items() if on]
    assert genmagic.server._jupyter_server_extension_points() == [{"module": module}]


def test_each_setting_in_the_schema_is_read_by_the_sidebar() -> None:
    """The Settings Editor shows the schema; logic.ts's readSettings must read every key of it."""
    schema = json.loads((REPO / "labextension" / "schema" / "sidebar.json").read_text())
    logic = (REPO / "labextension" / "src" / "logic.ts").read_text()
    read = logic[logic.index("export function readSettings"):]
    read = read[:read.index("\n}\n")]
    assert sorted(schema["properties"]) == sorted(set(re.findall(r"raw\.(\w+)", read)))
    plugin = re.search(r"PLUGIN_ID = '([^']+)'", (REPO / "labextension" / "src" / "index.ts").read_text())
    assert plugin is not None and plugin.group(1) == f"{PACKAGE['name']}:sidebar"  # schema/sidebar.json
