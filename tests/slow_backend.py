"""Backends for the panel tests, registered the way a plugin is (also inside a real kernel).

``SlowEchoBackend`` answers like the echo backend but sleeps ``delay`` s per token, so a Stop
arrives mid-run, and counts how many runs are inside ``generate`` at once. ``FailingBackend``
raises an error that is no GenmagicError, after one token.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from fake_backend import EchoBackend

from genmagic.request import Event


class SlowEchoBackend(EchoBackend):
    delay = 0.02
    active = 0
    most = 0  # the most runs inside generate() at the same time
    _count = threading.Lock()

    def detect(self, source: str) -> str | None:
        return "text" if source.startswith("slow:") else None

    def load(self, spec: Any, options: Any) -> Any:
        loaded = super().load(spec, options)
        loaded.model = spec.source.removeprefix("slow:")
        return loaded

    def generate(self, loaded: Any, request: Any, sink: Any) -> Any:
        cls = type(self)
        with cls._count:
            cls.active += 1
            cls.most = max(cls.most, cls.active)
        try:
            return super().generate(loaded, request, _Sleepy(sink, self.delay))
        finally:
            with cls._count:
                cls.active -= 1


class _Sleepy:
    def __init__(self, inner: Any, delay: float) -> None:
        self.inner, self.delay = inner, delay

    @property
    def cancelled(self) -> bool:
        return bool(self.inner.cancelled)

    def emit(self, event: Event) -> None:
        self.inner.emit(event)
        time.sleep(self.delay)


class FailingBackend(EchoBackend):
    def detect(self, source: str) -> str | None:
        return "text" if source.startswith("fail:") else None

    def generate(self, loaded: Any, request: Any, sink: Any) -> Any:
        sink.emit(Event("token", "a"))
        raise RuntimeError("the device fell over")
