"""One typed options definition per modality.

Each modality's options are a frozen dataclass whose fields carry their flag, help text,
bounds and choices in ``metadata``. That single definition drives:

- the magic parser (:func:`magic_arguments` builds IPython ``@argument`` decorators),
- the CLI (:func:`add_arguments` on an ``argparse`` parser; ``notebook_only`` options are left out),
- validation (``__post_init__`` checks types and bounds, one-line errors naming the fix),
- the Python API (:func:`split_kwargs`), and later the widgets (:func:`describe`).

Run controls that do not change what the model produces (``--out``, ``--no-cache``, ...)
live in :class:`Controls`, so they never enter a request's cache key.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .errors import OptionError

_MISSING = object()


@dataclass(frozen=True)
class Spec:
    """What the parser, the CLI and the widgets need to know about one option."""

    help: str
    flags: tuple[str, ...] = ()  # extra flags such as "-m"
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] | None = None
    repeat: bool = False  # the flag may be given several times (a tuple of values)
    negate: bool = False  # a bool shown as --no-NAME that turns the default (True) off
    metavar: str | None = None
    example: str | None = None  # a valid value to show in error messages
    widget: bool = True  # shown in option panels
    notebook_only: bool = False  # means something only in a notebook: left out of the command line
    escapes: bool = False  # typed text takes \\n, \\t and \\\\ (a magic line cannot hold a line break)


def opt(default: Any = _MISSING, help: str = "", **spec: Any) -> Any:
    """Declare an option field: its default plus a :class:`Spec` in the metadata."""
    meta = {"spec": Spec(help=help, **spec)}
    if isinstance(default, tuple):
        return field(default=default, metadata=meta)
    if default is _MISSING:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def _base_type(annotation: Any) -> type:
    text = str(annotation)
    for name, typ in (("bool", bool), ("int", int), ("float", float)):
        if text.startswith(name):
            return typ
    return str


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _bounds_text(spec: Spec) -> str:
    if spec.min is not None and spec.max is not None:
        return f"between {_num(spec.min)} and {_num(spec.max)}"
    if spec.min is not None:
        return f"at least {_num(spec.min)}"
    if spec.max is not None:
        return f"at most {_num(spec.max)}"
    return ""


T = TypeVar("T", bound="Options")


@dataclass(frozen=True)
class Options:
    """Base class: validation and conversions shared by every modality's options."""

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            checked = check_value(f, value)
            if checked is not value:
                object.__setattr__(self, f.name, checked)

    @classmethod
    def option_fields(cls) -> tuple[dataclasses.Field[Any], ...]:
        return tuple(f for f in dataclasses.fields(cls) if "spec" in f.metadata)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise OptionError(
                f"unknown option {unknown[0]!r} for {cls.kind}; valid options: {', '.join(sorted(names))}"
            )
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    return value


