"""A panel's run: in a worker thread, through the modality's run layer, into the panel's output area.

Why a thread: ipykernel handles comm messages (a widget click) only while its main thread is idle.
The run happens in a worker thread, so the cell (or the click handler) returns at once and the
Stop click is processed while the model runs; Stop sets the sink's ``cancelled``, which every
backend checks per token or per denoising step. :attr:`genmagic.engine.Engine.lock` makes runs
take turns (two panels, or a panel and a cell, never run the model at the same time).

The live view is the magic's own (:class:`~genmagic.sinks.CellTextSink` / ``CellImageSink``)
drawing into an ipywidgets ``Output``: :class:`OutputView` sets the widget's ``outputs`` from the
kernel side, which needs no front-end routing of a thread's output, works in JupyterLab, Notebook 7
and VS Code, and is saved with the widget state.
"""

from __future__ import annotations

import contextvars
import threading
import traceback
from collections.abc import Callable
from typing import Any

from .errors import GenmagicError
from .sinks import Bundle, CellImageSink, CellTextSink, LiveView


class OutputView(LiveView):
    """:class:`~genmagic.sinks.LiveView` drawn into an ipywidgets ``Output`` (any thread)."""

    def __init__(self, output: Any) -> None:
        self.output = output
        self.shown = False
        self.lock = threading.Lock()

    def show(self, bundle: dict[str, Any]) -> None:
        with self.lock:
            self.output.outputs = ({"output_type": "display_data", "data": bundle, "metadata": {}},)
            self.shown = True

    def append_text(self, text: str, name: str = "stderr") -> None:
        self._append({"output_type": "stream", "name": name, "text": text})

    def append_bundle(self, bundle: dict[str, Any]) -> None:
        """Another display below the view (a widget's bundle: the review panel)."""
        self._append({"output_type": "display_data", "data": bundle, "metadata": {}})

    def _append(self, output: dict[str, Any]) -> None:
        with self.lock:
            self.output.outputs = (*self.output.outputs, output)


def panel_sink(kind: str, output: Any, num: int, stream: bool, fmt: str = "auto", preview: int = 5) -> Any:
    """The magic's live view of ``kind``, drawn into ``output``; ``cancelled`` is the Stop button."""
    sink: Any = CellTextSink(num, fmt=fmt, stream=stream) if kind == "text" else CellImageSink(num, preview, stream=stream)
    sink.view = OutputView(output)
    return sink


def end_view(sink: Any, result: Any) -> str:
    """Close the live view as the magic does (the result in place, or the partial output marked)
    and give the panel's one-line status."""
    shows = result.ok or result.status in ("blocked", "review") or bool(result.withheld)
    where = f"history #{result.history_id}"
    tokens = getattr(result, "tokens", None)
    note = "" if result.ok else (f"{result.status} after {sum(tokens)} tokens · {where}" if tokens is not None
                                 else f"{result.status} · {where}")
    final: Bundle | None = result._repr_mimebundle_ if shows else None
    if result.ok and getattr(result, "format", "") == "json":
        from .display import text_footer

        sink.close(True, text_footer(result))
    elif not sink.close(shows, note, final) and shows:
        sink.view.show(result._repr_mimebundle_())  # nothing was streamed (a cache hit, --no-stream)
    if result.status == "review" and isinstance(sink.view, OutputView):  # approve / edit / reject, as in a cell
        from .safety.review import review_widget

        sink.view.append_bundle(review_widget(result)._repr_mimebundle_())
    seed = result.request.seed
    seeded = f" · seed {seed}" if seed is not None else ""
    if result.status == "interrupted":
        return f"stopped: the partial output is kept ({where}{seeded})"
    if result.status == "error":
        return f"error: {result.error} ({where})"
    if result.withheld or result.status in ("blocked", "review"):
        what = "held for review" if result.status == "review" else "withheld by a safety check"
        return f"{len(result.withheld)} output(s) {what} ({where}); %genmagic safety review"
    cached = " · from the cache" if result.cached else f" · {result.timings.get('total', 0.0):.1f} s"
    return f"done{seeded}{cached} · {where}"


class Worker:
    """Runs one job at a time on a daemon thread; ``done(result, error, status)`` is called on it."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, job: Callable[[], Any], sink: Any, done: Callable[[Any, BaseException | None, str], None]) -> None:
        def work() -> None:
            result: Any = None
            error: BaseException | None = None
            status = ""
            try:
                result = job()
                status = end_view(sink, result)
            except GenmagicError as err:  # a user's mistake or a safety block: one line, the view closed by the run
                error, status = err, str(err)
            except BaseException as err:  # never lost: the status says so, the traceback is in the output area
                error, status = err, f"error: {type(err).__name__}: {err} (the traceback is below; panel.error)"
                view = getattr(sink, "view", None)
                if isinstance(view, OutputView):
                    view.append_text("".join(traceback.format_exception(type(err), err, err.__traceback__)))
            done(result, error, status)

        # A fresh context, not a copy of the clicking request's: ipykernel then sends the thread's widget
        # updates under the request it is handling now (its fallback), so a headless run (nbclient) that
        # waits for the panel in a later cell records them in the saved widget state.
        run = contextvars.Context().run
        self.thread = threading.Thread(target=run, args=(work,), daemon=True, name="genmagic-panel")
        self.thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the run to end; False when ``timeout`` passed first."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True
