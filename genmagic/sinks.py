"""Where a run's events go while it runs: live views in a cell or a terminal.

Text: :class:`CellTextSink` (a display handle updated in place), :class:`StreamSink`
(stdout). Images: :class:`CellImageSink` (a progress bar and previews), :class:`TerminalImageSink`
(a tqdm bar on stderr). ``live_text_sink`` / ``live_image_sink`` pick one for where the code
runs. Every sink has ``emit(event)``, ``cancelled`` and ``close(success, note)``.
"""

from __future__ import annotations

import html
import sys
import time
from typing import Any

from . import display
from .request import Event, NullSink

# --------------------------------------------------------------------------- text


class StreamSink:
    """Writes token events to a text stream as they come (the CLI, terminal IPython)."""

    cancelled = False

    def __init__(self, stream: Any = None, num: int = 1) -> None:
        self.stream = stream or sys.stdout
        self.num = num
        self.current = -1

    def emit(self, event: Event) -> None:
        if event.type == "token":
            if self.num > 1 and event.index != self.current:
                self.stream.write(("\n" if self.current >= 0 else "") + f"--- #{event.index + 1} ---\n")
                self.current = event.index
            self.stream.write(event.data)
            self.stream.flush()

    def close(self, success: bool, note: str = "") -> None:
        if note:
            self.stream.write(f"\n[{note}]")
        self.stream.write("\n")
        self.stream.flush()


class LiveView:
    """One display in the cell: shown on the first update, then updated in place."""

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        self.handle = DisplayHandle()
        self.shown = False

    def show(self, bundle: dict[str, Any]) -> None:
        if self.shown:
            self.handle.update(bundle, raw=True)
        else:
            self.handle.display(bundle, raw=True)
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.handle.update({"text/plain": ""}, raw=True)


class CellTextSink:
    """Streams tokens into a cell with a display handle, updated at most every ``interval`` s.

    The live view is cleared when the run succeeds (the result object is then shown as the
    cell's value) and kept when it fails or is interrupted, so partial output is never lost.
    """

    cancelled = False

    def __init__(self, num: int = 1, interval: float = 0.05) -> None:
        self.texts = [""] * num
        self.interval = interval
        self.last = 0.0
        self.view = LiveView()

    def emit(self, event: Event) -> None:
        if event.type != "token":
            return
        self.texts[event.index] += event.data
        now = time.monotonic()
        if now - self.last >= self.interval:
            self._update()
            self.last = now

    def _bundle(self, note: str = "") -> dict[str, str]:
        if len(self.texts) == 1:
            plain = self.texts[0]
            body = f'<pre style="white-space: pre-wrap">{html.escape(plain)}</pre>'
        else:
            plain = "\n\n".join(f"--- #{i + 1} ---\n{t}" for i, t in enumerate(self.texts))
            cells = "".join(
                f'<td style="vertical-align: top; text-align: left"><b>#{i + 1}</b>'
                f'<pre style="white-space: pre-wrap">{html.escape(t)}</pre></td>'
                for i, t in enumerate(self.texts)
            )
            body = f'<table style="width: 100%; table-layout: fixed"><tr>{cells}</tr></table>'
        if note:
            plain += f"\n[{note}]"
            body += f'<div style="color: #c60">{html.escape(note)}</div>'
        return {"text/plain": plain, "text/html": body}

    def _update(self, note: str = "") -> None:
        self.view.show(self._bundle(note))

    def close(self, success: bool, note: str = "") -> None:
        if success:
            self.view.clear()
        elif self.view.shown or any(self.texts):
            self._update(note)


def live_text_sink(num: int, stream: bool) -> Any:
    if not stream:
        return NullSink()
    return CellTextSink(num) if display.in_kernel() else StreamSink(num=num)


# --------------------------------------------------------------------------- images


def _progress_text(index: int, num: int, done: int, total: int) -> str:
    head = f"image {index + 1}/{num} · " if num > 1 else ""
    return f"{head}step {done}/{total}"


class CellImageSink:
    """A progress bar and the latest preview(s) in one display, updated in place.

    The view is cleared when the run succeeds (the result shows itself as the cell's value)
    and kept, marked, when it fails or is interrupted.
    """

    cancelled = False

    def __init__(self, num: int = 1, preview_every: int = 5, interval: float = 0.25) -> None:
        self.num = num
        self.preview_every = preview_every
        self.interval = interval
        self.previews: list[Any] = [None] * num
        self.index, self.done, self.total = 0, 0, 0
        self.view = LiveView()
        self.last = 0.0

    def emit(self, event: Event) -> None:
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
            self._update()

    def bundle(self, note: str = "") -> dict[str, str]:
        text = _progress_text(self.index, self.num, self.done, self.total)
        overall = self.index * max(self.total, 1) + self.done
        bar = (
            f'<progress value="{overall}" max="{self.num * max(self.total, 1)}" style="width: 240px"></progress> '
            f"<span style=\"font-size: 0.85em\">{html.escape(text)}</span>"
        )
        shown = [(i, p) for i, p in enumerate(self.previews) if p is not None]
        captions = [f"#{i + 1}" for i, _ in shown]
        grid = display.grid_html([p for _, p in shown], captions, note, "#c60", enlarge=False) if shown or note else ""
        plain = text + (f" [{note}]" if note else "")
        return {"text/plain": plain, "text/html": f"<div>{bar}</div>{grid}"}

    def _update(self, note: str = "") -> None:
        self.last = time.monotonic()
        self.view.show(self.bundle(note))

    def close(self, success: bool, note: str = "") -> None:
        if success:
            self.view.clear()
        elif self.view.shown:
            self._update(note)


class TerminalImageSink:
    """A tqdm progress bar on stderr (the CLI, terminal IPython); no previews."""

    cancelled = False
    preview_every = 0

    def __init__(self, num: int = 1, stream: Any = None) -> None:
        self.num = num
        self.stream = stream or sys.stderr
        self.bar: Any = None
        self.index = -1

    def emit(self, event: Event) -> None:
        if event.type != "progress":
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

    def close(self, success: bool, note: str = "") -> None:
        started = self.bar is not None
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if note and started:
            self.stream.write(f"[{note}]\n")


def live_image_sink(num: int, preview_every: int, stream: bool) -> Any:
    if not stream:
        return NullSink()
    return CellImageSink(num, preview_every) if display.in_kernel() else TerminalImageSink(num)
