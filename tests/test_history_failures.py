"""The history failing under a run: a blob write that fails, a stored run that cannot be read
back, a file corrupt past its first page. None of them is served, and none stops a run."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from PIL import Image

import genmagic
from genmagic.engine import Engine
from genmagic.history import History
from genmagic.options import ImageOptions, TextOptions
from genmagic.request import Request
from genmagic.results import ImageResult


def _disk_full(data: bytes, suffix: str = ".bin") -> str:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_run_whose_blobs_were_not_written_keeps_its_row_but_is_never_served(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = History(tmp_path / "h")
    history.put_blob = _disk_full  # type: ignore[method-assign]  # the disk, not record, fails
    request = Request("image", "a red circle", "tiny-img", ImageOptions(seed=1))
    result = ImageResult(request=request, images=[Image.new("RGB", (8, 8), "red")], seeds=[1])
    rid = history.record(result)
    row = history.get(rid)
    assert row is not None and row.status == "ok" and row.prompt == "a red circle"  # nothing lost
    assert row.error is not None and row.error.startswith("outputs not stored: OSError")
    assert "No space left on device" in row.error
    assert "were not stored in the history" in capsys.readouterr().err
    assert history.lookup(request.key()) is None


def test_a_run_after_a_failed_blob_write_runs_the_model_again(img_ip: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    history = genmagic._magics.engine.history
    with monkeypatch.context() as patch:
        patch.setattr(history, "put_blob", _disk_full)
        first = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 5 a red circle")
    assert first.ok and len(first.images) == 1
    second = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 5 a red circle")
    assert not second.cached and len(second.images) == 1
    assert second.png(0) == first.png(0)


def test_a_cached_image_whose_blob_is_gone_runs_the_model_with_a_warning(
    img_ip: Any, genmagic_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 6 a blue square")
    (name,) = genmagic._magics.engine.history.get(first.history_id).outputs["images"]  # type: ignore[union-attr]
    genmagic._magics.engine.history.blob_path(name).unlink()
    capsys.readouterr()
    second = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 6 a blue square")
    assert not second.cached and second.png(0) == first.png(0)
    assert "not served from the cache (FileNotFoundError" in capsys.readouterr().err


@pytest.mark.parametrize(
    "outputs",
    [
        {"unserialisable": "OSError(28, 'No space left on device')"},  # a row written before the fix
        {"tokens": [5]},  # outputs of a shape this version cannot read
    ],
)
def test_a_stored_text_run_that_cannot_be_read_back_is_a_miss(
    genmagic_home: Path, outputs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    engine = Engine(home=genmagic_home)
    request = engine.request("text", "anything", TextOptions(seed=2), model="echo:alpha")
    first = engine.run(request)
    with sqlite3.connect(engine.history.path) as db:
        db.execute("UPDATE runs SET outputs = ? WHERE id = ?", (json.dumps(outputs), first.history_id))
    capsys.readouterr()
    again = engine.run(request)
    assert again.ok and not again.cached and again.text == first.text == "alpha"
    if "tokens" in outputs:  # the row was found and could not be read: said so
        assert "not served from the cache (KeyError: 'texts')" in capsys.readouterr().err
    third = engine.run(request)  # the run the model made instead is what the cache serves now
    assert third.cached and third.timings["cached_from"] == again.history_id


# --------------------------------------------------------------------------- corruption past page one


def _history_damaged_in_the_middle(home: Path, key: str = "k{i}", cached: int = 0) -> History:
    """3000 rows (``key`` formatted with the row number), then 8 KB of the middle overwritten."""
    history = History(home)
    conn = history._conn()
    conn.execute("BEGIN")
    for i in range(3000):
        conn.execute(
            "INSERT INTO runs (created, kind, model, prompt, request, key, status, cached) VALUES (?,?,?,?,?,?,?,?)",
            (0, "text", "m", "p" * 200, "{}", key.format(i=i), "ok", cached),
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    history.close()
    size = history.path.stat().st_size
    with open(history.path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xff" * 8192)
    damaged = History(home)
    assert damaged.count() == 3000  # connecting, and the first pages, see nothing wrong
    return damaged


def test_a_lookup_on_a_file_corrupt_past_page_one_moves_it_aside(
    genmagic_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = _history_damaged_in_the_middle(genmagic_home)
    # Which rows sit on the damaged pages depends on the file's layout: look up keys until one does.
    for i in range(0, 3000, 7):
        assert history.lookup(f"k{i}") is None or not list(genmagic_home.glob("history.sqlite.corrupt-*"))
        if list(genmagic_home.glob("history.sqlite.corrupt-*")):
            break
    (aside,) = genmagic_home.glob("history.sqlite.corrupt-2*[0-9]")
    assert f"moved it to {aside.name}" in capsys.readouterr().err
    assert history.count() == 0 and history.list() == []


def test_a_cached_run_on_a_file_corrupt_past_page_one_runs_and_is_recorded(genmagic_home: Path) -> None:
    engine = Engine(home=genmagic_home)
    request = engine.request("text", "anything", TextOptions(seed=3), model="echo:alpha")
    # Rows of the same request that were cache hits: the lookup reads them all, down to the damage.
    _history_damaged_in_the_middle(genmagic_home, request.key(), cached=1).close()
    first = engine.run(request)
    second = engine.run(request)
    assert first.ok and not first.cached and second.cached and second.text == "alpha"
    assert [r.id for r in History(genmagic_home).list()] == [second.history_id, first.history_id] == [2, 1]
