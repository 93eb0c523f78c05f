"""History as a table and as result objects (shared by ``%genmagic`` and the CLI)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from .display import Table, shorten
from .errors import GenmagicError, command
from .history import History, Record
from .request import Request
from .results import Result, result_class
from .safety.labels import category_name, summary


def history_table(history: History, n: int = 20, search: str | None = None, kind: str | None = None) -> Table:
    return history_rows_table(history.list(n=n, search=search, kind=kind), history)


def _when(created: float) -> str:
    return dt.datetime.fromtimestamp(created).strftime("%Y-%m-%d %H:%M:%S")


def status_text(rec: Record, history: History | None) -> str:
    """A run's status, with the review decision when there is one (``review: approved``)."""
    status = rec.status + (" (cached)" if rec.cached else "")
    if rec.status == "review" and history is not None:
        final = history.final_decision(rec.id)
        status += f": {final['decision']}" if final else " (pending)"
    return status


def history_rows_table(records: Iterable[Record], history: History | None = None) -> Table:
    rows = []
    for rec in records:
        when = _when(rec.created)
        seconds = rec.timings.get("total") if isinstance(rec.timings, dict) else None
        rows.append(
            [
                rec.id,
                when,
                rec.kind,
                rec.model,
                status_text(rec, history),
                f"{seconds:.2f}s" if isinstance(seconds, (int, float)) else "",
                shorten(rec.prompt, 40),
                shorten(rec.error or ("[withheld]" if _withheld(rec) else rec.summary), 50),
                summary(rec.verdicts if isinstance(rec.verdicts, list) else []),
            ]
        )
    return Table(["id", "when", "kind", "model", "status", "time", "prompt", "output", "safety"], rows)


def _withheld(rec: Record) -> bool:
    return isinstance(rec.outputs, dict) and bool(rec.outputs.get("withheld"))


def verdict_table(history: History, n: int = 20) -> Table:
    """The ``n`` newest safety verdicts (``%genmagic safety log``), newest first."""
    rows: list[list[Any]] = []
    for rec in history.list(n=max(n, 1) * 5):
        for v in rec.verdicts if isinstance(rec.verdicts, list) else []:
            if not isinstance(v, dict) or v.get("action") == "allow":
                continue
            rows.append([rec.id, _when(rec.created), rec.model, v.get("target") or v.get("stage", ""),
                         v.get("check", ""), category_name(str(v.get("category", ""))), v.get("action", ""),
                         shorten(str(v.get("reason", "")), 60)])
            if len(rows) >= n:
                break
        if len(rows) >= n:
            break
    note = "" if rows else "no verdicts in the recent runs"
    return Table(["run", "when", "model", "where", "check", "category", "action", "reason"], rows, note)


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
    result.history_id, result.info, result.history = rec.id, rec.info, history
    if rec.status == "review":  # a decision made since (here, in another kernel, in the lab sidebar)
        from .safety.review import apply_decision

        final = history.final_decision(rec.id)
        if final is not None:
            apply_decision(result, final["decision"], final["edited"])
    return result


def public_record(rec: Record) -> dict[str, Any]:
    """A record as ``genmagic history --json`` prints it: withheld outputs replaced by a marker
    (history keeps them; ``--include-withheld`` prints them)."""
    from dataclasses import asdict

    data = asdict(rec)
    outputs = data.get("outputs")
    withheld = outputs.get("withheld") if isinstance(outputs, dict) else None
    if isinstance(outputs, dict) and isinstance(withheld, dict):
        for key in ("texts", "images"):
            values = outputs.get(key)
            if isinstance(values, list):
                outputs[key] = [f"[withheld: {withheld[str(i)]}]" if str(i) in withheld else v
                                for i, v in enumerate(values)]
    return data
