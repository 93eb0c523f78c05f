"""The SQLite history: WAL, several processes writing at once, nothing lost."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

from genmagic.history import History
from genmagic.options import TextOptions
from genmagic.request import Request, TextResult, Verdict


def _writer(home: str, worker: int, count: int) -> None:
    history = History(home)
    for i in range(count):
        request = Request(kind="text", prompt=f"w{worker}-{i}", model="m", options=TextOptions(seed=i))
        history.record(TextResult(request=request, texts=[f"out {worker} {i}"], tokens=[1]))


def test_four_processes_500_writes_each(tmp_path: Path) -> None:
    home = str(tmp_path / "h")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(home, w, 500)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(300)
        assert p.exitcode == 0
    history = History(home)
    assert history.count() == 2000
    prompts = {r.prompt for r in history.list(n=5000)}
    assert prompts == {f"w{w}-{i}" for w in range(4) for i in range(500)}
    mode = sqlite3.connect(history.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_lookup_returns_newest_ok_with_key(tmp_path: Path) -> None:
    history = History(tmp_path)
    request = Request(kind="text", prompt="p", model="m", options=TextOptions(seed=1))
    history.record(TextResult(request=request, texts=["old"]))
    history.record(TextResult(request=request, texts=["new"]))
    history.record(TextResult(request=request, texts=["bad"], status="interrupted"))
    assert history.lookup(request.key()).outputs["texts"] == ["new"]
    other = Request(kind="text", prompt="p", model="m", options=TextOptions(seed=2))
    assert history.lookup(other.key()) is None


def test_key_covers_model_revision_and_options() -> None:
    base = Request(kind="text", prompt="p", model="m", options=TextOptions(seed=1), fingerprint="r1")
    assert base.key() == Request(kind="text", prompt="p", model="m", options=TextOptions(seed=1), fingerprint="r1").key()
    assert base.key() != Request(kind="text", prompt="p", model="m", options=TextOptions(seed=1), fingerprint="r2").key()
    assert base.key() != Request(kind="text", prompt="p", model="m", options=TextOptions(seed=1, top_k=3),
                                 fingerprint="r1").key()


def test_blobs_by_content_hash(tmp_path: Path) -> None:
    history = History(tmp_path)
    a = history.put_blob(b"hello", ".txt")
    assert a == history.put_blob(b"hello", ".txt")
    assert history.get_blob(a) == b"hello"
    assert not list(tmp_path.rglob("*.tmp"))


def test_search_escapes_wildcards(tmp_path: Path) -> None:
    history = History(tmp_path)
    for prompt in ("100% sure", "1000 sure", "a_b", "axb"):
        request = Request(kind="text", prompt=prompt, model="m", options=TextOptions())
        history.record(TextResult(request=request, texts=[""]))
    assert [r.prompt for r in history.list(search="100%")] == ["100% sure"]
    assert [r.prompt for r in history.list(search="a_b")] == ["a_b"]


def test_search_reads_output_texts_not_their_json_and_never_a_withheld_one(tmp_path: Path) -> None:
    history = History(tmp_path)
    request = Request(kind="text", prompt="p", model="m", options=TextOptions())
    history.record(TextResult(request=request, texts=["café au lait", 'say "hi"']))
    held = TextResult(request=request, texts=["the secret plan"], status="review")
    held.withhold(0, Verdict("moderation", "violence", 0.5, "review", reason="held for review"))
    held_id = history.record(held)
    assert history.list(search="texts") == [] and history.list(search="tokens") == []  # the JSON's keys
    assert len(history.list(search="café")) == 1 and len(history.list(search='"hi"')) == 1  # as decoded
    assert history.list(search="secret plan") == []  # withheld: not found by searching
    history.decide(held_id, "approved")
    assert [r.id for r in history.list(search="secret plan")] == [held_id]
