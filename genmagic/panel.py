"""Control panels: ``%%generate --widgets``, ``%%imagine --widgets``, ``%genmagic panel text|image``.

A :class:`Panel` holds a model dropdown, one control per option (generated from
:func:`genmagic.options.describe`, see :mod:`genmagic.panel_controls`), a seed box with
random/lock, the prompt, Generate / Stop / Copy as cell, a status line and the output area.
Generate runs through the same run layer as the magic (``text_run.run`` / ``image_run.run``:
history, cache and safety), in a worker thread (:mod:`genmagic.panel_run`).

**What the panel counts as given.** The magic applies the model's defaults to every option not
on its line. The panel does the same with the options the user *set*: those on the magic line,
and those changed in the panel since (a control changed from code counts too). The other controls
show the model's defaults (``Engine.model_defaults``: its ``generation_config.json``, then the
alias's ``params``), then the options' own defaults, and follow the model when another is picked.
The seed is given in "lock" mode (the box's seed every run); in "random" mode each run draws one
(not cached, as without ``--seed``) and the box shows it afterwards. "Copy as cell" writes the
model, the given options and the box's seed (so it re-runs what the panel shows), the controls
that differ from their defaults, never ``--out`` nor any key: run in a cell, it builds the same
request (the same key) as the panel's run.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from . import options as opts
from .errors import GenmagicError, OptionError, PromptError

_OPTIONS: dict[str, type[opts.Options]] = {"text": opts.TextOptions, "image": opts.ImageOptions}
_CONTROLS: dict[str, type[opts.Controls]] = {"text": opts.TextControls, "image": opts.ImageControls}
# Not in a panel: the seed has its own box, the prompt and the negative prompt their own areas, and a
# panel run is not a turn of the notebook's --chat conversation.
_OWN_PLACE = ("seed", "negative", "chat")
_MODES = ("random", "lock")


class Panel:
    """A control panel for runs of ``kind`` ("text" or "image"); display it (it is the widget).

    ``options`` are the magic line's options (or a mapping of option values: then those are the
    given ones), ``given`` the option names the user set there; ``controls`` the line's controls
    (``--init``, ``--save``, ``--no-cache``...: ``--init``-like ones are kept for every run),
    ``namespace`` where ``--init``/``--mask`` variables and ``--out`` live.
    """

    def __init__(
        self,
        kind: str,
        prompt: str = "",
        *,
        model: str | None = None,
        options: opts.Options | Mapping[str, Any] | None = None,
        given: frozenset[str] | set[str] | None = None,
        controls: opts.Controls | None = None,
        engine: Any = None,
        namespace: dict[str, Any] | None = None,
        where: Mapping[str, Any] | None = None,
    ) -> None:
        import ipywidgets as w

        from . import panel_controls
        from .engine import default_engine
        from .panel_run import Worker

        if kind not in _OPTIONS:
            raise OptionError(f"no panel for {kind!r}; use %genmagic panel text or %genmagic panel image")
        self.kind = kind
        self.engine = engine or default_engine()
        self.options_class, self.controls_class = _OPTIONS[kind], _CONTROLS[kind]
        self.base_controls = controls or self.controls_class()
        if options is None or isinstance(options, Mapping):
            given = set(options or {}) if given is None else given
            options = self.options_class(**dict(options or {}))
        self.base_options = options  # the line's: options without a control (--device) keep its values
        given = frozenset(given or ())
        self.namespace = namespace
        self.where = dict(where or {})
        self.touched: set[str] = set(given)
        self.result: Any = None
        self.error: BaseException | None = None
        self.history_id: int | None = None
        self.cell = ""
        self._setting = False
        self._sink: Any = None
        self._worker = Worker()
        values = {name: getattr(options, name) for name in given}
        registry = self.engine.registry

        alias = registry.resolve(model, kind).alias  # an unknown model is the magic's one-line error
        names = sorted({s.alias for s in registry.specs() if s.kind == kind} | {alias})
        self.model = w.Dropdown(options=names, value=alias, description="model", style={"description_width": "120px"},
                                tooltip="the registry's models of this kind (%genmagic models)")
        self.prompt = w.Textarea(value=prompt, placeholder="the prompt", description="prompt", rows=3,
                                 layout=w.Layout(width="95%"), style={"description_width": "120px"})
        self.controls: dict[str, Any] = {}
        for desc in opts.describe(self.options_class) + opts.describe(self.controls_class):
            if not desc["widget"] or desc["name"] in ("seed", "chat") or desc["name"] in self.controls:
                continue
            self.controls[desc["name"]] = panel_controls.build(desc, kind, registry)
        self._apply_defaults(initial=True)
        line = {f.name: getattr(self.base_controls, f.name) for f in self.controls_class.option_fields()}
        for name, value in {**line, **values}.items():
            if name in self.controls and value is not None:
                self._set(name, value)
        for name, control in self.controls.items():
            control.widget.observe(lambda _change, name=name: self._touch(name), "value")

        seed = values.get("seed")
        self.seed = w.Text(value="" if seed is None else str(seed), placeholder="random", description="seed",
                           style={"description_width": "120px"}, layout=w.Layout(width="260px"),
                           tooltip="the same seed gives the same output; empty: a new one each run")
        self.seed_mode = w.ToggleButtons(options=_MODES, value="lock" if "seed" in given else "random",
                                         tooltips=["draw a new seed every run (shown here after it)",
                                                   "keep this seed for every run"],
                                         style={"button_width": "70px"})
        self.seed.observe(self._seed_typed, "value")
        self.seed_mode.observe(self._mode_changed, "value")
        self.model.observe(lambda _change: self._apply_defaults(), "value")

        self.generate_button = w.Button(description="Generate", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True,
                                    tooltip="stop the run: text ends within a token, an image within a step")
        self.copy_button = w.Button(description="Copy as cell", icon="copy",
                                    tooltip="the %%magic cell for these values, here and as the next cell")
        self.generate_button.on_click(lambda _b: self.generate())
        self.stop_button.on_click(lambda _b: self.stop())
        self.copy_button.on_click(lambda _b: self.copy_cell())
        self.status = w.HTML(value="")
        self.cell_box = w.Textarea(value="", rows=4, layout=w.Layout(width="95%", display="none"),
                                   tooltip="copy this cell")
        self.output = w.Output()
        rows = [self.model, self.prompt]
        if kind == "image":
            rows.append(self.controls["negative"].widget)
        grid = [c.widget for name, c in self.controls.items() if name not in _OWN_PLACE]
        self.widget = w.VBox([
            *rows,
            w.GridBox(grid, layout=w.Layout(grid_template_columns="repeat(auto-fill, minmax(440px, 1fr))")),
            w.HBox([self.seed, self.seed_mode]),
            w.HBox([self.generate_button, self.stop_button, self.copy_button]),
            self.status, self.cell_box, self.output,
        ])

    # -- display
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        return f"<genmagic Panel {self.kind}: {self.model.value}>"

    # -- values
    def _set(self, name: str, value: Any) -> None:
        self._setting = True
        try:
            self.controls[name].set(value)
        finally:
            self._setting = False

    def _touch(self, name: str) -> None:
        if not self._setting:
            self.touched.add(name)

    def defaults(self) -> dict[str, Any]:
        """What an option not set gets with the selected model: the model's own defaults, then the
        options' (exactly as the magic applies them)."""
        spec = self.engine.registry.resolve(self.model.value, self.kind)
        own = {name: value for name, (value, _) in self.engine.model_defaults(spec, self.options_class).items()}
        fields = {d["name"]: d["default"] for d in opts.describe(self.options_class)}
        return {**fields, **own}

    def _apply_defaults(self, initial: bool = False) -> None:
        try:
            defaults = self.defaults()
        except GenmagicError as err:
            if initial:
                raise
            self._say(str(err), error=True)
            return
        for name, value in defaults.items():
            if name in self.controls and name not in self.touched:
                self._set(name, value)

    def _seed_typed(self, change: Any) -> None:
        if not self._setting and str(change["new"]).strip():
            self.seed_mode.value = "lock"  # a seed typed in is a seed to keep

    def _mode_changed(self, change: Any) -> None:
        if change["new"] == "lock" and not self.seed.value.strip():
            self._setting = True
            self.seed.value = str(random.SystemRandom().randrange(2**31))
            self._setting = False

    def _seed(self) -> int | None:
        from .panel_controls import number_parser

        seed: int | None = number_parser("--seed", int, "e.g. 7, or empty for a random one")(self.seed.value)
        return seed

    def request_args(self) -> tuple[str, opts.Options, opts.Controls, frozenset[str]]:
        """The prompt, options, controls and ``given`` of the next run (a one-line error on a bad value)."""
        option_names = {f.name for f in self.options_class.option_fields()}
        values: dict[str, Any] = {}
        control_values: dict[str, Any] = {}
        for name, control in self.controls.items():
            (values if name in option_names else control_values)[name] = control.get()
        locked = self.seed_mode.value == "lock"
        seed = self._seed()
        if locked and seed is None:
            raise OptionError("--seed: the seed box is empty in lock mode; type a seed or pick random")
        values["seed"] = seed if locked else None
        options = self.base_options.replace(**values)
        controls = self.base_controls.replace(**control_values, model=self.model.value, widgets=False)
        given = frozenset(self.touched & option_names) | ({"seed"} if locked else set())
        prompt = self.prompt.value
        if not prompt.strip() and not getattr(controls, "from_image", None):
            raise PromptError("the prompt is empty: write it in the panel's prompt box")
        return prompt, options, controls, given

    # -- running
    @property
    def running(self) -> bool:
        return self._worker.running

    def generate(self) -> None:
        """Run with the current values in a worker thread (returns at once; :meth:`wait` waits)."""
        if self.running:
            self._say("a run is under way: wait for it, or Stop it")
            return
        try:
            prompt, options, controls, given = self.request_args()
        except GenmagicError as err:
            self._say(str(err), error=True)
            return
        from .panel_run import panel_sink

        stream = controls.stream and _session_streams()
        self._sink = sink = panel_sink(self.kind, self.output, getattr(options, "num", 1), stream,
                                       fmt=getattr(controls, "format", "auto"), preview=getattr(controls, "preview", 5))
        self.error = None
        self.result = self.history_id = None  # never the last run's while this one runs (or if it fails)
        self.generate_button.disabled, self.stop_button.disabled = True, False
        self._say("running…")

        def job() -> Any:
            return self._run(prompt, options, controls, given, sink)

        self._worker.start(job, sink, self._done)

    def _run(self, prompt: str, options: Any, controls: Any, given: frozenset[str], sink: Any) -> Any:
        from . import image_run, text_run

        lock = self.engine.lock  # the whole run (building the request too) takes its turn
        if not lock.acquire(blocking=False):
            self._say("waiting for another run to end…")
            lock.acquire()
        try:
            if sink.cancelled:  # Stop pressed while it waited: nothing runs, nothing is recorded
                sink.close(False, "stopped before it started")
                raise GenmagicError("stopped before it started: nothing ran")
            self._say("running…")
            if self.kind == "text":
                return text_run.run(self.engine, prompt, options, controls, sink=sink, where=self.where, given=given)
            return image_run.run(self.engine, prompt, options, controls, namespace=self.namespace, sink=sink,
                                 where=self.where, given=given)
        finally:
            lock.release()

    def _done(self, result: Any, error: BaseException | None, status: str) -> None:
        if result is not None:
            self.result, self.history_id = result, result.history_id
            out = self.base_controls.out
            if out and self.namespace is not None:
                self.namespace[out] = result
            if self.seed_mode.value == "random" and result.request.seed is not None:
                self._setting = True
                self.seed.value = str(result.request.seed)  # shown, so the run can be reproduced
                self._setting = False
        self.error = error
        self._say(status, error=error is not None or (result is not None and result.status == "error"))
        self.generate_button.disabled, self.stop_button.disabled = False, True

    def stop(self) -> None:
        """Stop the run: text ends within a token, an image within a denoising step; the partial
        output is kept (history status ``interrupted``), as after a kernel interrupt."""
        if self._sink is not None and self.running:
            self._sink.cancelled = True
            self._say("stopping…")

    def wait(self, timeout: float | None = None) -> Any:
        """Wait for the run to end; the last result (None if it failed: see :attr:`error`)."""
        self._worker.wait(timeout)
        return self.result

    # -- copy as cell
    def as_cell(self) -> str:
        """The ``%%generate`` / ``%%imagine`` cell that runs what the panel shows: the model, the
        options set, the box's seed and the controls that differ from their defaults."""
        from .magic_line import magic_cell

        prompt, options, controls, given = self.request_args()
        values = {name: getattr(options, name) for name in sorted(given)}
        seed = self._seed()
        if seed is not None:
            values["seed"] = seed
        keep = {f.name: getattr(controls, f.name) for f in self.controls_class.option_fields()
                if f.name not in ("widgets", "from_image")}
        return magic_cell(self.kind, prompt, model=controls.model, options=values, controls=keep)

    def copy_cell(self) -> str:
        """Show :meth:`as_cell` in the panel, keep it as :attr:`cell`, and offer it as the next cell
        (from code in a cell; a click shows it in the panel's box)."""
        try:
            self.cell = self.as_cell()
        except GenmagicError as err:
            self._say(str(err), error=True)
            return ""
        self.cell_box.value = self.cell
        self.cell_box.layout.display = None
        _offer_next_cell(self.cell)
        self._say("the cell is below: copy it (or run the new cell)")
        return self.cell

    def _say(self, text: str, error: bool = False) -> None:
        import html

        from .display import MUTED, WARN

        colour = WARN if error else MUTED
        self.status.value = f'<span style="color: {colour}">{html.escape(text.splitlines()[0] if text else "")}</span>'

    @property
    def status_text(self) -> str:
        """The status line as plain text."""
        import html
        import re

        return html.unescape(re.sub(r"<[^>]+>", "", self.status.value))


