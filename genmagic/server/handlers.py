"""REST handlers under ``/genmagic/api/``: models, history pages, images and thumbnails, the
review queue, and the cell that re-runs a run.

Every handler is a jupyter_server ``APIHandler`` behind ``@tornado.web.authenticated`` and
``@authorized`` (resource ``genmagic``): a request without the server's token or login cookie
gets 403, a cookie-authenticated POST without the XSRF token gets 403. Every SQLite read or
write and every image decode runs on a worker thread (``asyncio.to_thread``), so a slow query
never blocks the server's event loop. Blob names are checked by :meth:`History.blob_path` (a
sha256 and a known suffix, inside ``blobs/``, no symlink out) before any file is opened.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from typing import Any, TypeVar

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from ..errors import GenmagicError
from ..history import History, HistoryError
from . import items
from .thumbs import SIZES, thumbnail

_T = TypeVar("_T")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
               ".gif": "image/gif"}
MAX_PAGE_SIZE = 200
MAX_NOTE = 2000


def _engine() -> Any:
    from ..engine import default_engine

    return default_engine()


def _history() -> History:
    """The store the kernels write to (``GENMAGIC_HOME``, read again on each call)."""
    history: History = _engine().history
    return history


class _Handler(APIHandler):  # type: ignore[misc]
    auth_resource = "genmagic"

    @property
    def root_dir(self) -> str:
        return str(self.settings.get("genmagic_root_dir") or os.getcwd())

    async def off_loop(self, fn: Callable[..., _T], *args: Any) -> _T:
        return await asyncio.to_thread(fn, *args)

    def arg(self, name: str, default: str = "") -> str:
        return str(self.get_query_argument(name, default)).strip()

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.arg(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise tornado.web.HTTPError(400, f"{name}={raw[:40]!r} is not a whole number; give {low}..{high}") from None
        if not low <= value <= high:
            raise tornado.web.HTTPError(400, f"{name}={value} is out of range; give {low}..{high}")
        return value

    def reply(self, data: Any) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(data, default=str))


class ModelsHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply(await self.off_loop(_models))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _models() -> dict[str, Any]:
    engine = _engine()
    registry = engine.registry
    history = engine.history
    ran = history.processes() if history.path.exists() else []
    live = {model for model, pid in ran if _alive(pid)}
    defaults = {kind: registry.default(kind) for kind in ("text", "image")}
    return {
        "models": [items.model_item(s, defaults.get(s.kind) == s.alias, s.alias in live) for s in registry.specs()],
        "defaults": defaults,
    }


class HistoryHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        size = self.int_arg("size", 20, 1, MAX_PAGE_SIZE)
        page = self.int_arg("page", 1, 1, 1_000_000)
        notebook = self.arg("notebook")
        query = {
            "search": self.arg("q") or None,
            "kind": self.arg("kind") or None,
            "model": self.arg("model") or None,
            "status": self.arg("status") or None,
            "notebooks": items.notebook_keys(notebook, self.root_dir) if notebook else (),
        }
        self.reply(await self.off_loop(_history_page, (page - 1) * size, size, query, self.root_dir) | {
            "page": page, "size": size})


def _history_page(offset: int, size: int, query: dict[str, Any], root_dir: str) -> dict[str, Any]:
    history = _history()
    if not history.path.exists():  # nothing ran yet: do not create the store from the server
        return {"items": [], "total": 0}
    records, total = history.page(offset, size, **query)
    return {"items": [items.run_item(r, root_dir, history.final_decision(r.id)) for r in records], "total": total}


class RunHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.reply(await self.off_loop(_run, int(run_id), self.root_dir))


def _record(run_id: int) -> Any:
    history = _history()
    record = history.get(run_id) if history.path.exists() else None
    if record is None:
        raise tornado.web.HTTPError(404, f"there is no run #{run_id} in the history")
    return record


def _run(run_id: int, root_dir: str) -> dict[str, Any]:
    return items.run_item(_record(run_id), root_dir, _history().final_decision(run_id))


class CellHandler(_Handler):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.reply(await self.off_loop(_cell, int(run_id)))


def _cell(run_id: int) -> dict[str, Any]:
    from ..magic_line import cell_for_request, unreproducible

    record = _record(run_id)
    try:
        return {"cell": cell_for_request(record.request), "unreproducible": unreproducible(record.request)}
    except (GenmagicError, KeyError, TypeError, AttributeError, ValueError) as err:  # an altered or foreign row
        raise tornado.web.HTTPError(
            422, f"run #{run_id}'s request cannot be written as a cell ({type(err).__name__}: {err}); "
                 "copy its prompt instead") from None


class NewCellHandler(_Handler):
    """A ready ``%%generate`` / ``%%imagine`` cell for the Models tab (its flags written by
    :func:`~genmagic.magic_line.magic_cell`, so quoting follows the magics' parser)."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from ..magic_line import magic_cell
        from ..safety.labels import LEVELS

        kind = self.arg("kind", "text")
        if kind not in ("text", "image"):
            raise tornado.web.HTTPError(400, f"kind={kind[:20]!r} is not text or image")
        safety = self.arg("safety")
        if safety and safety not in LEVELS:
            raise tornado.web.HTTPError(400, f"safety={safety[:20]!r} is not one of {', '.join(LEVELS)}")
        prompt = self.arg("prompt") or ("Write a haiku about the sea" if kind == "text" else "a lighthouse at dusk")
        try:
            cell = magic_cell(kind, prompt, model=self.arg("model") or None, controls={"safety": safety or None})
        except GenmagicError as err:
            raise tornado.web.HTTPError(400, str(err)) from None
        self.reply({"cell": cell})


class ImageHandler(_Handler):
    """``images/NAME``: the image blob; ``thumbs/SIZE/NAME``: its PNG thumbnail."""

    @tornado.web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        await self.serve(name, None)

    async def serve(self, name: str, size: str | None) -> None:
        suffix = os.path.splitext(name)[1].lower()
        if suffix not in IMAGE_TYPES:
            raise tornado.web.HTTPError(404, "not an image blob")
        history = _history()
        try:
            if size is None:
                data = await self.off_loop(history.get_blob, name)
                content_type = IMAGE_TYPES[suffix]
            else:
                if int(size) not in SIZES:
                    raise tornado.web.HTTPError(400, f"thumbnail size {size} is not one of {', '.join(map(str, SIZES))}")
                data = await self.off_loop(thumbnail, history, name, int(size))
                content_type = "image/png"
        except (HistoryError, OSError) as err:
            self.log.info("genmagic: refused image %r: %s", name[:100], err)
            raise tornado.web.HTTPError(404, "no such image in the history") from None
        except ValueError as err:
            raise tornado.web.HTTPError(422, str(err)) from None
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "private, max-age=86400, immutable")  # content-addressed
        self.finish(data, set_content_type=content_type)  # APIHandler's finish would say JSON