def check_value(f: dataclasses.Field[Any], value: Any) -> Any:
    """Coerce and check one value against its field; raise OptionError naming the fix."""
    spec: Spec = f.metadata["spec"]
    flag = flag_name(f.name)
    typ = _base_type(f.type)
    optional = "None" in str(f.type)
    if value is None:
        if optional:
            return None
        raise OptionError(f"{flag} needs a value; e.g. {flag} {spec.example or f.default}")
    if spec.repeat:
        if isinstance(value, str):
            value = (value,)
        try:
            items = tuple(value)
        except TypeError:
            raise OptionError(f"{flag} takes a list of strings, got {value!r}") from None
        for item in items:
            if not isinstance(item, str):
                raise OptionError(f"{flag} takes strings, got {item!r}")
            if not item:
                raise OptionError(f"{flag} needs some text, got ''; e.g. {flag} {spec.example or 'TEXT'}")
        return items
    if typ is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{flag} is a switch (True/False), got {value!r}")
        return value
    if typ in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"{flag} must be a number {_bounds_text(spec)}, got {value!r}".replace("  ", " "))
        if typ is int:
            if isinstance(value, float) and not value.is_integer():
                raise OptionError(f"{flag} must be a whole number, got {value!r}")
            value = int(value)
        else:
            value = float(value)
            if value != value:  # NaN
                raise OptionError(f"{flag} must be a number {_bounds_text(spec)}, got nan")
        if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
            example = spec.example or f.default
            raise OptionError(
                f"{flag} must be {_bounds_text(spec)}, got {_num(value)}; e.g. {flag} {example}"
            )
        return value
    if not isinstance(value, str):
        raise OptionError(f"{flag} takes text, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise OptionError(f"{flag} must be one of {', '.join(spec.choices)}; got {value!r}")
    return value


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def unescape(text: str) -> str:
    """``\\n``, ``\\t``, ``\\r`` and ``\\\\`` typed on a magic line or a command line as a line break,
    a tab, a carriage return and a backslash; any other backslash stays as typed."""
    return re.sub(r"\\([ntr\\])", lambda m: _ESCAPES[m.group(1)], text)


def _argparse_type(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    spec: Spec = f.metadata["spec"]
    typ = _base_type(f.type)
    flag = flag_name(f.name)

    def convert(text: str) -> Any:
        if typ is str:
            return unescape(text) if spec.escapes else text
        try:
            value = typ(text)
        except ValueError:
            kind = "a whole number" if typ is int else "a number"
            bounds = _bounds_text(spec)
            raise argparse.ArgumentTypeError(
                f"expected {kind}{' ' + bounds if bounds else ''}, got {text!r}; e.g. {flag} {spec.example or f.default}"
            ) from None
        try:
            return check_value(f, value)
        except OptionError as err:  # argparse already names the flag
            raise argparse.ArgumentTypeError(str(err).removeprefix(flag + " ")) from None

    convert.__name__ = typ.__name__
    return convert


def argument_specs(cls: type[Options], notebook: bool = True) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """``(flags, kwargs)`` pairs for ``argparse.add_argument`` built from the definition;
    ``notebook=False`` leaves out the options marked ``notebook_only``."""
    out: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for f in cls.option_fields():
        spec: Spec = f.metadata["spec"]
        if spec.notebook_only and not notebook:
            continue
        typ = _base_type(f.type)
        kwargs: dict[str, Any] = {"dest": f.name, "default": None}
        help_text = spec.help
        if typ is bool and not spec.repeat:
            if spec.negate:
                flags = (flag_name("no_" + f.name), *spec.flags)
                kwargs.update(action="store_const", const=False)
            else:
                flags = (flag_name(f.name), *spec.flags)
                kwargs.update(action="store_const", const=True)
        else:
            flags = (*spec.flags, flag_name(f.name))
            kwargs["type"] = _argparse_type(f)
            if spec.repeat:
                kwargs["action"] = "append"
            if spec.choices:
                kwargs["choices"] = spec.choices
            kwargs["metavar"] = spec.metavar or {int: "N", float: "X"}.get(typ, "TEXT")
            if spec.choices:
                kwargs["metavar"] = "{" + ",".join(spec.choices) + "}"
            default = f.default if f.default is not dataclasses.MISSING else None
            if default not in (None, ()):
                help_text += f" (default: {default})"
            bounds = _bounds_text(spec)
            if bounds:
                help_text += f" [{bounds}]"
        kwargs["help"] = help_text.replace("%", "%%")
        out.append((flags, kwargs))
    return out


def add_arguments(parser: argparse.ArgumentParser, *classes: type[Options]) -> None:
    """The command line's arguments: every option but those marked ``notebook_only``."""
    for cls in classes:
        for flags, kwargs in argument_specs(cls, notebook=False):
            parser.add_argument(*flags, **kwargs)


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    """``parser.parse_args(argv)`` (the magics' and the CLI's), but an unknown option also names
    the closest known one: "unrecognized arguments: --temprature 0.5; did you mean --temperature?".
    The error goes through the (sub)command's own ``error`` (UsageError in a magic, exit 2 in the CLI)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        target = _subcommand(parser, args)
        target.error(f"unrecognized arguments: {' '.join(extra)}{_did_you_mean(extra, target)}")
    return args


def _subcommand(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the subcommand ``args`` chose (``genmagic generate``), else ``parser``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _subcommand(chosen, args)
    return parser


def _notebook_flags() -> dict[str, str]:
    """The flags of the options that exist only in a notebook, with the magic they belong to."""
    out: dict[str, str] = {}
    for cls, magic in ((TextOptions, "%%generate"), (TextControls, "%%generate"), (ImageOptions, "%%imagine"),
                       (ImageControls, "%%imagine")):
        for f in cls.option_fields():
            spec: Spec = f.metadata["spec"]
            if spec.notebook_only:
                name = flag_name("no_" + f.name) if spec.negate else flag_name(f.name)
                out.setdefault(name, magic)
    return out


def _did_you_mean(words: Iterable[str], parser: argparse.ArgumentParser) -> str:
    flags = [flag for flag in parser._option_string_actions if flag.startswith("--")]
    notebook = _notebook_flags()
    for word in words:
        name = word.partition("=")[0]
        if name in notebook and name not in flags:
            return f"; {name} exists only in a notebook ({notebook[name]} {name})"
        if word.startswith("-"):
            names = {flag.lstrip("-"): flag for flag in flags}  # the dashes would make any two flags look alike
            close = difflib.get_close_matches(name.lstrip("-"), list(names), n=1, cutoff=0.7)
            if close:
                return f"; did you mean {names[close[0]]}?"
    return ""


def magic_arguments(*classes: type[Options]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Apply IPython ``@argument`` decorators generated from option definitions."""
    from IPython.core import magic_arguments as ma

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        specs = [s for cls in classes for s in argument_specs(cls)]
        for flags, kwargs in reversed(specs):
            func = ma.argument(*flags, **kwargs)(func)
        return func

    return decorate


def from_namespace(cls: type[T], ns: argparse.Namespace | Mapping[str, Any]) -> T:
    """Build options from parsed arguments; values not given keep the defaults."""
    return cls(**explicit_values(ns, cls))


def given(ns: argparse.Namespace | Mapping[str, Any], *classes: type[Options]) -> frozenset[str]:
    """The names of the options the user set explicitly: what ``given`` means everywhere
    (the run layers, :meth:`genmagic.engine.Engine.request`)."""
    return frozenset(explicit_values(ns, *classes))


def explicit_values(ns: argparse.Namespace | Mapping[str, Any], *classes: type[Options]) -> dict[str, Any]:
    """The options of ``classes`` given explicitly on a parsed command line (not None), with their values."""
    values = vars(ns) if isinstance(ns, argparse.Namespace) else dict(ns)
    return {
        f.name: tuple(values[f.name]) if isinstance(values[f.name], list) else values[f.name]
        for cls in classes
        for f in cls.option_fields()
        if values.get(f.name) is not None
    }


def split_kwargs(kwargs: Mapping[str, Any], *classes: type[Options]) -> list[dict[str, Any]]:
    """Split Python API keyword arguments between option classes; unknown keys are errors."""
    parts: list[dict[str, Any]] = [{} for _ in classes]
    names = [{f.name for f in dataclasses.fields(cls)} for cls in classes]
    for key, value in kwargs.items():
        for i, group in enumerate(names):
            if key in group:
                parts[i][key] = tuple(value) if isinstance(value, list) else value
                break
        else:
            valid = sorted(set().union(*names))
            close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise OptionError(f"unknown option {key!r}; {hint}valid options: {', '.join(valid)}")
    return parts


def describe(cls: type[Options]) -> list[dict[str, Any]]:
    """A plain description of every field, for widgets and the lab sidebar."""
    out = []
    for f in cls.option_fields():
        spec: Spec = f.metadata["spec"]
        out.append(
            {
                "name": f.name,
                "flag": flag_name(f.name),
                "type": _base_type(f.type).__name__,
                "default": None if f.default is dataclasses.MISSING else f.default,
                "help": spec.help,
                "min": spec.min,
                "max": spec.max,
                "choices": list(spec.choices) if spec.choices else None,
                "repeat": spec.repeat,
                "widget": spec.widget,
                "notebook_only": spec.notebook_only,
            }
        )
    return out


def field_names(classes: Iterable[type[Options]]) -> set[str]:
    return {f.name for cls in classes for f in dataclasses.fields(cls)}


# --------------------------------------------------------------------------- modalities


@dataclass(frozen=True)
class TextOptions(Options):
    """Options of a text generation: every field changes what the model produces."""

    kind: ClassVar[str] = "text"

    max_new_tokens: int = opt(200, "maximum number of new tokens", min=1, max=1_000_000, example="200")
    temperature: float = opt(0.8, "sampling temperature; 0 = greedy (deterministic)", min=0.0, max=5.0, example="0.7")
    top_p: float = opt(0.95, "nucleus sampling: keep the smallest set of tokens with this probability", min=0.0, max=1.0, example="0.9")
    top_k: int = opt(50, "keep only the k most likely tokens; 0 = no limit", min=0, max=1_000_000, example="50")
    repetition_penalty: float = opt(1.1, "penalty for repeated tokens; 1 = none", min=0.01, max=10.0, example="1.1")
    seed: int | None = opt(None, "random seed: the same seed gives the same text", min=0, max=2**32 - 1, example="1")
    num: int = opt(1, "number of samples (sample i uses seed+i), shown side by side", flags=("-n",), min=1, max=16, example="2")
    stop: tuple[str, ...] = opt(
        (), "stop when this text appears (repeatable; \\n is a line break, \\t a tab)", repeat=True, metavar="TEXT",
        escapes=True, example="'\\n\\n'",
    )
    system: str | None = opt(None, "system prompt (\\n is a line break)", metavar="TEXT", example="'You are terse.'",
                             escapes=True)
    truncate: bool = opt(False, "keep the end of a prompt longer than the model's context instead of failing")
    chat: bool = opt(False, "continue this notebook's conversation (reset with %genmagic reset)", notebook_only=True)
    device: str | None = opt(None, "torch device (default: cuda, then mps, then cpu)", metavar="DEVICE", example="cpu", widget=False)
    dtype: str | None = opt(None, "weights dtype (default: the model's own, as its config says; auto = the same)", choices=("auto", "float32", "float16", "bfloat16"), widget=False)
    raw: bool = opt(False, "send the prompt as plain text to continue, not as a user turn of the model's chat template "
                    "(a conversation and --system always use the template)")
    speculate: str = opt(
        "auto", "speculative decoding (in-process models): prompt-lookup drafts tokens by copying from the prompt "
        "(faster for extraction and rewriting; greedy output unchanged in float32); auto = prompt-lookup for greedy "
        "float32 runs whose prompt is 64 tokens or longer",
        choices=("auto", "off", "prompt-lookup"), widget=False,
    )

    def deterministic(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class Controls(Options):
    """How a run is done and shown; none of these change what the model produces."""

    kind: ClassVar[str] = "controls"

    model: str | None = opt(None, "model alias, local directory or hub id", flags=("-m",), metavar="NAME", widget=False)
    out: str | None = opt(None, "bind the result object to this variable", metavar="VAR", widget=False, notebook_only=True)
    cache: bool = opt(True, "do not serve the result from the cache", negate=True)
    stream: bool = opt(True, "show the output only when it is complete", negate=True)
    interpolate: bool = opt(True, "do not fill {name} from the notebook's variables", negate=True, widget=False,
                            notebook_only=True)
    safety: str | None = opt(
        None, "safety level of this run (default: the session's, see %genmagic safety): off (nothing screened, a "
        "notice is recorded), warn (flag only), standard (redact PII sent to served models, block clearly unsafe "
        "requests and outputs), strict (also redact PII for local models, hold borderline outputs for review)",
        choices=("off", "warn", "standard", "strict"),
    )
    widgets: bool = opt(False, "show a control panel (model, options, seed, Generate/Stop, Copy as cell) that "
                        "re-runs this cell; the line's values are its initial values", widget=False, notebook_only=True)
    # batch runs (genmagic/batch.py): one run per item or row of a table
    over: str | None = opt(None, "run once per item of this list / pandas Series ({item}) or row of this DataFrame "
                           "({column}); returns one output per row", metavar="VAR", example="df", widget=False,
                           notebook_only=True)
    out_column: str | None = opt(None, "with --over DataFrame: add the outputs as this column (to a copy, unless "
                                 "--inplace) and return the frame", metavar="NAME", example="summary", widget=False,
                                 notebook_only=True)
    inplace: bool = opt(False, "with --out-column: add the column to the DataFrame itself", widget=False,
                        notebook_only=True)
    batch_size: int | None = opt(None, "with --over: rows per padded batch on an in-process model (default: as many "
                                 "as fit, at most 32 on the CPU)", min=1, max=4096, example="16", widget=False)
    concurrency: int = opt(4, "with --over: requests in flight at once to a served model", min=1, max=256,
                           example="8", widget=False)
    compare: tuple[str, ...] = opt(
        (), "compare outputs over an option: AXIS=V1,V2,... (repeat once for a second axis, e.g. --compare "
        "seed=1,2 --compare temperature=0.2,1); AXIS is any option, model, or the preset (tone/style)",
        repeat=True, metavar="AXIS=V1,V2", widget=False, example="seed=1,2,3",
    )


@dataclass(frozen=True)
class TextControls(Controls):
    kind: ClassVar[str] = "text-controls"

    format: str = opt(
        "auto",
        "how to show the output: auto renders markdown when the output uses it (headings, lists, fences, "
        "emphasis, links, tables) and plain text otherwise, line breaks kept",
        flags=("-f",), choices=("auto", "markdown", "text", "code", "json", "html"),
    )
    schema: str | None = opt(
        None, "the output is JSON matching this schema (implies -f json): in a notebook a variable holding a "
        "pydantic model class, a dataclass or a JSON Schema dict; or a JSON Schema file", metavar="VAR|FILE",
        example="Person", widget=False,
    )
    tone: str | None = opt(None, "a tone preset: its prompt template, system prompt and option defaults "
                           "(formal, friendly, concise, playful, technical, ...; see %genmagic presets)",
                           metavar="NAME", example="formal")


def options_class(kind: str) -> type[Options]:
    """The options definition of a run kind."""
    for cls in Options.__subclasses__():
        if cls.kind == kind:
            return cls
    raise OptionError(f"unknown kind {kind!r}")


# --------------------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageOptions(Options):
    """Options of an image generation: every field changes the pixels produced."""

    kind: ClassVar[str] = "image"

    steps: int = opt(20, "denoising steps", min=1, max=1000, example="30")
    guidance: float = opt(7.5, "classifier-free guidance scale (CFG); 1 = off", min=0.0, max=50.0, example="6")
    negative: str | None = opt(None, "negative prompt: what the image should not show (\\n is a line break)",
                               metavar="TEXT", example="'blurry'", escapes=True)
    seed: int | None = opt(None, "random seed: image i uses seed+i, so each can be reproduced alone", min=0, max=2**32 - 1, example="7")
    width: int | None = opt(None, "image width in pixels (default: the model's size)", min=8, max=8192, example="512")
    height: int | None = opt(None, "image height in pixels (default: the model's size)", min=8, max=8192, example="512")
    num: int = opt(1, "number of images, shown as a grid", flags=("-n",), min=1, max=64, example="4")
    scheduler: str | None = opt(None, "sampler: a diffusers scheduler compatible with the model (class name, Euler, or an A1111 name such as 'DPM++ 2M')", metavar="NAME", example="EulerDiscreteScheduler")
    strength: float = opt(0.75, "with --init: how much to change the init image (1 = ignore it)", min=0.01, max=1.0, example="0.6")
    lora: tuple[str, ...] = opt((), "LoRA weights to apply, PATH or PATH:SCALE (repeatable)", repeat=True, metavar="PATH[:SCALE]")
    device: str | None = opt(None, "torch device (default: cuda, then mps, then cpu)", metavar="DEVICE", example="cpu", widget=False)
    dtype: str | None = opt(None, "weights dtype (default: float16 on a GPU, float32 on the CPU)", choices=("float32", "float16", "bfloat16"), widget=False)

    def deterministic(self) -> bool:
        return False


@dataclass(frozen=True)
class ImageControls(Controls):
    """How an image run is done and shown; init/mask images enter the request as inputs."""

    kind: ClassVar[str] = "image-controls"

    save: str | None = opt(None, "also write the PNGs (with their parameters) into this folder", metavar="DIR", widget=False)
    init: str | None = opt(None, "img2img: start from this image (a variable or a file)", metavar="VAR|PATH", widget=False)
    mask: str | None = opt(None, "inpainting: repaint the white area of this mask (with --init)", metavar="VAR|PATH", widget=False)
    from_image: str | None = opt(None, "re-run the request stored in a PNG saved by genmagic", flags=("--from",), metavar="PNG", widget=False)
    preview: int = opt(5, "show a preview every N steps; 0 = none", min=0, max=1000, example="5")
    style: str | None = opt(None, "a style preset: its prompt template, negative prompt and option defaults "
                            "(photo, watercolor, pixel-art, line-art, ...; see %genmagic presets)",
                            metavar="NAME", example="watercolor")
    cell: str | None = opt(None, "with --from GRID.png: the comparison cell to re-run, X,Y counted from 1 "
                           "(column, row; X alone for one axis)", metavar="X,Y", widget=False, example="2,1")
