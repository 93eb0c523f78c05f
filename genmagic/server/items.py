"""History rows and registry entries as the sidebar's JSON (plain functions, no server needed).

A withheld output (held for review, or blocked) is never in a history item: its text is left out
and its image's blob name too, until a final ``approved`` / ``edited`` decision. The review queue
(:func:`review_item`) shows the originals: it is where a person decides on them.
"""

from __future__ import annotations

import os
import re
from typing import Any

from ..history import Record

MAX_TEXT = 20_000  # characters of one output in a list (the sidebar shows a few lines of each)
_BLOB = re.compile(r"[0-9a-f]{64}\.[a-z]{3,4}")  # the shape of a blob name (History.blob_path checks it fully)


def _list(value: Any) -> list[Any]:
    """A stored JSON list, or [] for anything else (anything may have written the database)."""
    return value if isinstance(value, list) else []


def notebook_keys(notebook: str, root_dir: str) -> tuple[str, ...]:
    """What history may hold as ``notebook`` for the notebook at ``notebook`` (relative to the
    server's root): ipykernel's ``__session__`` is jupyter_server's ``JPY_SESSION_NAME``, the
    kernel's working folder joined with the notebook's name (an absolute path); other front
    ends record the relative path."""
    rel = notebook.lstrip("/")
    return tuple(dict.fromkeys([rel, os.path.join(os.path.abspath(root_dir), rel)]))


def shown_notebook(notebook: str | None, root_dir: str) -> str | None:
    """A recorded notebook path relative to the server's root when it is under it."""
    if not notebook or not os.path.isabs(notebook):
        return notebook
    root = os.path.abspath(root_dir)
    return os.path.relpath(notebook, root) if notebook.startswith(root + os.sep) else notebook


def _withheld(outputs: dict[str, Any]) -> dict[str, Any]:
    withheld = outputs.get("withheld")
    return withheld if isinstance(withheld, dict) else {}


def _hidden(outputs: dict[str, Any], decision: dict[str, Any] | None) -> set[int]:
    withheld = _withheld(outputs)
    if decision is not None and decision["decision"] in ("approved", "edited"):
        return set()
    return {int(k) for k in withheld if str(k).isdigit()}


def run_item(record: Record, root_dir: str, decision: dict[str, Any] | None = None,
             reveal_withheld: bool = False) -> dict[str, Any]:
    """One history row for the sidebar."""
    outputs = record.outputs if isinstance(record.outputs, dict) else {}
    hidden = set() if reveal_withheld else _hidden(outputs, decision)
    reasons = _withheld(outputs)
    request = record.request if isinstance(record.request, dict) else {}
    stored = request.get("options")
    options: dict[str, Any] = stored if isinstance(stored, dict) else {}
    texts: list[str | None] = []
    if isinstance(outputs.get("texts"), list):
        edited = decision.get("edited") if decision and decision["decision"] == "edited" else None
        source = list(edited) + outputs["texts"][len(edited):] if isinstance(edited, list) else outputs["texts"]
        texts = [None if i in hidden else str(t)[:MAX_TEXT] for i, t in enumerate(source)]
    images = [name if i not in hidden and isinstance(name, str) and _BLOB.fullmatch(name) else None
              for i, name in enumerate(_list(outputs.get("images")))]
    return {
        "id": record.id,
        "created": record.created,
        "kind": record.kind,
        "model": record.model,
        "prompt": record.prompt,
        "options": dict(options),
        "seed": options.get("seed"),
        "seeds": _list(outputs.get("seeds")),
        "status": record.status,
        "error": record.error,
        "cached": record.cached,
        "texts": texts,
        "images": images,
        "withheld": {str(k): str(v) for k, v in reasons.items()} if hidden else {},
        "verdicts": [{k: v.get(k) for k in ("check", "category", "score", "action", "stage", "target", "reason")}
                     for v in _list(record.verdicts) if isinstance(v, dict)],
        "decision": None if decision is None else {k: decision[k] for k in ("decision", "created", "note")},
        "notebook": shown_notebook(record.notebook, root_dir),
        "timings": record.timings if isinstance(record.timings, dict) else {},
    }


def review_item(record: Record, root_dir: str) -> dict[str, Any]:
    """A run held for review, with the outputs the reviewer decides on."""
    item = run_item(record, root_dir, reveal_withheld=True)
    outputs = record.outputs if isinstance(record.outputs, dict) else {}
    item["withheld"] = {str(k): str(v) for k, v in _withheld(outputs).items()}
    return item


def model_item(spec: Any, default: bool, loaded: bool) -> dict[str, Any]:
    """A registry entry: what the sidebar shows, never a setting that may hold a secret."""
    return {
        "alias": spec.alias,
        "kind": spec.kind,
        "backend": spec.backend,
        "source": _public_source(spec.source),
        "origin": spec.origin,
        "description": spec.description,
        "adapters": len(spec.adapters),
        "default": default,
        "loaded": loaded,
    }


def _public_source(source: str) -> str:
    from ..registry import _masked

    return str(_masked(source))
