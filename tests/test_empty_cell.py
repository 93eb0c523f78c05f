"""A cell magic whose options say where the prompt comes from needs no cell body (real IPython shell)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError


@pytest.fixture(autouse=True, scope="module")
def _unload_this_modules_pipeline() -> Any:
    """Each test module builds its own tiny-img folder: leave none of ours loaded for the next."""
    yield
    import genmagic

    genmagic._magics.engine.models.unload("tiny-img")


def test_imagine_from_a_png_with_an_empty_cell_body(img_ip: Any, tmp_path: Path) -> None:
    first = run(img_ip, f"%%imagine -m tiny-img --steps 2 --seed 3 --save {tmp_path}\na red circle")
    saved = first.info["saved"][0]
    for cell in (f"%%imagine --from {saved} --no-cache", f"%%imagine --from {saved} --no-cache\n"):
        again = run(img_ip, cell)
        assert again.ok and again.request.prompt == "a red circle" and again.seeds == [3]
        assert again.images[0].tobytes() == first.images[0].tobytes()


def test_an_empty_cell_body_without_a_prompt_source_gets_the_magics_own_error(img_ip: Any) -> None:
    with pytest.raises(UsageError, match="the prompt is empty"):
        run(img_ip, "%%generate -m tiny --seed 1")
    with pytest.raises(UsageError, match="the prompt is empty"):
        run(img_ip, "%%imagine -m tiny-img --steps 2\n")
    # the words after the options are the prompt in the cell form too
    assert run(img_ip, "%%generate -m tiny --seed 1 --max-new-tokens 3 Once upon").request.prompt == "Once upon"
