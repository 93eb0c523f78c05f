"""The objects every run passes around: Request, Event, Verdict and the results.

A :class:`Request` is frozen and fully describes one run; :meth:`Request.key` is a
content hash that includes the model's weight fingerprint (and its adapters'), so a
changed model never serves a stale cache entry. Results keep the request, timings and safety
verdicts and know how to show themselves (the rendering lives in :mod:`genmagic.display`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .options import Options


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
    ``"preview"`` (``data``: a PIL image), ``"status"`` (``data``: text).
    ``index`` says which sample (of ``--num``) it belongs to.
    """

    type: str
    data: Any
    index: int = 0


class Sink(Protocol):
    """Where a run's events go: a notebook cell, stdout, a widget, a test list."""

    @property
    def cancelled(self) -> bool: ...

    def emit(self, event: Event) -> None: ...


class NullSink:
    cancelled = False

    def emit(self, event: Event) -> None:
        pass

    def close(self, success: bool, note: str = "") -> None:
        pass


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

    def close(self, success: bool, note: str = "") -> None:
        pass


@dataclass(frozen=True)
class Verdict:
    """One safety check's finding. Kept on the result and in history, never dropped."""

    check: str
    category: str
    score: float
    action: str  # allow | redact | warn | block | review
    spans: tuple[tuple[int, int], ...] = ()
    stage: str = "prompt"  # prompt | output

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "category": self.category,
            "score": self.score,
            "action": self.action,
            "spans": [list(s) for s in self.spans],
            "stage": self.stage,
        }


@dataclass
class Result:
    """What a run produced. ``status``: ok | interrupted | error | blocked."""

    request: Request
    status: str = "ok"
    timings: dict[str, float] = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)
    cached: bool = False
    history_id: int | None = None
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # backend provenance: device, dtype, ...

    def to_record(self, put_blob: Callable[[bytes, str], str]) -> Any:
        """The outputs as JSON for the history store; binary outputs go through ``put_blob``."""
        raise NotImplementedError

    @classmethod
    def from_record(cls, request: Request, outputs: Any, get_blob: Callable[[str], bytes]) -> Result:
        """Rebuild a result from :meth:`to_record`'s JSON (for the cache)."""
        raise NotImplementedError

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass
class TextResult(Result):
    texts: list[str] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)  # new tokens per sample
    format: str = "markdown"  # how the result shows itself: markdown | text | code | json | html

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""

    def to_record(self, put_blob: Callable[[bytes, str], str]) -> Any:
        return {"texts": self.texts, "tokens": self.tokens}

    @classmethod
    def from_record(cls, request: Request, outputs: Any, get_blob: Callable[[str], bytes]) -> TextResult:
        return cls(request=request, texts=list(outputs["texts"]), tokens=list(outputs.get("tokens", [])))

    def json(self) -> Any:
        """The text parsed as JSON (a ``OutputFormatError`` with the position otherwise)."""
        from .display import parse_json

        return parse_json(self.text)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (
            f"TextResult(model={self.request.model!r}, status={self.status!r}, "
            f"seed={self.request.seed}, texts={[t[:40] + ('…' if len(t) > 40 else '') for t in self.texts]!r})"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from .display import text_result_bundle

        return text_result_bundle(self)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text("\n\n".join(self.texts) if len(self.texts) > 1 else self.text)


def result_class(kind: str) -> type[Result]:
    if kind == "text":
        return TextResult
    if kind == "image":
        from .image_result import ImageResult

        return ImageResult
    raise KeyError(kind)
