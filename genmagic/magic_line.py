"""The notebook cell that reproduces a run: the panel's "Copy as cell", the lab sidebar's "Re-run".

:func:`magic_cell` writes ``%%generate``/``%%imagine`` with the options as flags and the prompt as
the cell body; :func:`cell_for_request` does it for a :class:`~genmagic.request.Request` or its
``to_dict()`` (a history row). The cell parses back to the same options with the magics' own
parser (a test checks the round trip).

- Values equal to ``defaults`` (what the run gets without the flag: the options' defaults, or the
  model's own, see :meth:`~genmagic.engine.Engine.model_defaults`) are left out; without
  ``defaults`` every value that is set is written, so the cell reproduces the run whatever the
  model's defaults are.
- A prompt or a value holding a brace adds ``--no-interpolate``: the re-run sends it as it was
  sent, never filled from the notebook's variables.
- Only what the request holds is written: the model alias (never an API key), options, the
  safety level and the format when given. Inputs that are not plain values (an init image, a
  chat's earlier turns) cannot be written as flags: :func:`unreproducible` names them.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping
from typing import Any

from . import options as opts

_MAGIC = {"text": "%%generate", "image": "%%imagine"}
_CONTROLS: dict[str, type[opts.Controls]] = {"text": opts.TextControls, "image": opts.ImageControls}


def _escape(text: str) -> str:
    """Typed form of a value for an ``escapes`` option (``--stop``): a line break as ``\\n``."""
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


def _flags(field: dataclasses.Field[Any], value: Any) -> list[str]:
    """The words that give ``field`` the value ``value`` on a magic line."""
    spec: opts.Spec = field.metadata["spec"]
    flag = spec.flags[0] if spec.flags and spec.flags[0].startswith("-") and len(spec.flags[0]) == 2 else opts.flag_name(field.name)
    if spec.repeat:
        return [word for item in value for word in _pair(field, flag, _escape(item) if spec.escapes else item)]
    if isinstance(value, bool):
        if spec.negate:
            return [] if value else [opts.flag_name("no_" + field.name)]
        return [flag] if value else []
    if isinstance(value, float):
        value = repr(value) if not value.is_integer() else str(int(value))
    text = str(value)
    return _pair(field, flag, _escape(text) if spec.escapes else text)


def _pair(field: dataclasses.Field[Any], flag: str, text: str) -> list[str]:
    """``flag TEXT``; a text starting with ``-`` (``--system -:``) would read as an option, so it is
    joined to the long flag: ``--system=-:``. argparse drops a value that is exactly ``--``."""
    if text == "--":
        raise opts.OptionError(f"{opts.flag_name(field.name)} '--' cannot be written on a magic line (argparse "
                               "reads -- as the end of the options); change the value")
    return [f"{opts.flag_name(field.name)}={text}"] if text.startswith("-") else [flag, text]


def _default(field: dataclasses.Field[Any]) -> Any:
    return None if field.default is dataclasses.MISSING else field.default


def magic_cell(
    kind: str,
    prompt: str,
    *,
    model: str | None = None,
    options: Mapping[str, Any] | None = None,
    controls: Mapping[str, Any] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> str:
    """The ``%%generate``/``%%imagine`` cell for a run of ``kind`` ("text" or "image").

    ``options`` are option values by name (unknown names are an error), ``controls`` the run
    controls to write (``safety``, ``format``, ...: each written when it differs from its
    default); ``defaults`` the values a run gets without a flag (None: write every value)."""
    if kind not in _MAGIC:
        raise opts.OptionError(f"no magic for runs of kind {kind!r}; use one of {', '.join(_MAGIC)}")
    words: list[str] = []
    if model:
        words += ["-m", model]
    option_fields = {f.name: f for f in opts.options_class(kind).option_fields()}
    control_fields = {f.name: f for f in _CONTROLS[kind].option_fields()}
    for name, value in (options or {}).items():
        if name not in option_fields:
            raise opts.OptionError(f"unknown {kind} option {name!r}")
        if isinstance(value, list):
            value = tuple(value)
        if value is None or value == ():
            continue
        if defaults is not None and name in defaults and defaults[name] == value:
            continue
        if defaults is not None and name not in defaults and value == _default(option_fields[name]):
            continue
        words += _flags(option_fields[name], value)
    for name, value in (controls or {}).items():
        if name in ("model", "out", "interpolate") or name not in control_fields:
            continue  # the model is written above; --out names a variable of one notebook
        field = control_fields[name]
        if value is None or value == _default(field):
            continue
        words += _flags(field, value)
    if "{" in prompt or "}" in prompt or any("{" in w or "}" in w for w in words):
        words.append("--no-interpolate")
    line = " ".join([_MAGIC[kind], *(shlex.quote(w) for w in words)])
    return f"{line}\n{prompt.strip(chr(10))}"


def _request_dict(request: Any) -> Mapping[str, Any]:
    return request if isinstance(request, Mapping) else request.to_dict()


def cell_for_request(request: Any, controls: Mapping[str, Any] | None = None) -> str:
    """The cell that re-runs ``request`` (a Request, or its ``to_dict()`` as history stores it)
    with every option it was run with, so the model's defaults cannot change the re-run."""
    data = _request_dict(request)
    kind = data["kind"]
    option_names = {f.name for f in opts.options_class(kind).option_fields()}
    options = {k: v for k, v in dict(data.get("options") or {}).items() if k in option_names}
    extra = dict(controls or {})
    if "response_format" in (data.get("inputs") or {}) and kind == "text":
        extra.setdefault("format", "json")
    return magic_cell(kind, data["prompt"], model=data.get("model") or None, options=options, controls=extra)


def unreproducible(request: Any) -> list[str]:
    """What of ``request`` a magic cell cannot carry: inputs such as an init image, earlier chat turns."""
    data = _request_dict(request)
    missing = [name for name in (data.get("inputs") or {}) if name != "response_format"]
    if data.get("messages"):
        missing.append("messages")
    return missing
