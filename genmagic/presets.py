"""Style (image) and tone (text) presets: prompt templates plus option defaults, as data.

A preset is a table of plain values (built-ins in ``genmagic/data/presets.toml``; users add
or replace them in ``genmagic.toml`` / the user ``config.toml`` under ``[presets.style.NAME]``
and ``[presets.tone.NAME]``)::

    [presets.style.blueprint]
    description = "a technical blueprint"
    template = "a blueprint drawing of {prompt}, white lines on blue"   # {prompt}: the user's prompt
    negative = "photo"                # styles: added to the negative prompt
    options = { guidance = 8.0, steps = 30 }

    [presets.tone.pirate]
    template = "{prompt}"
    system = "Answer like a pirate."  # tones: added to the system prompt
    options = { temperature = 1.0 }

Applying one (:func:`apply`, called by the run layers before the request is built): the prompt
becomes the template with ``{prompt}`` replaced by the user's prompt (``str.replace``: a template
from a config file is untrusted text, never a format string); the addition is appended to the
negative / system prompt; each option default applies only to an option the user did not give
(given wins), and it beats the model's own defaults. The prompt actually sent is the request's
``prompt`` (what history records); the preset's name is in ``result.info["preset"]``.

Later files replace earlier presets of the same name whole: built-ins < user config < project
``genmagic.toml``. A project file's presets are data only: they may not set the device, dtype,
LoRA files or the number of outputs (:data:`REFUSED`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomllib

from .errors import OptionError, command

if TYPE_CHECKING:
    from .options import Options
    from .registry import Registry
    from .results import Result

BUILTIN_FILE = Path(__file__).parent / "data" / "presets.toml"
PLACEHOLDER = "{prompt}"
SECTIONS = {"text": "tone", "image": "style"}  # run kind -> preset table
ADDITION = {"tone": "system", "style": "negative"}  # the option a preset's extra text is added to
SEPARATOR = {"system": "\n\n", "negative": ", "}
# What a preset may not choose: where the model runs, files to read, how many outputs, a conversation.
REFUSED = frozenset({"device", "dtype", "lora", "num", "chat"})
MAX_TEXT = 4000  # characters in a template or an addition


@dataclass(frozen=True)
class Preset:
    name: str
    section: str  # "style" | "tone"
    template: str
    addition: str = ""  # added to the negative prompt (style) or the system prompt (tone)
    options: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    origin: str = "builtin"  # builtin | user | project
    file: str = ""

    @property
    def kind(self) -> str:
        """The run kind it applies to: ``image`` for a style, ``text`` for a tone."""
        return "image" if self.section == "style" else "text"

    def fill(self, prompt: str) -> str:
        """The template with ``{prompt}`` replaced by ``prompt`` (nothing else is expanded)."""
        return self.template.replace(PLACEHOLDER, prompt)


def _options_class(section: str) -> Any:
    from .options import ImageOptions, TextOptions

    return ImageOptions if section == "style" else TextOptions


def _check_entry(name: Any, entry: Any, section: str, origin: str, file: str) -> Preset:
    """One preset table, every field checked: errors name the file, the preset and the key."""
    where = f"{file or origin + ' presets'}: [presets.{section}.{name}]" if origin != "builtin" else \
        f"{file}: [{section}.{name}]"
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "-_" for c in name):
        raise OptionError(f"{where}: a preset name is letters, digits, '-' and '_'; rename it")
    if not isinstance(entry, Mapping):
        raise OptionError(f"{where} must be a table, e.g. template = \"... {PLACEHOLDER} ...\"")
    addition_key = ADDITION[section]
    known = {"template", "description", "options", addition_key}
    for key in entry:
        if key not in known:
            other = ADDITION["tone" if section == "style" else "style"]
            hint = f" ({other} belongs to a {'tone' if section == 'style' else 'style'})" if key == other else ""
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            mean = f"; did you mean {close[0]}?" if close and not hint else ""
            raise OptionError(f"{where}: unknown key {key!r}{hint}{mean}; valid keys: {', '.join(sorted(known))}")
    template = entry.get("template")
    if not isinstance(template, str) or PLACEHOLDER not in template:
        raise OptionError(f"{where}: template must be text containing {PLACEHOLDER}, got {template!r}; "
                          f"e.g. template = \"a watercolor of {PLACEHOLDER}\"")
    texts = {key: entry.get(key, "") for key in ("description", addition_key)}
    for key, value in {"template": template, **texts}.items():
        if not isinstance(value, str):
            raise OptionError(f"{where}: {key} must be text, got {value!r}")
        if len(value) > MAX_TEXT:
            raise OptionError(f"{where}: {key} is {len(value):,} characters, over {MAX_TEXT:,}; shorten it")
    values = entry.get("options", {})
    if not isinstance(values, Mapping):
        raise OptionError(f"{where}: options must be a table, e.g. options = {{ guidance = 7.0 }}")
    cls = _options_class(section)
    fields = {f.name: f for f in cls.option_fields()}
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key in REFUSED:
            raise OptionError(f"{where}: options.{key}: a preset may not choose {key}; remove it "
                              f"(pass --{key.replace('_', '-')} yourself)")
        if key not in fields:
            close = difflib.get_close_matches(str(key), sorted(fields), n=1)
            mean = f"did you mean {close[0]}? " if close else ""
            raise OptionError(f"{where}: options.{key} is not a {cls.kind} option; {mean}"
                              f"valid: {', '.join(sorted(set(fields) - REFUSED))}")
        from .options import check_value

        try:
            checked[key] = check_value(fields[key], tuple(value) if isinstance(value, list) else value)
        except OptionError as err:
            raise OptionError(f"{where}: options.{key}: {err}") from None
    return Preset(name=name, section=section, template=template, addition=texts[addition_key], options=checked,
                  description=texts["description"], origin=origin, file=file)


def _read_tables(data: Any, origin: str, file: str) -> dict[str, dict[str, Preset]]:
    out: dict[str, dict[str, Preset]] = {"style": {}, "tone": {}}
    if data is None:
        return out
    where = f"{file}: [presets]" if origin != "builtin" else file
    if not isinstance(data, Mapping):
        raise OptionError(f"{where} must be a table of [presets.style.NAME] / [presets.tone.NAME] tables")
    for section, table in data.items():
        if section not in out:
            raise OptionError(f"{where}: unknown preset kind {section!r}; use presets.style.NAME (images) "
                              "or presets.tone.NAME (text)")
        if not isinstance(table, Mapping):
            raise OptionError(f"{where}.{section} must be a table of presets, e.g. [presets.{section}.NAME]")
        for name, entry in table.items():
            out[section][name] = _check_entry(name, entry, section, origin, file)
    return out


@functools.cache
def builtin() -> dict[str, dict[str, Preset]]:
    """The presets shipped with genmagic (``genmagic/data/presets.toml``)."""
    with open(BUILTIN_FILE, "rb") as fh:
        return _read_tables(tomllib.load(fh), "builtin", str(BUILTIN_FILE))


def load(registry: Registry | None = None) -> dict[str, dict[str, Preset]]:
    """Every preset, ``{"style": {name: Preset}, "tone": {...}}``: the built-ins, then the user
    config's, then the project file's (a later one replaces an earlier one of the same name)."""
    if registry is None:
        from .engine import default_engine

        registry = default_engine().registry
    merged = {section: dict(table) for section, table in builtin().items()}
    for origin, path, data in registry.preset_tables():
        for section, table in _read_tables(data, origin, str(path)).items():
            merged[section].update(table)
    return merged


def _section(kind: str) -> str:
    if kind not in SECTIONS:
        raise OptionError(f"preset kind {kind!r}: use 'text' (tones) or 'image' (styles)")
    return SECTIONS[kind]


def names(kind: str, registry: Registry | None = None) -> list[str]:
    """The preset names of a run kind, sorted: ``"text"`` → tones, ``"image"`` → styles."""
    return sorted(load(registry)[_section(kind)])


def get(kind: str, name: str, registry: Registry | None = None) -> Preset:
    """The preset ``name`` of a run kind; an unknown name is a one-line error listing the others."""
    section = _section(kind)
    table = load(registry)[section]
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1, cutoff=0.6)
    mean = f"did you mean {close[0]}? " if close else ""
    raise OptionError(
        f"--{section} {name!r}: no such {section}; {mean}available: {', '.join(sorted(table))} "
        f"(see {command('presets')}); define one in genmagic.toml as [presets.{section}.{name}] "
        f"with template = \"... {PLACEHOLDER} ...\""
    )


def apply(
    kind: str,
    name: str | None,
    prompt: str,
    options: Options,
    given: Collection[str] | None,
    registry: Registry | None = None,
) -> tuple[str, Any, Collection[str] | None, Preset | None]:
    """``(prompt, options, given, preset)`` with the preset ``name`` applied (unchanged without one).

    The preset's option defaults fill the options not in ``given`` and join ``given``, so the
    model's own defaults (applied later to what is not given) do not replace them. ``given=None``
    (every option given) keeps every option as it is. The addition is appended to the negative
    (style) or system (tone) prompt the user gave."""
    if not name:
        return prompt, options, given, None
    preset = get(kind, name, registry)
    changes: dict[str, Any] = {}
    if given is not None:
        changes = {key: value for key, value in preset.options.items() if key not in given}
    target = ADDITION[preset.section]
    if preset.addition:
        current = changes.get(target, getattr(options, target))
        changes[target] = f"{current}{SEPARATOR[target]}{preset.addition}" if current else preset.addition
    if given is not None:
        given = frozenset(given) | set(changes)
    return preset.fill(prompt), dataclasses.replace(options, **changes), given, preset


def noted(preset: Preset | None, finish: Callable[[Result], None] | None = None) -> Callable[[Result], None]:
    """An ``Engine.run`` ``finish`` that records the preset's name in ``result.info["preset"]``
    (and in history with it), then calls ``finish``."""

    def note(result: Result) -> None:
        if preset is not None:
            result.info["preset"] = f"{preset.section} {preset.name}"
        if finish is not None:
            finish(result)

    return note


def table(kind: str | None = None, registry: Registry | None = None) -> Any:
    """``%genmagic presets [text|image]`` / ``genmagic presets``: name, kind, template, defaults, origin."""
    from .display import Table, shorten

    presets = load(registry)
    sections = [_section(kind)] if kind else ["style", "tone"]
    rows = []
    for section in sections:
        for name, p in sorted(presets[section].items()):
            defaults = ", ".join(f"{k}={v}" for k, v in p.options.items())
            extra = f"{ADDITION[section]}: {p.addition}" if p.addition else ""
            rows.append([name, f"{section} ({p.kind})", shorten(p.template, 50), shorten(extra, 40), defaults,
                         p.origin])
    note = ("--style NAME (%%imagine) / --tone NAME (%%generate); add your own in genmagic.toml: "
            "[presets.style.NAME] template = \"... {prompt} ...\"")
    return Table(["name", "kind", "template", "adds", "defaults", "from"], rows, note)
