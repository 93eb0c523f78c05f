"""A notebook executed headless (nbclient) and saved holds exactly each run's result: the live
view becomes the result in place, so no emptied ``""`` output is left before it (nbviewer,
GitHub and diffs showed one for every run), streamed or not, text or images."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from image_fixtures import *  # noqa: F403


def test_saved_notebook_holds_exactly_the_results(tiny_text_dir: Path, tiny_image_dir: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    cells = {
        "load": "%load_ext genmagic",
        "image cold, not streamed": f"%%imagine -m {tiny_image_dir} --steps 2 --seed 1 --no-stream\na red circle",
        "images streamed": f"%%imagine -m {tiny_image_dir} --steps 3 --seed 5 -n 3 --preview 1\na blue square",
        "text cold, streamed": f"%%generate -m {tiny_text_dir} --seed 1 --max-new-tokens 12\nThe fox",
        "underscore": "type(_).__name__, _.request.seed",
        "text not streamed": f"%%generate -m {tiny_text_dir} --seed 2 --max-new-tokens 12 --no-stream\nThe fox",
        "texts streamed": f"%%generate -m {tiny_text_dir} --seed 3 -n 2 --max-new-tokens 12\nThe fox",
        "shown again later": "_",
    }
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells.values()]
    NotebookClient(nb, timeout=300, kernel_name="python3").execute(env={**os.environ})
    path = Path("saved.ipynb")
    nbformat.write(nb, path)
    saved = dict(zip(cells, nbformat.read(path, as_version=4).cells, strict=True))

    def only_output(name: str) -> dict[str, Any]:
        outputs = saved[name].outputs
        assert len(outputs) == 1, (name, outputs)
        data = outputs[0].get("data", {})
        assert data.get("text/plain", "").strip() and data.get("text/html", "x").strip(), (name, outputs)
        return dict(outputs[0])

    for name in ("image cold, not streamed", "images streamed"):
        out = only_output(name)
        assert out["data"]["text/html"].count("data:image/png") == (1 if "cold" in name else 3)
        assert "history #" in out["data"]["text/html"] and "loading" not in out["data"]["text/html"]
    assert all(f"seed {s}</figcaption>" in only_output("images streamed")["data"]["text/html"] for s in (5, 6, 7))
    for name in ("text cold, streamed", "text not streamed", "texts streamed", "shown again later"):
        out = only_output(name)
        assert "history #" in out["data"]["text/html"] and "generating" not in out["data"]["text/html"], name
    assert only_output("text not streamed")["output_type"] == "execute_result"  # nothing live: the value shows
    assert only_output("underscore")["data"]["text/plain"] == "('TextResult', 1)"  # _ and Out still hold it
    assert "seed 4</small>" in only_output("texts streamed")["data"]["text/html"]
