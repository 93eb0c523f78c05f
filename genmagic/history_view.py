"""History as a table and as result objects (shared by ``%genmagic`` and the CLI)."""

from __future__ import annotations

import datetime as dt

from .display import Table, shorten
from .errors import GenmagicError, command
from .history import History
from .request import Request
from .results import Result, result_class


def history_table(history: History, n: int = 20, search: str | None = None, kind: str | None = None) -> Table:
    rows = []
    for rec in history.list(n=n, search=search, kind=kind):
        when = dt.datetime.fromtimestamp(rec.created).strftime("%Y-%m-%d %H:%M:%S")
        seconds = rec.timings.get("total")
        rows.append(
            [
                rec.id,
                when,
                rec.kind,
                rec.model,
                rec.status + (" (cached)" if rec.cached else ""),
                f"{seconds:.2f}s" if isinstance(seconds, (int, float)) else "",
                shorten(rec.prompt, 40),
                shorten(rec.error or rec.summary, 50),
            ]
        )
    return Table(["id", "when", "kind", "model", "status", "time", "prompt", "output"], rows)


def result_from_history(history: History, rid: int) -> Result:
    rec = history.get(rid)
    if rec is None:
        raise GenmagicError(f"no run #{rid} in the history at {history.path}; see {command('history')}")
    request = Request.from_dict(rec.request)
    if rec.outputs is None:
        result = result_class(rec.kind)(request=request)
    else:
        result = result_class(rec.kind).from_record(request, rec.outputs, history.get_blob)
    result.status, result.error, result.timings = rec.status, rec.error, rec.timings
    result.history_id, result.info = rec.id, rec.info
    return result
