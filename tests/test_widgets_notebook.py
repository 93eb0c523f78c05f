"""examples/04_widgets.ipynb runs headless in a real kernel (nbclient), and the saved notebook
holds the panels' widget state: their outputs, statuses and values show when it is opened."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from image_fixtures import *  # noqa: F403


def test_widgets_notebook_runs_and_keeps_the_panels(tiny_image_dir: Path) -> None:
    nb = run_image_example("04_widgets.ipynb", tiny_image_dir)  # noqa: F405
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not [o for c in code for o in c.outputs if o.get("output_type") == "error"]

    def printed(marker: str) -> str:
        cell = next(c for c in code if marker in c.source)
        return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")

    assert printed("result = text_panel.wait()").startswith("done · seed 1")
    assert printed("print(text_panel.as_cell())").startswith("%%generate -m tiny-text --max-new-tokens 40 --seed 1 "
                                                             "--temperature 1.2\nOnce upon a time")
    assert printed("again.request.key()").strip() == "True True"
    assert printed("pics = image_panel.wait()").splitlines()[1].startswith("ok [7]")

    state: dict[str, Any] = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    views = [o["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for c in code for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(views) == 2 and all(v in state for v in views)  # each panel's view, and its state
    shown = [o for m in state.values() if m["model_name"] == "OutputModel" for o in m["state"].get("outputs", [])]
    html = [o["data"]["text/html"] for o in shown]
    assert len(html) == 2 and any("data:image/png;base64," in h for h in html)  # the text and the image
    statuses = [m["state"]["value"] for m in state.values() if m["model_name"] == "HTMLModel"]
    assert sum("done · seed" in s for s in statuses) == 2
