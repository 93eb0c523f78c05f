"""A history store filled the way kernels fill it (real Results recorded by ``History.record``):
text runs in two notebooks, image runs with real PNG blobs, and one text run held for review.
The server-extension tests and the browser test (``python tests/lab_history.py HOME ROOT``) use it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from genmagic.history import History
from genmagic.options import ImageOptions, TextOptions
from genmagic.request import Request
from genmagic.results import ImageResult, TextResult, Verdict

HELD_TEXT = "the withheld answer"


def _image(color: tuple[int, int, int], size: int = 64) -> Any:
    from PIL import Image

    return Image.new("RGB", (size, size), color)


def fill(home: Path, root: Path, texts: int = 5) -> dict[str, Any]:
    """Write the runs; their ids by role. Notebooks are recorded as jupyter_server does
    (``JPY_SESSION_NAME``: the absolute path under ``root``)."""
    history = History(home)
    ids: dict[str, Any] = {"text": [], "image": []}
    for i in range(texts):
        notebook = str(root / ("story.ipynb" if i % 2 == 0 else "other.ipynb"))
        request = Request("text", f"Tell a story about lighthouse {i}", "tiny-text",
                          TextOptions(seed=i + 1, max_new_tokens=20, temperature=0.5))
        result = TextResult(request=request, texts=[f"Story {i}: the keeper lit the lamp."], tokens=[9])
        ids["text"].append(history.record(result, notebook=notebook, cell_id=f"cell-{i}"))
    for i, color in enumerate([(200, 40, 40), (40, 40, 200)]):
        request = Request("image", f"a red square {i}", "tiny-image", ImageOptions(seed=7 + i, steps=4))
        result = ImageResult(request=request, images=[_image(color)], seeds=[7 + i])
        ids["image"].append(history.record(result, notebook=str(root / "story.ipynb")))
    request = Request("text", "Describe the harbour at night", "tiny-text", TextOptions(seed=3))
    held = TextResult(request=request, texts=[HELD_TEXT], tokens=[3], status="review")
    verdict = Verdict("moderation", "violent_crimes", 0.71, "review", stage="output", target="output 1",
                      reason="violent crimes (0.71): held for review")
    held.verdicts.append(verdict)
    held.withhold(0, verdict)
    ids["review"] = history.record(held, notebook=str(root / "story.ipynb"))
    history.close()
    return ids


if __name__ == "__main__":
    print(fill(Path(sys.argv[1]), Path(sys.argv[2])))
