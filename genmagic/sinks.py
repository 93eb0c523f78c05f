"""Where a run's events go while it runs: live views in a cell or a terminal.

Text: :class:`CellTextSink` (a display handle updated in place), :class:`StreamSink`
(stdout). Images: :class:`CellImageSink` (a progress bar and previews), :class:`TerminalImageSink`
(a tqdm bar on stderr). ``live_text_sink`` / ``live_image_sink`` pick one for where the code
runs. Every sink has ``emit(event)``, ``cancelled`` and ``close(success, note, final=None)``
(``final`` gives the result's bundle; True when a live view now shows it).

While a model loads (the ``loading`` / ``loaded`` events) every sink says so, with the time
it has taken so far. A cell's live view ends as the result itself (``close(True, note, final)``
shows ``final()``, the result's bundle, in place): the streamed text is already in the style it ends in, and
the saved notebook holds the result once, with no emptied view before it.
"""

from __future__ import annotations

import contextvars
import html
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from . import display
from .request import Event, NullSink

Bundle = Callable[[], dict[str, Any]]  # gives a display bundle (only called when it is shown)

# --------------------------------------------------------------------------- loading


class LoadingClock:
    """Which model is loading, and since when; ``tick()`` runs every ``every`` s on a thread
    while it loads (a cold load is one long call that sends no events)."""

    def __init__(self, tick: Callable[[], None], every: float = 1.0) -> None:
        self.tick = tick
        self.every = every
        self.model = ""
        self.started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def handle(self, event: Event) -> bool:
        """Take a ``loading`` / ``loaded`` event; False for any other event."""
        if event.type == "loading":
            self.model, self.started = str(event.data), time.monotonic()
            self._stop.clear()
            run = contextvars.copy_context().run  # the kernel's output routing lives in context variables
            self._thread = threading.Thread(target=run, args=(self._loop,), daemon=True, name="genmagic-loading")
            self._thread.start()
            return True
        if event.type == "loaded":
            self.stop()
            return True
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.tick()

    @property
    def loading(self) -> bool:
        return self._thread is not None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def text(self) -> str:
        return f"loading {self.model}… {self.elapsed():.0f} s" if self.loading else ""

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            if self._thread is not threading.current_thread():
                self._thread.join()
            self._thread = None


