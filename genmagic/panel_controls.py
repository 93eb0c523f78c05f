"""One panel control per option, generated from :func:`genmagic.options.describe`.

Each :class:`Control` wraps one standard ipywidgets 8 widget and converts between the widget's
value and the option's value (``get`` raises a one-line :class:`~genmagic.errors.OptionError`
naming the flag and the fix). Which widget an option gets:

- choices (static, or from a callable in :data:`CHOICES_FROM`: presets) → ``Dropdown``;
- bools → ``Checkbox`` (a ``--no-NAME`` switch shows ticked when on);
- repeatable options → a ``Textarea``, one value per line;
- whole numbers / numbers with both bounds → ``IntSlider`` / ``FloatSlider`` when the range is
  small, else ``BoundedIntText`` / ``BoundedFloatText`` (``top_k`` up to 10⁶ is a box);
- an optional number (``--width``: empty = the model's size) → ``Text`` with a placeholder;
- text → ``Text`` (``Textarea`` for free text such as ``--system``, ``--negative``).

The help becomes the tooltip. This module imports ipywidgets at import time: only the panel imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from .errors import OptionError
from .options import unescape


def _preset_names(kind: str, registry: Any) -> list[str]:
    from .presets import names

    return names(kind, registry)


# Options whose choices come from a callable ``(kind, registry) -> list of names``: the presets of a kind
# (which users extend in genmagic.toml), shown as a dropdown whose first entry is "(none)".
CHOICES_FROM: dict[str, Callable[[str, Any], list[str]]] = {"tone": _preset_names, "style": _preset_names}

_STYLE = {"description_width": "120px"}
_WIDE = w.Layout(width="420px")
_INT_SLIDER_RANGE = 1000  # an int option with a wider range gets a box (max tokens, top-k)
_FLOAT_SLIDER_RANGE = 100.0
_FREE_TEXT = ("system", "negative")


class Control:
    """One option's widget: ``get()`` gives the option value, ``set(value)`` shows one."""

    def __init__(self, desc: dict[str, Any], widget: Any, get: Callable[[Any], Any], show: Callable[[Any], Any]):
        self.name: str = desc["name"]
        self.flag: str = desc["flag"]
        self.widget = widget
        self._get = get
        self._show = show

    def get(self) -> Any:
        return self._get(self.widget.value)

    def set(self, value: Any) -> None:
        self.widget.value = self._show(value)


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")


def number_parser(flag: str, typ: type, hint: str = "clear the box for the default") -> Callable[[Any], Any]:
    """Text box → a number of ``typ`` (empty → None); a one-line error naming ``flag`` otherwise."""
    kind = "a whole number" if typ is int else "a number"

    def parse(text: Any) -> Any:
        text = str(text).strip()
        if not text:
            return None
        try:
            return typ(text)
        except ValueError:
            raise OptionError(f"{flag} must be {kind}, got {text!r}; {hint}") from None

    return parse


def _same(value: Any) -> Any:
    return value


def build(desc: dict[str, Any], kind: str, registry: Any = None) -> Control:
    """The control for one option described by :func:`genmagic.options.describe`."""
    name, typ, help_ = desc["name"], desc["type"], desc["help"]
    common: dict[str, Any] = {"description": name.replace("_", " "), "tooltip": help_, "style": _STYLE}
    choices = desc["choices"]
    if name in CHOICES_FROM:
        choices = list(CHOICES_FROM[name](kind, registry))
    if choices is not None:
        optional = desc["default"] is None or name in CHOICES_FROM
        label = "(none)" if name in CHOICES_FROM else "(session's)" if name == "safety" else "(default)"
        options = ([(label, None)] if optional else []) + [(c, c) for c in choices]
        value = desc["default"] if desc["default"] in choices else (None if optional else choices[0])
        return Control(desc, w.Dropdown(options=options, value=value, **common), _same, _same)
    if desc["repeat"]:
        widget = w.Textarea(placeholder="one per line", layout=_WIDE, rows=2, **common)
        escapes = name == "stop"  # typed like the magic line: \n is a line break

        def lines(text: Any) -> tuple[str, ...]:
            items = [line.strip("\r") for line in str(text).split("\n") if line.strip()]
            return tuple(unescape(i) if escapes else i.strip() for i in items)

        return Control(desc, widget, lines, lambda v: "\n".join(_escape(i) if escapes else i for i in (v or ())))
    if typ == "bool":
        label = name.replace("_", " ")
        widget = w.Checkbox(value=bool(desc["default"]), indent=True, **{**common, "description": label})
        return Control(desc, widget, bool, bool)
    if typ in ("int", "float"):
        low, high, number = desc["min"], desc["max"], int if typ == "int" else float
        if desc["default"] is None or low is None or high is None:  # optional: empty is the default
            widget = w.Text(placeholder="default", **common)
            return Control(desc, widget, number_parser(desc["flag"], number), lambda v: "" if v is None else str(v))
        if number is int:
            cls = w.IntSlider if high - low <= _INT_SLIDER_RANGE else w.BoundedIntText
            widget = cls(min=int(low), max=int(high), value=desc["default"], **common)
        else:
            slider = high - low <= _FLOAT_SLIDER_RANGE
            step = 0.01 if high - low <= 10 else 0.1
            widget = (w.FloatSlider(min=low, max=high, step=step, value=desc["default"], readout_format=".2f", **common)
                      if slider else w.BoundedFloatText(min=low, max=high, value=desc["default"], **common))
        return Control(desc, widget, number, _same)
    widget = (w.Textarea(layout=_WIDE, rows=2, **common) if name in _FREE_TEXT
              else w.Text(placeholder="default", **common))
    return Control(desc, widget, lambda v: str(v) if str(v).strip() else None, lambda v: v or "")