class ReviewHandler(_Handler):
    """GET: the runs held for review; POST ``review/ID`` ``{"decision": "approve"|"reject",
    "note": ...}``: the decision, written to history by :mod:`genmagic.safety` (so a kernel
    holding the result sees it: ``genmagic.safety.refresh``)."""

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str | None = None) -> None:
        self.reply(await self.off_loop(_pending, self.root_dir))

    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str | None = None) -> None:
        if run_id is None:
            raise tornado.web.HTTPError(405, "POST to review/ID")
        try:
            body = json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "the body is not JSON; send {\"decision\": \"approve\"}") from None
        decision = body.get("decision") if isinstance(body, dict) else None
        note = body.get("note") if isinstance(body, dict) else None
        if decision not in ("approve", "reject"):
            raise tornado.web.HTTPError(400, f"decision={str(decision)[:20]!r} is not approve or reject")
        if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
            raise tornado.web.HTTPError(400, f"note must be text of at most {MAX_NOTE} characters")
        try:
            await self.off_loop(_decide, int(run_id), decision, note)
        except GenmagicError as err:
            raise tornado.web.HTTPError(409, str(err)) from None
        self.reply(await self.off_loop(_run, int(run_id), self.root_dir))


def _pending(root_dir: str) -> dict[str, Any]:
    history = _history()
    pending = history.pending() if history.path.exists() else []
    return {"items": [items.review_item(r, root_dir) for r in pending]}


def _decide(run_id: int, decision: str, note: str | None) -> None:
    from .. import safety

    (safety.approve if decision == "approve" else safety.reject)(run_id, note or None)


_NAME = r"([^/]+)"  # one path segment; the name itself is checked by History.blob_path


def setup_handlers(web_app: Any, root_dir: str) -> None:
    base = url_path_join(web_app.settings["base_url"], "genmagic", "api")
    web_app.settings["genmagic_root_dir"] = root_dir
    web_app.add_handlers(".*$", [
        (url_path_join(base, "models"), ModelsHandler),
        (url_path_join(base, "history"), HistoryHandler),
        (url_path_join(base, r"history/(\d{1,18})"), RunHandler),
        (url_path_join(base, r"history/(\d{1,18})/cell"), CellHandler),
        (url_path_join(base, "cell"), NewCellHandler),
        (url_path_join(base, "images", _NAME), ImageHandler),
        (url_path_join(base, r"thumbs/(\d{1,4})", _NAME), ThumbHandler),
        (url_path_join(base, "review"), ReviewHandler),
        (url_path_join(base, r"review/(\d{1,18})"), ReviewHandler),
    ])


class ThumbHandler(ImageHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, size: str, name: str) -> None:  # type: ignore[override]
        await self.serve(name, size)
