"""examples/05_finetune.ipynb runs headless in a real kernel (nbclient)."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "examples"

pytest.importorskip("peft")


def test_finetune_notebook_runs(genmagic_home: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / "05_finetune.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(Path.cwd())}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [o for cell in code for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]

    def text(cell: object) -> str:
        return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)  # type: ignore[attr-defined]

    train, summary, answer, again, refused, redacted = code[1:]
    assert any("loss curve" in o.get("data", {}).get("text/html", "") for o in train.outputs)  # the live view
    assert "trained 40/40 steps" in text(summary)
    assert "Reset password" in text(answer)  # the tuned alias answers from the data
    assert "reused the saved adapter" in text(again)
    assert "--redact-pii" in text(refused) and "email" in text(refused)
    assert "trained 5/5 steps" in text(redacted)
    assert (genmagic_home / "adapters" / "support-bot" / "adapter_model.safetensors").is_file()
