"""The live view of a training run: progress with ETA, the loss curve (train and eval), a Stop
button; and a kernel interrupt (SIGINT) that stops at the next step the same way.

ipykernel handles comm messages (a button click) on the main thread, which the training loop
keeps busy, so the notebook view processes pending UI events between steps with
``jupyter-ui-poll`` (execute requests stay queued until the cell ends). The loss curve is drawn
by matplotlib (Agg, no pyplot state) into a PNG in one display updated in place.
"""

from __future__ import annotations

import base64
import contextlib
import html
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

PLOT_INTERVAL = 1.0  # seconds between redraws of the loss curve
TEXT_INTERVAL = 0.2  # seconds between updates of the progress line


def eta_text(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TrainingView:
    """Tracks the run (steps, losses, ETA) and the stop request; shows nothing."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self.reason = ""
        self.total = 0
        self.step_no = 0
        self.losses: list[tuple[int, float]] = []
        self.eval_losses: list[tuple[int, float]] = []
        self.started = 0.0
        self.messages: list[str] = []

    def stop(self, reason: str = "stopped") -> None:
        """End training at the next step (the Stop button, an interrupt)."""
        if not self._stop.is_set():
            self.reason = reason
            self._stop.set()

    @property
    def stopped(self) -> bool:
        self.poll()
        return self._stop.is_set()

    def poll(self) -> None:
        """Process pending UI events (the notebook view)."""

    def message(self, text: str) -> None:
        self.messages.append(text)

    def begin(self, total: int) -> None:
        self.total, self.started = total, time.perf_counter()

    def step(self, step: int, loss: float, eval_loss: float | None) -> None:
        self.step_no = step
        self.losses.append((step, loss))
        if eval_loss is not None:
            self.eval_losses.append((step, eval_loss))

    def status(self) -> str:
        if not self.total:
            return "preparing…"
        elapsed = time.perf_counter() - self.started
        line = f"step {self.step_no}/{self.total}"
        if self.losses:
            line += f" · loss {self.losses[-1][1]:.3f}"
        if self.eval_losses:
            line += f" · eval {self.eval_losses[-1][1]:.3f}"
        if self.step_no:
            line += f" · {eta_text(elapsed)} elapsed · ETA {eta_text(elapsed / self.step_no * (self.total - self.step_no))}"
        return line

    def close(self, note: str = "") -> None:
        """The run is over (``note`` says how)."""


class TerminalView(TrainingView):
    """Messages and a progress line on stderr (the CLI, a plain Python session)."""

    def __init__(self) -> None:
        super().__init__()
        self.last = 0.0

    def message(self, text: str) -> None:
        super().message(text)
        print(f"genmagic: {text}", file=sys.stderr)

    def step(self, step: int, loss: float, eval_loss: float | None) -> None:
        super().step(step, loss, eval_loss)
        now = time.perf_counter()
        if now - self.last >= 1.0 or step == self.total:
            self.last = now
            end = "\n" if step == self.total else ""
            print(f"\r{self.status()}", end=end, file=sys.stderr, flush=True)

    def close(self, note: str = "") -> None:
        if self.step_no and self.step_no != self.total:
            print(file=sys.stderr)
        if note:
            print(f"genmagic: {note}", file=sys.stderr)


def loss_png(losses: list[tuple[int, float]], eval_losses: list[tuple[int, float]], total: int) -> bytes:
    """The loss curve (train, and eval when there is one) as a small PNG."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.8, 2.4), dpi=80)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if losses:
        ax.plot(*zip(*losses), label="train", linewidth=1.2)
    if eval_losses:
        ax.plot(*zip(*eval_losses), "o-", label="eval", markersize=3, linewidth=1.2)
    ax.set_xlim(0, max(total, 1))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    if losses or eval_losses:
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class NotebookView(TrainingView):
    """One display updated in place (messages, a progress bar with ETA, the loss curve) and a
    Stop button (ipywidgets) whose click is processed between steps."""

    def __init__(self) -> None:
        from IPython.display import DisplayHandle

        super().__init__()
        self.handle = DisplayHandle()
        self.shown = False
        self.last_text = 0.0
        self.last_plot = 0.0
        self.png = b""
        self.note = ""
        self.button: Any = None
        self._events = contextlib.ExitStack()
        self._poll: Any = None

    def _show(self) -> None:
        bundle = {"text/html": self.html(), "text/plain": self.note or self.status()}
        if self.shown:
            self.handle.update(bundle, raw=True)
        else:
            self.handle.display(bundle, raw=True)
            self.shown = True

    def html(self) -> str:
        from ..display import MUTED

        parts = [f'<div style="color: {MUTED}">{html.escape(m)}</div>' for m in self.messages]
        if self.total:
            parts.append(f'<progress value="{self.step_no}" max="{self.total}" style="width: 24em"></progress> '
                         f"<span>{html.escape(self.status())}</span>")
        if self.png:
            parts.append(f'<img alt="loss curve" src="data:image/png;base64,{base64.b64encode(self.png).decode()}">')
        if self.note:
            parts.append(f"<div><b>{html.escape(self.note)}</b></div>")
        return '<div class="genmagic-finetune">' + "\n".join(parts) + "</div>"

    def message(self, text: str) -> None:
        super().message(text)
        self._show()

    def begin(self, total: int) -> None:
        super().begin(total)
        try:
            import ipywidgets as widgets
            from IPython.display import display

            self.button = widgets.Button(description="Stop", button_style="warning", icon="stop",
                                         tooltip="end training at the next step; the adapter so far is kept")
            self.button.on_click(lambda _: self.stop("stopped"))
            display(self.button)
        except ImportError:  # no ipywidgets: the kernel's interrupt still stops at the next step
            self.button = None
        if self.button is not None and not self._events.enter_context(click_thread(self.button)):
            try:  # ipykernel 6: process the pending UI events between steps
                from jupyter_ui_poll import ui_events

                self._poll = self._events.enter_context(ui_events())
            except Exception:  # no jupyter-ui-poll, or not an ipykernel: clicks arrive after the cell
                self._poll = None
        self._show()

    def poll(self) -> None:
        if self._poll is not None:
            self._poll(20)

    def step(self, step: int, loss: float, eval_loss: float | None) -> None:
        super().step(step, loss, eval_loss)
        now = time.perf_counter()
        if now - self.last_plot >= PLOT_INTERVAL or step == self.total or eval_loss is not None:
            self.png = loss_png(self.losses, self.eval_losses, self.total)
            self.last_plot = now
            self._show()
        elif now - self.last_text >= TEXT_INTERVAL:
            self.last_text = now
            self._show()

    def close(self, note: str = "") -> None:
        self._events.close()
        self._poll = None
        if self.button is not None:
            self.button.disabled = True
            self.button.close()
        self.note = note
        if self.losses:
            self.png = loss_png(self.losses, self.eval_losses, self.total)
        if self.shown or note:
            self._show()


@contextlib.contextmanager
def click_thread(button: Any) -> Iterator[bool]:
    """ipykernel 7 runs each subshell (JEP 91) on its own thread and routes a comm's messages to
    the subshell its ``_reply_subshell_id`` names: a subshell made for the run handles the Stop
    button's click while the main thread trains. Yields False where that is not available."""
    from IPython import get_ipython

    kernel = getattr(get_ipython(), "kernel", None)
    thread: Any = getattr(kernel, "shell_channel_thread", None)
    comm: Any = getattr(button, "comm", None)
    manager = getattr(thread, "manager", None)
    if manager is None or not hasattr(comm, "_reply_subshell_for") or not hasattr(manager, "_create_subshell"):
        yield False
        return

    def on_channel_thread(call: Any) -> Any:
        done, box = threading.Event(), {}

        def target() -> None:
            try:
                box["value"] = call()
            finally:
                done.set()

        thread.io_loop.add_callback(target)
        done.wait(10)
        return box.get("value")

    subshell = on_channel_thread(manager._create_subshell)
    if subshell is None:
        yield False
        return
    comm._reply_subshell_id = subshell
    try:
        yield True
    finally:
        comm._reply_subshell_id = None
        on_channel_thread(lambda: manager._delete_subshell(subshell))


def live_view(live: bool) -> TrainingView:
    from ..display import in_kernel

    if live and in_kernel():
        return NotebookView()
    return TerminalView() if live else TrainingView()


@contextlib.contextmanager
def interrupt_stops(view: TrainingView) -> Iterator[None]:
    """While training: a kernel interrupt (SIGINT) asks ``view`` to stop at the next step
    instead of raising in the middle of an optimizer update; a second one raises as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if view._stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        view.stop("interrupted")

    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
