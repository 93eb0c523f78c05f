"""The IPython magics: parse → Request → run → display. Nothing else lives here.

Every :class:`GenmagicError` becomes a plain ``UsageError`` (one line, no traceback).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from IPython.core import magic_arguments as ma
from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from traitlets import Bool, Int, List, TraitError, Unicode, observe, validate

from . import options as opts
from .errors import GenmagicError, OptionError, OutputFormatError, PromptError
from .prompt import assemble, split_line, unfill

OptionsT = TypeVar("OptionsT", bound=opts.Options)
ControlsT = TypeVar("ControlsT", bound=opts.Controls)


def usage_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the package's errors into a plain UsageError at the magic boundary."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GenmagicError as err:
            raise UsageError(str(err)) from None

    return wrapper


def _end_live_view(shell: Any, sink: Any, result: Any, note: str) -> None:
    """Close the run's live view. On success a view that was shown becomes the result itself,
    and the value the magic returns is then not shown a second time in this cell: the saved
    notebook holds the result once (no emptied view before it), and nothing jumps at the end.
    ``Out``, ``_`` and ``--out`` still get the result; displaying it in a later cell shows it."""
    # A result with withheld outputs shows itself whatever its status: the view's streamed text may hold them.
    shows_result = result.ok or result.status in ("blocked", "review") or bool(result.withheld)
    if not sink.close(shows_result, note, result._repr_mimebundle_ if shows_result else None):
        return

    def shown_already() -> None:  # IPython's display hook calls this instead of rendering the result
        forget()

    def forget(*_: Any) -> None:
        vars(result).pop("_ipython_display_", None)
        if forget in shell.events.callbacks["post_execute"]:
            shell.events.unregister("post_execute", forget)

    vars(result)["_ipython_display_"] = shown_already  # on this object only, until the cell ends
    shell.events.register("post_execute", forget)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:
        raise UsageError(f"%genmagic: {message} (see %genmagic -h)")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        if message:
            print(message, file=sys.stderr)
        raise _HelpShown()


class _HelpShown(Exception):
    pass


def _genmagic_parser() -> _Parser:
    from .register_args import add_remote_arguments, add_setting_arguments

    parser = _Parser(prog="%genmagic", description="Manage genmagic models, history and conversations.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    models = sub.add_parser("models", help="list the models: alias, kind, backend, source, loaded, memory")
    add_remote_arguments(models)
    use = sub.add_parser("use", help="set the default model of a kind")
    use.add_argument("kind", choices=("text", "image"))
    use.add_argument("name")
    use.add_argument("--save", action="store_true", help="also save it in the user config file")
    reg = sub.add_parser("register", help="add a model alias")
    reg.add_argument("alias")
    reg.add_argument("source", help="a local folder, a hub id, or a URL")
    reg.add_argument("--adapter", action="append", default=[], help="a LoRA adapter folder (repeatable)")
    reg.add_argument("--kind", choices=("text", "image"))
    reg.add_argument("--backend")
    reg.add_argument("--allow-pickle", action="store_true", help="allow pickle (.bin) weights for this model")
    reg.add_argument("--trust-remote-code", action="store_true", help="run the model folder's own Python code")
    reg.add_argument("--save", action="store_true", help="also save it in the user config file")
    add_setting_arguments(reg)
    unload = sub.add_parser("unload", help="free loaded models (all, or one)")
    unload.add_argument("name", nargs="?")
    hist = sub.add_parser("history", help="show recent runs")
    hist.add_argument("-n", type=int, default=20)
    hist.add_argument("--search")
    hist.add_argument("--kind", choices=("text", "image"))
    show = sub.add_parser("show", help="the result of a run in history, as an object")
    show.add_argument("id", type=int)
    safety = sub.add_parser(
        "safety", help="safety: show or set the level (off | warn | standard | strict), 'log' lists recent "
        "verdicts, 'review' the outputs held for review, 'approve ID' / 'reject ID' decides one")
    safety.add_argument("action", nargs="?", metavar="LEVEL|log|review|approve|reject")
    safety.add_argument("id", nargs="?", type=int, help="the history id to approve or reject")
    safety.add_argument("-n", type=int, default=20, help="how many rows 'log' shows")
    safety.add_argument("--note", help="a note kept with the decision")
    sub.add_parser("presets", help="list the style (image) and tone (text) presets").add_argument(
        "kind", nargs="?", choices=("text", "image"))
    sub.add_parser("reset", help="forget this notebook's --chat conversation")
    sub.add_parser("panel", help="a control panel (model, options, seed, Generate/Stop, Copy as cell)").add_argument(
        "kind", choices=("text", "image"))
    sub.add_parser("trust", help="trust a project genmagic.toml (default: the one found from here)").add_argument("path", nargs="?")
    return parser


_EMPTY_CELL_MAGIC = re.compile(r"%%(generate|imagine|finetune)(?=[ \t]|$)")


def empty_cell_as_line(lines: list[str]) -> list[str]:
    """An IPython input transformer: ``%%imagine --from saved.png`` with nothing below it runs
    as the line magic ``%imagine --from saved.png`` (the same call: the cell form takes the
    prompt from the line's words too).

    IPython refuses a cell magic with an empty body before the magic sees the line, but these
    magics can take their prompt from the line or from ``--from``; when there is none, the
    magic's own error says so.
    """
    if lines and _EMPTY_CELL_MAGIC.match(lines[0]) and not "".join(lines[1:]).strip():
        return [lines[0][1:]]
    return lines


# IPython's check_complete (terminal IPython, jupyter console, a kernel's is_complete) skips the
# transformers marked so: there the magic line alone stays incomplete, and Enter waits for the body.
empty_cell_as_line.has_side_effects = True  # type: ignore[attr-defined]


def _finetune_options() -> tuple[type[opts.Options], ...]:
    """%%finetune's option classes (a small module: importing it loads no torch)."""
    from .tuning.options import FinetuneControls, FinetuneOptions

    return FinetuneOptions, FinetuneControls


# --------------------------------------------------------------------------- magics


@magics_class
class GenMagics(Magics):
    default_text_model = Unicode("", help="model used by %%generate when -m is not given").tag(config=True)
    default_image_model = Unicode("", help="model used by %%imagine when -m is not given").tag(config=True)
    memory_budget_mb = Int(8192, help="loaded models are unloaded (least recently used first) above this").tag(
        config=True
    )
    stream = Bool(True, help="stream outputs into the cell as they are produced").tag(config=True)
    safety_level = Unicode("", help="safety level of every run: off, warn, standard (the default when empty), "
                           "strict; a cell's --safety overrides it").tag(config=True)
    allowed_image_hosts = List(Unicode(), help="hosts whose images model output may load ('*.example.org' "
                               "for subdomains); any other remote image shows as a link that is not fetched").tag(config=True)

    @observe("allowed_image_hosts")
    def _image_hosts_changed(self, change: Any) -> None:
        from . import display

        display.configured_image_hosts = frozenset(h.strip().lower() for h in change["new"] if h.strip())

    @validate("safety_level")
    def _valid_safety_level(self, proposal: Any) -> str:
        from .safety.labels import check_level

        if proposal["value"]:
            try:
                check_level(proposal["value"], "GenMagics.safety_level")
            except GenmagicError as err:
                raise TraitError(str(err)) from None
        return str(proposal["value"])

    @observe("safety_level")
    def _safety_level_changed(self, change: Any) -> None:
        from .engine import default_engine

        default_engine().safety_level = change["new"] or None

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self.conversation: list[tuple[str, str]] = []

    # -- shared plumbing
    @property
    def ip(self) -> Any:
        """The shell (never None once registered)."""
        assert self.shell is not None
        return self.shell

    @property
    def engine(self) -> Any:
        from .engine import default_engine

        engine = default_engine()
        engine.models.budget_mb = self.memory_budget_mb
        return engine

    def _where(self) -> dict[str, str | None]:
        cell_id = None
        kernel = getattr(self.shell, "kernel", None)
        if kernel is not None:
            try:
                parent = kernel.get_parent()
                cell_id = (parent.get("metadata") or {}).get("cellId")
            except Exception:
                cell_id = None
        ns = self.ip.user_ns  # jupyter_server sets JPY_SESSION_NAME (ipykernel: __session__); VS Code its own
        notebook = ns.get("__session__") or os.environ.get("JPY_SESSION_NAME") or ns.get("__vsc_ipynb_file__")
        return {"notebook": notebook, "cell_id": cell_id}

    def parse_line(self, magic: Any, line: str) -> Any:
        """Parse a magic line with its generated parser: split first (POSIX: quotes do not stay in
        the values), then fill ``{name}`` in each word, so a variable is always one value, never
        an option (see :func:`~genmagic.prompt.split_line`)."""
        parser = magic.parser
        actions = parser._option_string_actions

        def takes_value(flag: str) -> bool:
            action = actions.get(flag)
            if action is None and parser.allow_abbrev and flag.startswith("--"):  # --temp for --temperature
                matches = {actions[known] for known in actions if known.startswith(flag)}
                action = matches.pop() if len(matches) == 1 else None
            return action is not None and action.nargs != 0

        from .batch import line_namespace  # --over VAR: its row placeholders are filled per row

        argv, filled = split_line(line, line_namespace(line, self.ip.user_ns), takes_value)
        try:
            args = opts.parse_args(parser, argv)
        except UsageError as err:
            raise UsageError(unfill(str(err), filled)) from None
        for name, value in vars(args).items():
            setattr(args, name, unfill(value, filled))
        return args

    def _parse(
        self, magic: Any, line: str, cell: str | None, options_class: type[OptionsT], controls_class: type[ControlsT],
        example: str = "story",
    ) -> tuple[OptionsT, ControlsT, str, frozenset[str]]:
        """A magic's options, controls, prompt and ``given`` (the option names set on the line).

        An empty prompt is fine when ``--from`` says where it comes from."""
        args = self.parse_line(magic, line)
        controls = opts.from_namespace(controls_class, args)
        options = opts.from_namespace(options_class, args)
        # with --over the rows fill the prompt (genmagic/batch.py), the notebook's variables the rest
        prompt = assemble(cell, args.prompt, self.ip.user_ns if controls.interpolate and not controls.over else None)
        if not prompt.strip() and not getattr(controls, "from_image", None):
            raise PromptError("the prompt is empty: write it in the cell below the magic line, or after the options")
        if controls.out is not None and not controls.out.isidentifier():
            raise OptionError(f"--out needs a Python variable name, got {controls.out!r}; e.g. --out {example}")
        return options, controls, prompt, opts.given(args, options_class)

    def _withheld(self, result: Any) -> None:
        """What a user sees when a safety check withheld outputs: the reason (the view shows where),
        and for a run held for review, the approve / edit / reject panel."""
        if not result.withheld:
            return
        if result.status == "review":
            from .display import in_kernel
            from .safety.review import hold

            hold(result)  # a decision made by its id reaches this object and --out

            if in_kernel():
                from IPython.display import display

                from .safety.review import review_widget

                display(review_widget(result, self.engine))
                return
            print(f"genmagic: held for review (history #{result.history_id}); decide with "
                  f"%genmagic safety approve {result.history_id} (or reject)", file=sys.stderr)
            return
        if getattr(result, "images", None):
            first = min(result.withheld)
            print(f"genmagic: {len(result.withheld)} image(s) blurred by a safety check (history #{result.history_id} "
                  f"keeps the originals); result.reveal({first}) shows one, and history records that", file=sys.stderr)
            return
        print(f"genmagic: {len(result.withheld)} output(s) withheld by a safety check; they are kept in history "
              f"#{result.history_id}; to see them anyway, run the cell with --safety warn", file=sys.stderr)

    def _bind(self, name: str | None, value: Any) -> None:
        if name:  # checked by _parse
            self.ip.user_ns[name] = value

    def _over(self, kind: str, template: str, options: Any, controls: Any, model: str | None, given: Any) -> Any:
        """``--over VAR``: one run per row (genmagic/batch.py); ``--out`` gets the BatchResult."""
        from .batch import over_in_notebook

        batch = over_in_notebook(self.engine, kind, template, options, controls, namespace=self.ip.user_ns,
                                 model=model, given=given, where=self._where())
        self._bind(controls.out, batch)
        if batch.interrupted:
            raise KeyboardInterrupt
        if kind == "image":
            from IPython.display import display

            display(batch)  # the grid; the value is the images
        return batch.value

    # -- %%generate
    @no_var_expand
    @ma.magic_arguments()
    @opts.magic_arguments(opts.TextOptions, opts.TextControls)
    @ma.argument("prompt", nargs="*", help="the prompt (line form); the cell body in the cell form")
    @line_cell_magic
    @usage_errors
    def generate(self, line: str, cell: str | None = None) -> Any:
        """Generate text with a local (or served) model, streamed into the cell.

        ``{name}`` in the prompt is filled from the notebook's variables. Options left out
        take the model's own defaults (its generation_config.json, then the registry's
        params) before the defaults shown here.
        """
        options, controls, prompt, given = self._parse(self.generate, line, cell, opts.TextOptions, opts.TextControls)
        if controls.widgets:  # a control panel runs the cell, in a worker thread (genmagic/panel.py)
            from .panel import panel_from_magic

            return panel_from_magic(self, "text", prompt, options, controls, given,
                                    controls.model or self.default_text_model or None)
        if controls.compare:
            return self._compare("text", options, controls, prompt, given, controls.model or self.default_text_model)

        from . import text_run
        from .display import strip_fence, text_footer
        from .sinks import live_text_sink

        messages = tuple(self.conversation) if options.chat else ()
        model = controls.model or self.default_text_model or None
        if controls.over:
            return self._over("text", prompt, options, controls, model, given)
        sink = live_text_sink(options.num, controls.stream and self.stream, controls.format)
        result = text_run.run(
            self.engine, prompt, options, controls, model=model, messages=messages, sink=sink, where=self._where(),
            given=given, namespace=self.ip.user_ns,
        )
        note = "" if result.ok else f"{result.status} after {sum(result.tokens)} tokens · history #{result.history_id}"
        if result.ok and result.format == "json":  # the JSON as written stays; the parsed value is the output
            sink.close(True, text_footer(result))
        else:
            _end_live_view(self.ip, sink, result, note)
        self._bind(controls.out, result)
        self._withheld(result)
        if result.status == "interrupted":
            print(f"genmagic: interrupted; the partial text is kept (history #{result.history_id})", file=sys.stderr)
            raise KeyboardInterrupt
        if result.status == "error":  # -f json that does not parse: the raw text is on --out and in history
            raise OutputFormatError(f"{result.error} (history #{result.history_id})")
        if options.chat and result.ok:  # a withheld answer does not become part of the conversation
            self.conversation += [("user", prompt), ("assistant", result.text)]
        if not result.ok:  # withheld (blocked, held for review): the result says so; nothing to parse or insert
            return result
        if controls.format == "code":
            self.ip.set_next_input(strip_fence(result.text), replace=False)
        if result.format == "json":  # -f json or --schema: the parsed value (--schema: an instance of it)
            return result.value if result.values else result.json()
        return result

    # -- %%imagine
    @no_var_expand
    @ma.magic_arguments()
    @opts.magic_arguments(opts.ImageOptions, opts.ImageControls)
    @ma.argument("prompt", nargs="*", help="the prompt (line form); the cell body in the cell form")
    @line_cell_magic
    @usage_errors
    def imagine(self, line: str, cell: str | None = None) -> Any:
        """Generate images with a local diffusers pipeline: a progress bar and live previews,
        then a grid captioned with each image's seed.

        ``--init``/``--mask`` take a notebook variable or a file; ``--from image.png`` re-runs
        the request stored in a PNG that genmagic saved. Default model: ``default_image_model``.
        Options left out take the registry's params for the model before the defaults shown here.
        """
        from . import image_run
        from .sinks import live_image_sink

        options, controls, prompt, given = self._parse(
            self.imagine, line, cell, opts.ImageOptions, opts.ImageControls, "pictures"
        )
        if controls.widgets:  # a control panel runs the cell, in a worker thread (genmagic/panel.py)
            from .panel import panel_from_magic

            return panel_from_magic(self, "image", prompt, options, controls, given,
                                    controls.model or self.default_image_model or None)
        if controls.over:
            return self._over("image", prompt, options, controls, controls.model or self.default_image_model or None,
                              given)
        if controls.compare:
            return self._compare("image", options, controls, prompt, given, controls.model or self.default_image_model)
        num = options.num  # with --from, 1 unless typed (the PNG holds one image)
        sink = live_image_sink(num, controls.preview, controls.stream and self.stream)
        # With --from, the model stored in the PNG comes before the session's default.
        model = controls.model or (None if controls.from_image else self.default_image_model or None)
        result = image_run.run(
            self.engine, prompt, options, controls, model=model, namespace=self.ip.user_ns, sink=sink,
            where=self._where(), given=given,
        )
        note = "" if result.ok else f"{result.status} · history #{result.history_id}"
        _end_live_view(self.ip, sink, result, note)
        self._bind(controls.out, result)
        self._withheld(result)
        if result.status == "interrupted":
            print(f"genmagic: interrupted; the last preview is kept (history #{result.history_id})", file=sys.stderr)
            raise KeyboardInterrupt
        return result

    def _compare(self, kind: str, options: Any, controls: Any, prompt: str, given: Any, model: str) -> Any:
        """``--compare``: every cell through the run layer, shown as one labelled grid (see :mod:`genmagic.compare`)."""
        from . import compare

        extra = {"namespace": self.ip.user_ns} if kind == "image" else {}
        grid = compare.run(self.engine, kind, prompt, options, controls, model=model or None, given=given,
                           where=self._where(), progress=compare.progress_view(kind), **extra)
        if getattr(controls, "save", None):
            for cell in grid:
                if getattr(cell.result, "images", None):
                    cell.result.save(controls.save)  # type: ignore[union-attr]
        self._bind(controls.out, grid)
        for cell in grid:
            if cell.error and cell.error.startswith("error:"):
                print(f"genmagic: cell {cell.label}: {cell.error}", file=sys.stderr)
        if grid.status == "interrupted":
            from IPython.display import display

            display(grid)
            print("genmagic: interrupted; the finished cells are kept (and in history)", file=sys.stderr)
            raise KeyboardInterrupt
        return grid

    # -- %%finetune
    @no_var_expand
    @ma.magic_arguments()
    @opts.magic_arguments(*_finetune_options())
    @ma.argument("name", help="the alias of the fine-tuned model (-m NAME afterwards)")
    @line_cell_magic
    @usage_errors
    def finetune(self, line: str, cell: str | None = None) -> Any:
        """Fine-tune a LoRA adapter on a DataFrame, a list, a file or the cell body, with a live loss
        curve and a Stop button; saves it under GENMAGIC_HOME/adapters/NAME and registers alias NAME
        (base + adapter) in the user config. See genmagic.finetune for the Python API."""
        from .tuning.options import FinetuneControls, FinetuneOptions
        from .tuning.run import run

        args = self.parse_line(self.finetune, line)
        result = run(args.name, opts.from_namespace(FinetuneOptions, args), opts.from_namespace(FinetuneControls, args),
                     namespace=self.ip.user_ns, cell=cell, engine=self.engine)
        if result.stopped == "interrupted":  # saved and registered; a "run all" stops here, as for %%generate
            print(f"genmagic: interrupted; the adapter after {result.metrics.get('steps')} steps is saved as "
                  f"{result.name}", file=sys.stderr)
            raise KeyboardInterrupt
        return result

    # -- %genmagic
    @line_magic
    @usage_errors
    def genmagic(self, line: str) -> Any:
        """Manage models, history, safety and conversations: %genmagic models | use | register | unload | history | show | safety | presets | panel | reset | trust"""
        parser = _genmagic_parser()
        try:
            argv, _ = split_line(line)
            args = opts.parse_args(parser, argv)
        except _HelpShown:
            return None
        if args.command is None:
            parser.print_help()
            return None
        return getattr(self, "_cmd_" + args.command)(args)

    def _cmd_models(self, args: argparse.Namespace) -> Any:
        from .display import models_table

        if args.remote:
            from .register_args import remote_models

            print(remote_models(args.remote, args.api_key_env))
            return None

        registry = self.engine.registry
        defaults = {"text": self.default_text_model or registry.default("text"),
                    "image": self.default_image_model or registry.default("image")}
        return models_table(registry.specs(), defaults, self.engine.models)

    def _cmd_use(self, args: argparse.Namespace) -> None:
        self.engine.registry.set_default(args.kind, args.name, persist=args.save)
        setattr(self, f"default_{args.kind}_model", args.name)
        print(f"default {args.kind} model: {args.name}")

    def _cmd_register(self, args: argparse.Namespace) -> Any:
        from .register_args import settings_from_args

        spec = self.engine.registry.register(
            args.alias,
            args.source,
            kind=args.kind,
            backend=args.backend,
            adapters=args.adapter,
            persist=args.save,
            allow_pickle=args.allow_pickle,
            trust_remote_code=args.trust_remote_code,
            settings=settings_from_args(args),
        )
        print(f"registered {spec.alias}: {spec.kind} model via {spec.backend} from {spec.source}")
        return None

    def _cmd_unload(self, args: argparse.Namespace) -> None:
        gone = self.engine.models.unload(args.name)
        if gone:
            print("unloaded: " + ", ".join(gone))
        elif args.name and args.name not in self.engine.registry.aliases():
            raise OptionError(f"unload {args.name}: no such model; see %genmagic models for the aliases")
        else:
            print(f"unloaded: nothing ({args.name or 'no model'} is loaded)")

    def _cmd_history(self, args: argparse.Namespace) -> Any:
        from .history_view import history_table

        return history_table(self.engine.history, n=args.n, search=args.search, kind=args.kind)

    def _cmd_show(self, args: argparse.Namespace) -> Any:
        from .history_view import result_from_history

        return result_from_history(self.engine.history, args.id)

    def _cmd_presets(self, args: argparse.Namespace) -> Any:
        from .presets import table

        return table(args.kind, self.engine.registry)

    def _cmd_trust(self, args: argparse.Namespace) -> None:
        from .trust import trust_command

        print(trust_command(args.path, self.engine.registry))

    def _cmd_safety(self, args: argparse.Namespace) -> Any:
        from .safety import review
        from .safety.labels import LEVELS

        action = args.action
        if action is None:
            engine = self.engine
            print(f"safety level: {engine.level()} ({self._level_origin()}); checks: "
                  + ", ".join(getattr(c, "name", type(c).__name__) for c in engine.checks))
            return None
        if action in LEVELS:
            self.safety_level = action
            print(f"safety level: {action}" + (" (nothing is screened; each run records that)" if action == "off" else ""))
            return None
        if action == "log":
            from .history_view import verdict_table

            return verdict_table(self.engine.history, n=args.n)
        if action == "review":
            from .history_view import history_rows_table

            return history_rows_table(review.pending(self.engine))
        if action in ("approve", "reject"):
            if args.id is None:
                raise OptionError(f"%genmagic safety {action} needs a history id, e.g. %genmagic safety {action} 12")
            getattr(review, action)(args.id, note=args.note, engine=self.engine)
            print(f"run #{args.id}: {action}d")
            return None
        raise OptionError(f"%genmagic safety {action}: use a level ({', '.join(LEVELS)}), log, review, "
                          "approve ID or reject ID")

    def _level_origin(self) -> str:
        if self.safety_level:
            return "set in this session"
        return "from the config files" if self.engine.registry.safety_level() else "the default"

    def _cmd_panel(self, args: argparse.Namespace) -> Any:
        from .panel import open_panel

        return open_panel(self, args.kind)

    def _cmd_reset(self, args: argparse.Namespace) -> None:
        turns = len(self.conversation) // 2
        self.conversation.clear()
        print(f"conversation cleared ({turns} turns)")
