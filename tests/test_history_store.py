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


# --------------------------------------------------------------------------- a database that cannot be used


def corrupt_page_one(path: Path) -> None:
    """Keep the 100-byte SQLite header, scramble the schema page behind it."""
    data = bytearray(path.read_bytes())
    data[100:4096] = bytes((i * 7 + 3) % 256 for i in range(100, 4096))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garbage", "scrambled schema page"])
def test_a_corrupt_database_is_moved_aside_and_the_run_still_works(
    ip: Any, genmagic_home: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    import genmagic

    first = run(ip, "%%generate -m echo: --no-stream\nbefore")
    genmagic._magics.engine.history.close()
    db = genmagic_home / "history.sqlite"
    with sqlite3.connect(db) as conn:  # fold the WAL in, so the damage is all there is
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 200)
    else:
        corrupt_page_one(db)
    engine = genmagic._magics.engine
    engine.history = History(genmagic_home)  # a new kernel on the damaged file
    capsys.readouterr()
    result = run(ip, "%%generate -m echo: --no-stream\nafter")
    assert result.ok and result.history_id == 1 and first.history_id == 1
    (aside,) = genmagic_home.glob("history.sqlite.corrupt-2*[0-9]")
    assert Path(f"{aside}-wal").exists()  # the old WAL went with it: never replayed into the new file
    err = capsys.readouterr().err
    assert f"the history database {db} was unreadable" in err and f"moved it to {aside.name}" in err
    assert [r.prompt for r in History(genmagic_home).list()] == ["after"]


@pytest.mark.parametrize("where", ["under a regular file", "/proc"])
def test_an_unwritable_home_keeps_history_in_memory_with_a_hint(
    img_ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    # Tests run as root, which ignores permission bits: make the folder impossible instead.
    if where == "/proc":
        home = Path("/proc/genmagic-home")
    else:
        (tmp_path / "a-file").write_text("")
        home = tmp_path / "a-file" / "genmagic"
    monkeypatch.setenv("GENMAGIC_HOME", str(home))
    capsys.readouterr()
    text = run(img_ip, "%%generate -m echo: --no-stream\nstill works")
    image = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 1 --no-stream a red circle")
    assert text.ok and image.ok and (text.history_id, image.history_id) == (1, 2)
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, once
    assert f"cannot write the history at {home / 'history.sqlite'}" in err
    assert "in memory only" in err and "set GENMAGIC_HOME to a writable local folder" in err
    import genmagic

    history = genmagic._magics.engine.history
    assert [r.prompt for r in history.list()] == ["a red circle", "still works"]
    cached = run(img_ip, "%imagine -m tiny-img --steps 2 --seed 1 --no-stream a red circle")
    assert cached.cached and cached.images[0].tobytes() == image.images[0].tobytes()
    assert not home.exists()
