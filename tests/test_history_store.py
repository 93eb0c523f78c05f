"""The history store as untrusted, fallible storage: blob names read from the database are
checked before any file is opened."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from conftest import run
from image_fixtures import *  # noqa: F403
from IPython.core.error import UsageError

from genmagic.history import History, HistoryError

DIGEST = hashlib.sha256(b"x").hexdigest()


# --------------------------------------------------------------------------- blob names


def test_a_stored_blob_round_trips(tmp_path: Path) -> None:
    history = History(tmp_path / "h")
    name = history.put_blob(b"png bytes", ".png")
    assert name == hashlib.sha256(b"png bytes").hexdigest() + ".png"
    assert history.blob_path(name) == tmp_path / "h" / "blobs" / name[:2] / name
    assert history.get_blob(name) == b"png bytes"


@pytest.mark.parametrize(
    "name",
    [
        "../../secret.png",
        f"../{DIGEST}.png",
        "/etc/passwd",
        f"/{DIGEST}.png",
        f"{DIGEST[:2]}/../../{DIGEST}.png",
        f"..%2F..%2F{DIGEST}.png",
        f"{DIGEST[:60]}%2F..png",
        f"{DIGEST.upper()}.png",
        f"{DIGEST}.png/..",
        f"{DIGEST}.sh",
        f"{DIGEST}.png\x00.txt",
        DIGEST,
        "",
    ],
)
def test_a_name_that_is_no_blob_name_is_refused_before_opening(tmp_path: Path, name: str) -> None:
    history = History(tmp_path / "h")
    with pytest.raises(HistoryError, match="is not a sha256 with a known extension"):
        history.blob_path(name)
    with pytest.raises(HistoryError):
        history.get_blob(name)


def test_a_symlinked_blob_is_not_followed(tmp_path: Path) -> None:
    history = History(tmp_path / "h")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    link = history.blob_dir / DIGEST[:2] / f"{DIGEST}.png"
    link.parent.mkdir(parents=True)
    link.symlink_to(secret)
    with pytest.raises(HistoryError, match="resolves outside"):
        history.get_blob(f"{DIGEST}.png")
    link.unlink()
    link.parent.rmdir()
    link.parent.symlink_to(tmp_path)  # the blobs/xx folder itself points out of the store
    (tmp_path / f"{DIGEST}.png").write_text("do not serve")
    with pytest.raises(HistoryError, match="resolves outside"):
        history.get_blob(f"{DIGEST}.png")


def test_a_tampered_history_row_is_a_one_line_error(img_ip: Any, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"not yours")
    result = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 1 a red circle")
    path = Path(os.environ["GENMAGIC_HOME"]) / "history.sqlite"
    outputs = {"images": [os.path.relpath(secret, path.parent / "blobs" / "xx")], "seeds": [1]}
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET outputs = ? WHERE id = ?", (json.dumps(outputs), result.history_id))
    with pytest.raises(UsageError, match="is not a sha256 with a known extension") as err:
        run(img_ip, f"%genmagic show {result.history_id}")
    assert "\n" not in str(err.value)
