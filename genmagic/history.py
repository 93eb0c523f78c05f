"""The history store: every run, append-only, in SQLite (WAL) under ``GENMAGIC_HOME``.

Each run is one row: the request (as JSON, with its key), the outputs (JSON; binary
outputs such as images are blobs on disk named by content hash), status, error,
timings, safety verdicts, and where it ran (notebook path, cell id). Human review
decisions (approve, reject, edit, reveal) are rows of their own in ``decisions``. The result cache
is a lookup of the newest ``ok`` row with the same key. Several kernels may write at
once: every write is one short ``BEGIN IMMEDIATE`` transaction with a busy timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import GenmagicError

SCHEMA_VERSION = 1
BLOB_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".json", ".txt", ".bin")
_BLOB_NAME = re.compile("[0-9a-f]{64}(?:" + "|".join(re.escape(s) for s in BLOB_SUFFIXES) + ")")


class HistoryError(GenmagicError):
    """The history store cannot be used as it is (an altered row, a blob outside the store)."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    kind TEXT NOT NULL,
    model TEXT NOT NULL,
    revision TEXT NOT NULL DEFAULT '',  -- the weight fingerprint (Request.fingerprint), named before the rename
    prompt TEXT NOT NULL,
    request TEXT NOT NULL,
    key TEXT NOT NULL,
    outputs TEXT,
    status TEXT NOT NULL,
    error TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    timings TEXT,
    verdicts TEXT,
    info TEXT,
    notebook TEXT,
    cell_id TEXT,
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS runs_key ON runs (key, status);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created);
CREATE TABLE IF NOT EXISTS decisions (  -- human review and explicit reveals (a run row itself never changes)
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    created REAL NOT NULL,
    decision TEXT NOT NULL,  -- approved | rejected | edited | revealed
    target TEXT NOT NULL DEFAULT '',  -- which output ("output 1", "image 2"), '' for the whole run
    note TEXT,
    edited TEXT,  -- JSON: the outputs as edited, for "edited"
    pid INTEGER
);
CREATE INDEX IF NOT EXISTS decisions_run ON decisions (run_id);
"""
# Tables are only ever added (IF NOT EXISTS): an older genmagic still reads a store a newer one
# added a table to, so that does not change SCHEMA_VERSION.

DECISIONS = ("approved", "rejected", "edited", "revealed")
FINAL_DECISIONS = ("approved", "rejected", "edited")  # a run under review with one of these is decided


@dataclass
class Record:
    id: int
    created: float
    kind: str
    model: str
    revision: str
    prompt: str
    request: dict[str, Any]
    key: str
    outputs: Any
    status: str
    error: str | None
    cached: bool
    timings: dict[str, float]
    verdicts: list[dict[str, Any]]
    info: dict[str, Any]
    notebook: str | None
    cell_id: str | None

    @property
    def summary(self) -> str:
        if isinstance(self.outputs, dict) and "texts" in self.outputs:
            texts = self.outputs["texts"]
            return texts[0] if texts else ""
        if isinstance(self.outputs, dict) and "images" in self.outputs:
            return f"{len(self.outputs['images'])} image(s)"
        return ""


def _loads(text: str | None, default: Any) -> Any:
    return json.loads(text) if text else default


# SQLite's result codes for a file that is not (or no longer) a database, and for one
# that cannot be written here.
_CORRUPT = {"SQLITE_CORRUPT", "SQLITE_NOTADB"}
_UNWRITABLE = ("SQLITE_CANTOPEN", "SQLITE_READONLY", "SQLITE_PERM", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_PROTOCOL")


def _error_name(err: sqlite3.Error) -> str:
    return str(getattr(err, "sqlite_errorname", "") or "")


_T = TypeVar("_T")


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


def _warn(message: str) -> None:
    print(f"genmagic: {message}", file=sys.stderr)


class History:
    def __init__(self, home: str | os.PathLike[str]) -> None:
        self.home = Path(home)
        self.path = self.home / "history.sqlite"
        self.blob_dir = self.home / "blobs"
        self._local = threading.local()
        self._ready = False
        self._memory: sqlite3.Connection | None = None  # set when the home cannot be written
        self._open_lock = threading.Lock()
        self._generation = 0  # bumped when a file found corrupt mid-session is moved aside

    # -- connection
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        local = self._local
        if conn is None or getattr(local, "pid", None) != os.getpid() or getattr(local, "gen", None) != self._generation:
            with self._open_lock:
                conn = self._open()
                local.conn, local.pid, local.gen, local.ino = conn, os.getpid(), self._generation, _inode(self.path)
        return conn

    def _guarded(self, op: Callable[[sqlite3.Connection], _T]) -> _T:
        """``op`` on the connection; a file found corrupt past its first page (only a query
        touching the damaged page notices) is moved aside like one found at connect, and
        ``op`` runs once more on the new file."""
        conn = self._conn()
        try:
            return op(conn)
        except sqlite3.DatabaseError as err:
            if _error_name(err) not in _CORRUPT or conn is self._memory:
                raise
            with self._open_lock:
                if getattr(self._local, "gen", None) == self._generation:  # no other thread did it yet
                    # Only the file this connection reads: another kernel may have replaced it already.
                    if self._local.ino is not None and _inode(self.path) == self._local.ino:
                        self._move_aside(err)
                    self._generation += 1
                    self._ready = False
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
                self._local.conn = None
        return op(self._conn())

    def _open(self) -> sqlite3.Connection:
        """The database file, moved aside first when it is corrupt (as IPython does with its
        history); a home that cannot be written gives an in-memory store and a warning."""
        if self._memory is not None:
            return self._memory
        try:
            try:
                return self._connect()
            except sqlite3.DatabaseError as err:
                if _error_name(err) not in _CORRUPT:
                    raise
                self._move_aside(err)
                return self._connect()
        except OSError as err:
            return self._in_memory(f"{type(err).__name__}: {err}")
        except sqlite3.Error as err:
            if not _error_name(err).startswith(_UNWRITABLE):
                raise
            return self._in_memory(str(err))

    def _connect(self) -> sqlite3.Connection:
        self.home.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout = 60000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            if not self._ready:
                self._migrate(conn)
                self._ready = True
        except BaseException:
            conn.close()
            raise
        return conn

    def _move_aside(self, err: sqlite3.Error) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):  # a stale WAL must not be replayed into the new file
            with contextlib.suppress(FileNotFoundError):  # another kernel moved it already
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        _warn(f"the history database {self.path} was unreadable ({err}); moved it to {aside.name} and started a new one")

    def _in_memory(self, reason: str) -> sqlite3.Connection:
        import tempfile

        _warn(
            f"cannot write the history at {self.path} ({reason}); this session keeps its history in memory only. "
            "To keep it, set GENMAGIC_HOME to a writable local folder, e.g. export GENMAGIC_HOME=/tmp/$USER-genmagic"
        )
        self.blob_dir = Path(tempfile.mkdtemp(prefix="genmagic-blobs-"))
        # One connection shared by the session's threads: writes are short, and a kernel runs one at a time.
        conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self._migrate(conn)
        self._memory = conn
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                conn.execute(statement)
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
            elif row[0] > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} was written by a newer genmagic (schema {row[0]}); upgrade genmagic"
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn is not self._memory:  # closing the in-memory store would empty it
            conn.close()
            self._local.conn = None

    # -- blobs
    def put_blob(self, data: bytes, suffix: str = ".bin") -> str:
        import hashlib

        digest = hashlib.sha256(data).hexdigest()
        name = digest + suffix
        target = self.blob_path(name)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
        return name

    def blob_path(self, name: str) -> Path:
        """Where blob ``name`` lives: ``blobs/<first two hex digits>/<sha256>.<ext>``.

        Names come from the database, which anything may have written (and the lab sidebar
        serves blobs), so a name that is not a sha256 plus a known extension, or a path that
        leaves ``blobs/`` (``..``, an absolute path, a symlink), is a :class:`HistoryError`
        before any file is opened.
        """
        if not isinstance(name, str) or not _BLOB_NAME.fullmatch(name):
            raise HistoryError(
                f"history blob name {str(name)[:80]!r} is not a sha256 with a known extension "
                f"({', '.join(BLOB_SUFFIXES)}); {self.path} was altered"
            )
        path = self.blob_dir / name[:2] / name
        base = self.blob_dir.resolve()
        if not path.resolve().is_relative_to(base):
            raise HistoryError(f"history blob {name} resolves outside {base} (a symlink); remove {path}")
        return path

    def get_blob(self, name: str) -> bytes:
        path = self.blob_path(name)
        # O_NOFOLLOW: a symlink put in place after the check above is not followed either.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            return fh.read()

    # -- writes
    def record(self, result: Any, *, notebook: str | None = None, cell_id: str | None = None) -> int:
        """Append one run; returns its id (also set on ``result.history_id``).

        Outputs that cannot be stored (a blob write fails: disk full, a read-only store) still
        leave the row, with the request, and the reason in ``error``: such a row is never served
        from the cache (see :meth:`lookup`), since its outputs are gone.
        """
        request = result.request
        error = result.error
        try:
            outputs = json.dumps(result.to_record(self.put_blob), ensure_ascii=False)
        except Exception as err:  # never lose the row because an output would not serialise
            outputs = json.dumps({"unserialisable": repr(err)})
            error = error or f"outputs not stored: {type(err).__name__}: {err}"
            _warn(f"the outputs of this run were not stored in the history ({type(err).__name__}: {err})")
        row = (
            time.time(),
            request.kind,
            request.model,
            request.fingerprint,
            request.prompt,
            json.dumps(request.to_dict(), ensure_ascii=False),
            request.key(),
            outputs,
            result.status,
            error,
            int(result.cached),
            json.dumps(result.timings),
            json.dumps([v.to_dict() for v in result.verdicts]),
            json.dumps(result.info, default=str),
            notebook,
            cell_id,
            os.getpid(),
        )

        result.history = self  # where later decisions on it (review, reveal) are recorded
        result.history_id = self._insert(
            "INSERT INTO runs (created, kind, model, revision, prompt, request, key, outputs, status,"
            " error, cached, timings, verdicts, info, notebook, cell_id, pid)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            row,
        )
        return result.history_id

    def _insert(self, sql: str, row: tuple[Any, ...],
                before: Callable[[sqlite3.Connection], None] | None = None) -> int:
        """One row in one short ``BEGIN IMMEDIATE`` transaction; its id. ``before`` runs inside the
        transaction first (a check that must see the state the insert goes into)."""

        def insert(conn: sqlite3.Connection) -> int:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if before is not None:
                    before(conn)
                cur = conn.execute(sql, row)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back itself (corrupt file)
                    conn.execute("ROLLBACK")
                raise
            return int(cur.lastrowid or 0)

        return self._guarded(insert)

    # -- review decisions
    def decide(self, run_id: int, decision: str, *, target: str = "", note: str | None = None,
               edited: Any = None) -> int:
        """Record a human decision on run ``run_id`` (see :data:`DECISIONS`); its id."""
        if decision not in DECISIONS:
            raise HistoryError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
        if self.get(run_id) is None:
            raise HistoryError(f"there is no run #{run_id} in the history at {self.path}")

        def once(conn: sqlite3.Connection) -> None:  # a final decision is final, also across kernels
            if decision not in FINAL_DECISIONS:
                return
            final = ",".join(f"'{d}'" for d in FINAL_DECISIONS)
            row = conn.execute(f"SELECT decision FROM decisions WHERE run_id = ? AND decision IN ({final})"
                               " ORDER BY id LIMIT 1", (run_id,)).fetchone()
            if row is not None:
                raise HistoryError(f"run #{run_id} was already {row[0]}; a decision is final")

        return self._insert(
            "INSERT INTO decisions (run_id, created, decision, target, note, edited, pid) VALUES (?,?,?,?,?,?,?)",
            (run_id, time.time(), decision, target, note,
             None if edited is None else json.dumps(edited, ensure_ascii=False), os.getpid()),
            before=once,
        )

    def final_decision(self, run_id: int) -> dict[str, Any] | None:
        """The approve / edit / reject decision on a run, or None."""
        return next((d for d in self.decisions(run_id) if d["decision"] in FINAL_DECISIONS), None)

    def decisions(self, run_id: int) -> list[dict[str, Any]]:
        """The decisions on one run, oldest first."""
        rows = self._guarded(lambda conn: conn.execute(
            "SELECT id, created, decision, target, note, edited FROM decisions WHERE run_id = ? ORDER BY id",
            (run_id,),
        ).fetchall())
        return [{"id": i, "created": c, "decision": d, "target": t, "note": n, "edited": _loads(e, None)}
                for i, c, d, t, n, e in rows]

    def pending(self, n: int = 100) -> list[Record]:
        """Runs withheld for review (status ``review``) that nobody has decided yet, oldest first."""
        final = ",".join(f"'{d}'" for d in FINAL_DECISIONS)
        rows = self._guarded(lambda conn: conn.execute(
            f"SELECT {self._COLUMNS} FROM runs WHERE status = 'review' AND id NOT IN"
            f" (SELECT run_id FROM decisions WHERE decision IN ({final})) ORDER BY id LIMIT ?",
            (n,),
        ).fetchall())
        return [self._record(r) for r in rows]

    # -- reads
    def _record(self, row: sqlite3.Row | tuple[Any, ...]) -> Record:
        (rid, created, kind, model, revision, prompt, request, key, outputs, status, error, cached,
         timings, verdicts, info, notebook, cell_id) = row
        return Record(
            id=rid, created=created, kind=kind, model=model, revision=revision, prompt=prompt,
            request=_loads(request, {}), key=key, outputs=_loads(outputs, None), status=status,
            error=error, cached=bool(cached), timings=_loads(timings, {}),
            verdicts=_loads(verdicts, []), info=_loads(info, {}), notebook=notebook, cell_id=cell_id,
        )

    _COLUMNS = ("id, created, kind, model, revision, prompt, request, key, outputs, status, error, cached,"
                " timings, verdicts, info, notebook, cell_id")

    def lookup(self, key: str) -> Record | None:
        """The newest successful original run with this request key: never a row that was
        itself served from the cache, so ``cached_from`` always names the run that produced it,
        and never one whose outputs were not stored (an ``error`` on an ``ok`` row; rows written
        before that rule are known by their ``unserialisable`` outputs)."""
        row = self._guarded(lambda conn: conn.execute(
            f"SELECT {self._COLUMNS} FROM runs WHERE key = ? AND status = 'ok' AND cached = 0"
            " AND error IS NULL AND outputs NOT LIKE '{\"unserialisable\"%'"
            " ORDER BY id DESC LIMIT 1",
            (key,),
        ).fetchone())
        return self._record(row) if row else None

    def get(self, rid: int) -> Record | None:
        row = self._guarded(
            lambda conn: conn.execute(f"SELECT {self._COLUMNS} FROM runs WHERE id = ?", (rid,)).fetchone()
        )
        return self._record(row) if row else None

    def page(self, offset: int = 0, n: int = 20, *, search: str | None = None, kind: str | None = None,
             model: str | None = None, status: str | None = None,
             notebooks: tuple[str, ...] = ()) -> tuple[list[Record], int]:
        """One page of runs, newest first, and how many match (the lab sidebar's history):
        ``search`` in prompt or output, exact ``kind``/``model``/``status``, ``notebooks`` any of
        these recorded notebook paths."""
        clause, args = _filters(search=search, kind=kind, model=model, status=status, notebooks=notebooks)

        def query(conn: sqlite3.Connection) -> tuple[list[Any], int]:
            total = conn.execute(f"SELECT COUNT(*) FROM runs{clause}", args).fetchone()[0]
            rows = conn.execute(f"SELECT {self._COLUMNS} FROM runs{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
                                [*args, n, offset]).fetchall()
            return rows, int(total)

        rows, total = self._guarded(query)
        return [self._record(r) for r in rows], total

    def processes(self) -> list[tuple[str, int]]:
        """(model, process id) for each process that ran a model itself (not from the cache)."""
        rows = self._guarded(lambda conn: conn.execute(
            "SELECT DISTINCT model, pid FROM runs WHERE cached = 0 AND pid IS NOT NULL").fetchall())
        return [(str(m), int(p)) for m, p in rows]

    def list(self, n: int = 20, search: str | None = None, kind: str | None = None) -> list[Record]:
        """The newest ``n`` runs (newest first), optionally matching ``search`` in prompt or output."""
        clause, args = _filters(search=search, kind=kind)
        sql = f"SELECT {self._COLUMNS} FROM runs{clause} ORDER BY id DESC LIMIT ?"
        return [self._record(r) for r in self._guarded(lambda conn: conn.execute(sql, [*args, n]).fetchall())]

    def count(self) -> int:
        return int(self._guarded(lambda conn: conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0]))


# The prompt, or an output text as decoded (not the JSON around it: "texts" or a blob name never match),
# leaving out outputs a safety check withheld, unless a person approved the run.
_SEARCH = """(runs.prompt LIKE ? ESCAPE '\\' OR EXISTS (
    SELECT 1 FROM json_each(CASE WHEN json_valid(runs.outputs) THEN runs.outputs ELSE '{}' END, '$.texts') AS t
    WHERE t.type = 'text' AND t.value LIKE ? ESCAPE '\\'
      AND (json_extract(runs.outputs, '$.withheld."' || t.key || '"') IS NULL
           OR EXISTS (SELECT 1 FROM decisions AS d WHERE d.run_id = runs.id AND d.decision = 'approved'))))"""


def _filters(*, search: str | None = None, kind: str | None = None, model: str | None = None,
             status: str | None = None, notebooks: tuple[str, ...] = ()) -> tuple[str, list[Any]]:
    """The WHERE clause (with its leading space, or empty) and arguments of a history query."""
    where: list[str] = []
    args: list[Any] = []
    if search:
        where.append(_SEARCH)
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        args += [pattern, pattern]
    for column, value in (("kind", kind), ("model", model), ("status", status)):
        if value:
            where.append(f"{column} = ?")
            args.append(value)
    if notebooks:
        where.append(f"notebook IN ({','.join('?' * len(notebooks))})")
        args += notebooks
    return (" WHERE " + " AND ".join(where)) if where else "", args
