"""examples/03_safety.ipynb runs headless in a real kernel: a redacted prompt, a blocked prompt,
a flagged and blurred image, and a review decision."""

from __future__ import annotations

from typing import Any

import pytest
from test_notebook import execute

pytestmark = pytest.mark.slow


def _text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif out.get("output_type") == "error":
            parts.append(f"{out['ename']}: {out['evalue']}")
        else:
            parts.append(out.get("data", {}).get("text/plain", "") + out.get("data", {}).get("text/html", ""))
    return "\n".join(parts)


def test_the_safety_notebook_runs() -> None:
    nb = execute("03_safety.ipynb")
    cells = [c for c in nb.cells if c.cell_type == "code"]
    by_start = {c.source.splitlines()[0]: c for c in cells if c.source}
    blocked = next(c for c in cells if "pipe bomb at home." in c.source and c.source.startswith("%%generate"))
    assert "the prompt was blocked by a safety check" in _text(blocked)  # a UsageError: one line on stderr
    others = [c for c in cells if c is not blocked and "Error" in _text(c)]
    assert others == []
    redacted = _text(by_start["print(reply.request.prompt)          # what the model was given"])
    assert "<EMAIL_1>" in redacted and "<CREDIT_CARD_1>" in redacted and "jane.doe" not in redacted
    looks = _text(next(c for c in cells if c.source.startswith("import genmagic")))
    assert "allow" in looks.splitlines()[0] and "allow" in looks.splitlines()[1] and "block" in looks.splitlines()[2]
    image = _text(next(c for c in cells if c.source.startswith("%%imagine")))
    assert "withheld" in image and "reveal: result.reveal(0)" in image
    revealed = next(c for c in cells if c.source.startswith("pic.reveal(0)"))
    assert "image/png" in revealed.outputs[0]["data"]
    review = _text(next(c for c in cells if c.source.startswith('print("pending:"')))
    assert "bound now: ''" in review and "after approval: ok" in review
    log = _text(next(c for c in cells if c.source.startswith("%genmagic safety log")))
    assert "revealed" not in log and "block" in log and "review" in log
