"""examples/06_engines.ipynb runs headless in a real kernel against the real llama.cpp server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.mark.slow
def test_engines_notebook_runs_against_the_server(llama_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("GENMAGIC_ENGINE_URL", llama_server.url)  # the kernel inherits it
    nb = nbformat.read(EXAMPLES / "06_engines.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(Path.cwd())}}).execute()
    outputs = {cell.source.splitlines()[0]: cell.get("outputs", []) for cell in nb.cells if cell.cell_type == "code"}
    assert not [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    listing = next(outs for line, outs in outputs.items() if line.startswith("%genmagic models --remote"))
    assert "tiny" in listing[0]["text"]
    compared = next(outs for line, outs in outputs.items() if line.startswith("print(\"same text:\""))
    assert "same text: True" in compared[0]["text"]  # served and in-process agree, greedy
    json_cell = next(outs for line, outs in outputs.items() if line.startswith("%%generate -m served -f json"))
    assert json_cell and not [o for o in json_cell if o.get("output_type") == "error"]
