"""A small fake backend, registered in a fixture the way a plugin would be.

``-m echo:`` models answer with the prompt (or ``echo:TEXT`` with TEXT), one character
per token event, honouring cancellation; handy where the output must be exact.
"""

from __future__ import annotations

import time
from typing import Any

from genmagic.backends import Loaded
from genmagic.request import Event, TextResult


class EchoBackend:
    kinds = ("text",)
    loads = 0

    def detect(self, source: str) -> str | None:
        return "text" if source.startswith("echo:") else None

    def fingerprint(self, spec: Any) -> str:
        return "echo-1"

    def load_key(self, spec: Any, options: Any) -> tuple[Any, ...]:
        return ()

    def load(self, spec: Any, options: Any) -> Loaded:
        type(self).loads += 1
        return Loaded(spec=spec, model=spec.source.removeprefix("echo:"), nbytes=1000)

    def generate(self, loaded: Loaded, request: Any, sink: Any) -> TextResult:
        answer = loaded.model or request.prompt
        for stop in request.options.stop:
            answer = answer.split(stop)[0]
        texts, status = [], "ok"
        for index in range(request.options.num):
            out = ""
            for ch in answer[: request.options.max_new_tokens]:
                if sink.cancelled:
                    status = "interrupted"
                    break
                out += ch
                sink.emit(Event("token", ch, index))
            texts.append(out)
            if status != "ok":
                break
        return TextResult(
            request=request,
            status=status,
            texts=texts,
            tokens=[len(t) for t in texts],
            timings={"generate": 0.001, "tokens": float(sum(map(len, texts))), "time": time.time()},
        )

    def unload(self, loaded: Loaded) -> None:
        loaded.model = None
