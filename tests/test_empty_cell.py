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


@pytest.mark.parametrize("cell", ["%%generate -m tiny\n", "%%imagine --from saved.png\n", "%%generate"])
def test_a_cell_magic_line_alone_still_waits_for_its_body_in_a_terminal(ip: Any, cell: str) -> None:
    """Terminal IPython and jupyter console ask ``check_complete`` on Enter: the magic line alone
    must stay incomplete there (the body comes next), as it is without the extension."""
    from genmagic.magics import empty_cell_as_line

    assert empty_cell_as_line in ip.input_transformers_cleanup  # loaded, and still used on run:
    assert ip.transform_cell(cell).startswith("get_ipython().run_line_magic(")
    assert ip.input_transformer_manager.check_complete(cell) == ("incomplete", 0)
    assert ip.input_transformer_manager.check_complete(cell.rstrip("\n") + "\nhello\n\n") == ("complete", None)