class TerminalLoading:
    """``loading MODEL… 3 s`` on stderr: rewritten in place every second on a terminal, one line
    ending with the load time otherwise."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = LoadingClock(self._tick)

    def handle(self, event: Event) -> bool:
        was_loading = self.clock.loading
        if not self.clock.handle(event):
            return False
        if event.type == "loading":
            self._write(f"loading {self.clock.model}…")
        elif was_loading:
            self._write(f"loading {self.clock.model}… {self.clock.elapsed():.1f} s\n" if self.tty else
                        f" {self.clock.elapsed():.1f} s\n", again=self.tty)
        return True

    def _tick(self) -> None:
        if self.tty:
            self._write(self.clock.text(), again=True)

    def _write(self, text: str, again: bool = False) -> None:
        self.stream.write(("\r\033[K" if again else "") + text)
        self.stream.flush()

    def stop(self) -> None:
        if self.clock.loading:
            self.clock.stop()
            self._write("\n")


# --------------------------------------------------------------------------- text


class StreamSink:
    """Writes token events to a text stream as they come (the CLI, terminal IPython); the
    model loading notice goes to stderr."""

    cancelled = False
    retracts = False  # printed text stays printed: a screening sink holds text until a check passed it

    def __init__(self, stream: Any = None, num: int = 1, errors: Any = None, tokens: bool = True) -> None:
        self.stream = stream or sys.stdout
        self.errors = errors
        self.tokens = tokens  # False: only the loading notice (the caller writes the output at the end)
        self.num = num
        self.current = -1
        self.loading = TerminalLoading(errors)

    def emit(self, event: Event) -> None:
        if self.loading.handle(event) or not self.tokens:
            return
        if event.type == "withheld":  # a terminal cannot take back what it printed: say so
            self.stream.write(f"\n[{event.data}]\n")
            self.stream.flush()
        elif event.type == "token":
            if self.num > 1 and event.index != self.current:
                self.stream.write(("\n" if self.current >= 0 else "") + f"--- #{event.index + 1} ---\n")
                self.current = event.index
            self.stream.write(event.data)
            self.stream.flush()

    def close(self, success: bool, note: str = "", final: Any = None) -> bool:
        self.loading.stop()
        if self.tokens:
            self.stream.write("\n")
            self.stream.flush()
        if note:  # about the run, not part of the output: stdout holds only the text
            errors = self.errors or sys.stderr
            errors.write(f"[{note}]\n")
            errors.flush()
        return False


class LiveView:
    """One display in the cell: shown on the first update, then updated in place."""

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        self.handle = DisplayHandle()
        self.shown = False
        self.lock = threading.Lock()  # the loading clock updates from its own thread

    def show(self, bundle: dict[str, Any]) -> None:
        with self.lock:
            if self.shown:
                self.handle.update(bundle, raw=True)
            else:
                self.handle.display(bundle, raw=True)
                self.shown = True

    def finish(self, success: bool, final: Bundle | None, kept: Bundle) -> bool:
        """End the view: ``final()`` (the result's bundle) in place when the run succeeded, else
        ``kept()`` (the partial output, marked). True when the view now shows ``final()``."""
        if not self.shown:
            return False
        if success and final is not None:
            self.show(final())
            return True
        self.show(kept())
        return False


class CellTextSink:
    """Streams tokens into a cell with a display handle, updated at most every ``interval`` s,
    rendered as the result will be (``fmt``), each sample headed by its seed from the start.

    ``stream=False`` shows only the model loading notice (``--no-stream``). On success the view
    becomes the result (``final``); when the run fails or is interrupted the partial output is
    kept, marked, so it is never lost.
    """

    cancelled = False
    retracts = True  # a "withheld" event replaces what it showed (a screening sink need not hold text back)

    def __init__(self, num: int = 1, interval: float = 0.05, fmt: str = "auto", stream: bool = True) -> None:
        self.texts = [""] * num
        self.withheld: set[int] = set()  # samples a safety check stopped while streaming
        self.interval = interval
        self.fmt = fmt
        self.stream = stream
        self.seeds: list[int | None] = [None] * num
        self.model = ""
        self.last = 0.0
        self.view = LiveView()
        self.loading = LoadingClock(self._update)

    def emit(self, event: Event) -> None:
        if event.type == "start":
            self.model = event.data.model
            self.seeds = display.sample_seeds(event.data.seed, len(self.texts))
            return
        if self.loading.handle(event):
            if event.type == "loading":
                self._update()
            return
        if event.type == "withheld":  # what was shown is replaced, at once
            self.texts[event.index] = f"[{event.data}]"
            self.withheld.add(event.index)
            self._update()
            return
        if event.type != "token" or not self.stream or event.index in self.withheld:
            return
        self.texts[event.index] += event.data
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._update()
            self.last = now

    def bundle(self, note: str = "", color: str = display.WARN) -> dict[str, str]:
        streamed = any(self.texts) or len(self.texts) > 1
        body = display.text_body_html(self.texts, self.fmt, self.seeds, live=True) if streamed else ""
        plain = display.text_plain(self.texts) if streamed else ""
        if not note:
            color = display.MUTED
            note = self.loading.text() or " · ".join(
                [self.model] + [f"seed {self.seeds[0]}"] * (self.seeds[0] is not None) + ["generating…"]
            )
        return {"text/plain": (plain + "\n" if plain else "") + f"[{note}]",
                "text/html": body + display.note_html(note, color)}

    def _update(self, note: str = "", color: str = display.WARN) -> None:
        self.view.show(self.bundle(note, color))

    def close(self, success: bool, note: str = "", final: Bundle | None = None) -> bool:
        """End the live view: ``final`` in place on success (True: the view now shows it), else
        the text so far with ``note`` (marked when the run failed)."""
        self.loading.stop()
        return self.view.finish(success, final, lambda: self.bundle(note, display.WARN if not success else display.MUTED))


def live_text_sink(num: int, stream: bool, fmt: str = "auto") -> Any:
    """In a kernel, a live view (with ``stream=False`` it only says when a model loads); in a
    terminal, stdout (nothing with ``stream=False``)."""
    if display.in_kernel():
        return CellTextSink(num, fmt=fmt, stream=stream)
    return StreamSink(num=num) if stream else NullSink()


# --------------------------------------------------------------------------- images


def _progress_text(index: int, num: int, done: int, total: int) -> str:
    head = f"image {index + 1}/{num} · " if num > 1 else ""
    return f"{head}step {done}/{total}"


class CellImageSink:
    """A progress bar and the latest preview(s), captioned with their seeds, in one display
    updated in place.

    ``stream=False`` shows only the model loading notice. On success the view becomes the
    result (``final``); when the run fails or is interrupted it is kept, marked.
    """

    cancelled = False

    def __init__(self, num: int = 1, preview_every: int = 5, interval: float = 0.25, stream: bool = True) -> None:
        self.num = num
        self.preview_every = preview_every if stream else 0
        self.interval = interval
        self.stream = stream
        self.previews: list[Any] = [None] * num
        self.seeds: list[int | None] = [None] * num
        self.index, self.done, self.total = 0, 0, 0
        # the previews' grid HTML (PNG + base64 of each) is built again only when a preview,
        # a seed or the note changes, not on every progress update
        self._version = 0
        self._grid: tuple[tuple[Any, ...], str] = ((), "")
        self.view = LiveView()
        self.last = 0.0
        self.loading = LoadingClock(self._update)

    def emit(self, event: Event) -> None:
        if event.type == "start":
            self.seeds = display.sample_seeds(event.data.seed, self.num)
            self._version += 1
            return
        if self.loading.handle(event):
            if event.type == "loading":
                self._update()
            return
        if not self.stream:
            return
        if event.type == "progress":
            self.index = event.index
            self.done, self.total = event.data
            final = self.done == self.total and event.index == self.num - 1
            now = time.monotonic()
            if now - self.last >= self.interval or final:
                self._update()
        elif event.type == "preview":
            if event.index >= len(self.previews):
                self.previews += [None] * (event.index + 1 - len(self.previews))
                self.num = len(self.previews)
            self.previews[event.index] = event.data
            self._version += 1
            self._update()

    def _caption(self, index: int) -> str:
        seed = self.seeds[index] if index < len(self.seeds) else None
        return f"seed {seed}" if seed is not None else f"#{index + 1}"

    def bundle(self, note: str = "") -> dict[str, str]:
        if self.loading.loading:
            text = self.loading.text()
            return {"text/plain": text, "text/html": display.note_html(text)}
        text = _progress_text(self.index, self.num, self.done, self.total)
        overall = self.index * max(self.total, 1) + self.done
        bar = (
            f'<progress value="{overall}" max="{self.num * max(self.total, 1)}" style="width: 240px"></progress> '
            f'<span style="font-size: 0.85em; color: {display.MUTED}">{html.escape(text)}</span>'
        )
        key = (self._version, note)
        if self._grid[0] != key:
            shown = [(i, p) for i, p in enumerate(self.previews) if p is not None]
            captions = [self._caption(i) for i, _ in shown]
            html_ = display.grid_html([p for _, p in shown], captions, note, display.WARN, enlarge=False)
            self._grid = (key, html_ if shown or note else "")
        grid = self._grid[1]
        plain = text + (f" [{note}]" if note else "")
        return {"text/plain": plain, "text/html": f"<div>{bar}</div>{grid}"}

    def _update(self, note: str = "") -> None:
        self.last = time.monotonic()
        self.view.show(self.bundle(note))

    def close(self, success: bool, note: str = "", final: Bundle | None = None) -> bool:
        """End the live view: ``final`` in place on success (True: the view now shows it), else
        the last preview marked with ``note``."""
        self.loading.stop()
        return self.view.finish(success, final, lambda: self.bundle(note))


class TerminalImageSink:
    """A tqdm progress bar on stderr (the CLI, terminal IPython); no previews."""

    cancelled = False
    preview_every = 0

    def __init__(self, num: int = 1, stream: Any = None) -> None:
        self.num = num
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.index = -1
        self.loading = TerminalLoading(self.stream)

    def emit(self, event: Event) -> None:
        if self.loading.handle(event) or event.type != "progress":
            return
        from tqdm.auto import tqdm

        done, total = event.data
        if event.index != self.index:
            if self.bar is not None:
                self.bar.close()
            desc = f"image {event.index + 1}/{self.num}" if self.num > 1 else "denoising"
            self.bar = tqdm(total=total, desc=desc, unit="step", file=self.stream, leave=False)
            self.index = event.index
        self.bar.update(done - self.bar.n)

    def close(self, success: bool, note: str = "", final: Any = None) -> bool:
        self.loading.stop()
        started = self.bar is not None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if note and started:
            self.stream.write(f"[{note}]\n")
        return False


def live_image_sink(num: int, preview_every: int, stream: bool) -> Any:
    """In a kernel, a live view (with ``stream=False`` it only says when a model loads); in a
    terminal, a progress bar on stderr (nothing with ``stream=False``)."""
    if display.in_kernel():
        return CellImageSink(num, preview_every, stream=stream)
    return TerminalImageSink(num) if stream else NullSink()
