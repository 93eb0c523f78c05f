"""examples/01_generate.ipynb runs headless in a real kernel, on the embedded default model."""

from __future__ import annotations

from pathlib import Path

EXAMPLES = Path(__file__).parent.parent / "examples"
TINY_TEXT = Path(__file__).parent.parent / "genmagic" / "models" / "tiny-text" / "model.safetensors"


def execute(name: str) -> object:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(Path.cwd())}}).execute()
    return nb


def test_generate_notebook_runs() -> None:
    assert TINY_TEXT.exists(), "the embedded tiny-text model is part of the package"
    nb = execute("01_generate.ipynb")
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    story = next(c for c in nb.cells if "--out story" in c.source)
    (result,) = story.outputs  # the streamed view became the result
    assert "text/html" in result["data"] and "tiny-text" in result["data"]["text/html"]
    printed = next(c for c in nb.cells if c.source.startswith("print(story.text)"))
    assert len(printed.outputs[0]["text"].strip()) > 20