def _offer_next_cell(cell: str) -> None:
    """The cell as the next input, where that works: terminal IPython, or code run in a notebook cell
    (the kernel sends it with that cell's reply). Not from a button click: a comm message has no reply,
    and the kernel would send it with the reply of whatever cell runs next, far from the panel."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        try:
            if kernel.get_parent().get("header", {}).get("msg_type") != "execute_request":
                return
        except Exception:
            return
    shell.set_next_input(cell, replace=False)


def _session_streams() -> bool:
    """``GenMagics.stream`` of the loaded extension (True when it is not loaded)."""
    import genmagic

    magics = getattr(genmagic, "_magics", None)
    return bool(getattr(magics, "stream", True))


def panel_from_magic(magics: Any, kind: str, prompt: str, options: opts.Options, controls: opts.Controls,
                     given: frozenset[str], model: str | None) -> Panel:
    """The panel ``%%generate --widgets`` / ``%%imagine --widgets`` shows: the line's values are its
    initial values, and it runs the cell once (in its worker thread)."""
    if getattr(options, "chat", False):
        raise OptionError("--widgets does not take --chat: a panel run is not part of the conversation; "
                          "drop one of them")
    if getattr(controls, "from_image", None):
        raise OptionError("--widgets does not take --from: run %%imagine --from FILE, then Copy a panel's cell")
    if controls.compare:
        raise OptionError("--widgets does not take --compare: a panel runs one cell; drop one of them")
    if controls.over:
        raise OptionError(f"--widgets does not take --over: a panel runs one prompt; drop --widgets to run over "
                          f"{controls.over}, or drop --over")
    panel = Panel(kind, prompt, model=model, options=options, given=given, controls=controls, engine=magics.engine,
                  namespace=magics.ip.user_ns, where=magics._where())
    panel.generate()
    return panel


def open_panel(magics: Any, kind: str) -> Panel:
    """``%genmagic panel text|image``: an empty panel on the session's default model."""
    model = getattr(magics, f"default_{kind}_model", "") or None
    return Panel(kind, model=model, engine=magics.engine, namespace=magics.ip.user_ns, where=magics._where())
