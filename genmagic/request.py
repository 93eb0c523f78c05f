"""The objects every run passes around: Request, Event and the Sink protocol.

A :class:`Request` is frozen and fully describes one run; :meth:`Request.key` is a
content hash that includes the model's weight fingerprint (and its adapters'), so a
changed model never serves a stale cache entry. The results are in :mod:`genmagic.results`
(re-exported here).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .options import Options

# The result types live in genmagic.results; these names stay importable from here.
from .results import Result, TextResult, Verdict, result_class


@dataclass(frozen=True)
class Request:
    kind: str  # "text" | "image" | ...
    prompt: str
    model: str  # the resolved alias, or the source when the model is not registered
    options: Options
    # Fingerprint of the weights (and adapters) it runs on; not a hub revision, which is
    # ModelSpec.hub_revision. History rows written before the rename call it "revision".
    fingerprint: str = ""
    messages: tuple[tuple[str, str], ...] = ()  # earlier chat turns: (role, content)
    # Where it runs, resolved when --device/--dtype were left out (backend.placement): part of
    # the key, so a CPU float32 answer is never served to a CUDA float16 run.
    device: str = ""
    dtype: str = ""
    # Inputs that are not plain values (an init image, a mask): part of the key by content.
    inputs: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # False when the seed was chosen at random: the run is reproducible, but not cached.
    seed_given: bool = field(default=True, compare=False)
    # The registry entry it was built from (Engine.request), so a run does not resolve the
    # model (config files, trust) again; None for a request read back from history or a PNG.
    spec: Any = field(default=None, compare=False, hash=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "prompt": self.prompt,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "options": self.options.to_dict(),
            "messages": [list(m) for m in self.messages],
            "device": self.device,
            "dtype": self.dtype,
            "inputs": {name: digest(value) for name, value in sorted(self.inputs.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Request:
        """Rebuild a request written by :meth:`to_dict` (inputs come back as their digests)."""
        from .options import options_class

        return cls(
            kind=data["kind"],
            prompt=data["prompt"],
            model=data["model"],
            options=options_class(data["kind"]).from_dict(data["options"]),
            fingerprint=stored_fingerprint(data),
            messages=tuple((m[0], m[1]) for m in data.get("messages", ())),
            device=str(data.get("device", "")),
            dtype=str(data.get("dtype", "")),
            inputs={name: Digest(value) for name, value in data.get("inputs", {}).items()},
        )

    def key(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def seed(self) -> int | None:
        value = getattr(self.options, "seed", None)
        return value if isinstance(value, int) else None


def stored_fingerprint(data: Mapping[str, Any]) -> str:
    """The weight fingerprint of a request stored as JSON (history rows and PNGs written
    before the field was renamed call it ``revision``)."""
    return str(data.get("fingerprint", data.get("revision", "")) or "")


class Digest(str):
    """An input already reduced to its digest (a request read back from history)."""


def digest(value: Any) -> str:
    """A stable content hash of an input value (bytes, text, or a PIL image)."""
    if isinstance(value, Digest):
        return str(value)
    h = hashlib.sha256()
    if hasattr(value, "tobytes") and hasattr(value, "mode") and hasattr(value, "size"):
        h.update(f"{value.mode}:{value.size}".encode())
        h.update(value.tobytes())
    elif isinstance(value, bytes):
        h.update(value)
    else:
        h.update(repr(value).encode("utf-8"))
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Event:
    """Something a backend reports while it runs.

    ``type`` is one of ``"token"`` (``data``: text), ``"progress"`` (``data``: (done, total)),
    ``"preview"`` (``data``: a PIL image) from the backend; ``"start"`` (``data``: the
    :class:`Request`, so a live view knows the model and seeds) from the run layer; ``"loading"``
    (``data``: the model alias) and ``"loaded"`` (``data``: seconds) from the engine around a cold
    model load. ``index`` says which sample (of ``--num``) it belongs to.
    """

    type: str
    data: Any
    index: int = 0


class Sink(Protocol):
    """Where a run's events go: a notebook cell, stdout, a widget, a test list."""

    @property
    def cancelled(self) -> bool: ...

    def emit(self, event: Event) -> None: ...


def run_with_sink(engine: Any, request: Request, sink: Any, **run_args: Any) -> Any:
    """The run layers' shared step: the sink hears ``start`` (a live view shows the model and
    each sample's seed from the start), then :meth:`Engine.run`; if that raises, a sink that
    can be closed is closed as failed before the error goes on."""
    sink = sink if sink is not None else NullSink()
    sink.emit(Event("start", request))
    try:
        return engine.run(request, sink, **run_args)
    except BaseException as err:
        close = getattr(sink, "close", None)  # a sink may be emit-only (the Sink protocol)
        if callable(close):
            from .errors import BlockedError

            close(False, "blocked by a safety check" if isinstance(err, BlockedError) else "failed")
        raise


class NullSink:
    cancelled = False

    def emit(self, event: Event) -> None:
        pass

    def close(self, success: bool, note: str = "", final: Any = None) -> bool:
        return False


class ListSink:
    """Collects events; ``cancel_after`` cancels after that many token/progress events."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.events: list[Event] = []
        self.cancel_after = cancel_after

    @property
    def cancelled(self) -> bool:
        if self.cancel_after is None:
            return False
        return sum(e.type in ("token", "progress") for e in self.events) >= self.cancel_after

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def close(self, success: bool, note: str = "", final: Any = None) -> bool:
        return False


__all__ = ["Digest", "Event", "ListSink", "NullSink", "Request", "Result", "Sink", "TextResult", "Verdict",
           "digest", "result_class"]
