"""The jupyter_server extension behind the lab sidebar: authenticated REST under ``/genmagic/api/``.

Enabled by ``jupyter-config/jupyter_server_config.d/genmagic.json`` (installed with the package);
``jupyter server extension list`` shows ``genmagic.server``. See docs/ARCHITECTURE.md ("Lab sidebar").
Importing it imports no model code.
"""

from __future__ import annotations

from typing import Any


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "genmagic.server"}]


def _load_jupyter_server_extension(serverapp: Any) -> None:
    from .handlers import setup_handlers

    setup_handlers(serverapp.web_app, serverapp.root_dir)
    serverapp.log.info("genmagic: sidebar API at %sgenmagic/api/", serverapp.base_url)
