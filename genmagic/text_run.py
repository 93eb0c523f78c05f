"""``%%generate``, ``genmagic generate`` and ``genmagic.generate()``: one way to build and run
a text request from parsed options.

The run layer of a modality has the same shape for text and images (:mod:`genmagic.image_run`)::

    build_request(engine, prompt, options, model, ..., given=names) -> Request
    run(engine, prompt, options, controls, *, model, sink, where, given, ...) -> Result

``options`` change the output (they are in the cache key), ``controls`` say how the run is
done (model, cache, format...). ``given`` is the set of option names the user set
explicitly; the others take the model's defaults (``None``: every option was given).
``sink`` receives the run's events; the run closes it with ``close(False, "failed")`` when
the run raises, and the caller closes it otherwise (it knows what note to show). ``where``
(notebook, cell id) goes into history.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from .request import run_with_sink

if TYPE_CHECKING:
    from .engine import Engine
    from .options import TextControls, TextOptions
    from .request import Request
    from .results import Result, TextResult


def build_request(
    engine: Engine,
    prompt: str,
    options: TextOptions,
    model: str | None = None,
    messages: Sequence[tuple[str, str]] = (),
    given: Collection[str] | None = None,
) -> Request:
    """The text request: ``messages`` are the earlier turns of a ``--chat`` conversation."""
    return engine.request("text", prompt, options, model=model, messages=tuple(messages), given=given)


def _ask_format(request: Request, fmt: str) -> Request:
    """A backend that can ask its model for a format (``constrained_formats``: a served model's
    ``response_format``) gets it as an input of the request, so it is in the cache key; for the
    others ``-f`` only says how the output is shown, and the key stays the same."""
    from .registry import get_backend

    spec = request.spec
    if spec is None or fmt not in getattr(get_backend(spec.backend), "constrained_formats", ()):
        return request
    return dataclasses.replace(request, inputs={**request.inputs, "response_format": fmt})


def run(
    engine: Engine,
    prompt: str,
    options: TextOptions,
    controls: TextControls,
    *,
    model: str | None = None,
    messages: Sequence[tuple[str, str]] = (),
    sink: Any = None,
    where: Mapping[str, Any] | None = None,
    given: Collection[str] | None = None,
) -> TextResult:
    """Build the request, run it; the result shows itself in ``controls.format``. With
    ``-f json`` an output that does not parse makes a failed run (status ``error``, see
    :func:`check_format`): the caller reports it, the result and history keep the text."""
    request, finish = prepare(engine, prompt, options, controls, model=model, messages=messages, given=given)
    result: TextResult = run_with_sink(
        engine, request, sink, cache=controls.cache, finish=finish, safety=controls.safety, **dict(where or {}),
    )
    return result


def prepare(
    engine: Engine,
    prompt: str,
    options: TextOptions,
    controls: TextControls,
    *,
    model: str | None = None,
    messages: Sequence[tuple[str, str]] = (),
    given: Collection[str] | None = None,
) -> tuple[Request, Callable[[Result], None]]:
    """The request :func:`run` runs (``--tone`` applied: :func:`genmagic.presets.apply`) and the
    engine's ``finish`` for it (the ``-f`` check, the preset's name in ``info``)."""
    from . import presets

    prompt, options, given, preset = presets.apply("text", controls.tone, prompt, options, given, engine.registry)
    request = build_request(engine, prompt, options, model or controls.model, messages, given)
    request = _ask_format(request, controls.format)
    return request, presets.noted(preset, functools.partial(check_format, fmt=controls.format))


def check_format(result: Result, fmt: str) -> None:
    """The engine's ``finish`` for text (before history records the run): the result shows
    itself in ``fmt``; with ``-f json`` every sample must parse, or the run failed: status
    ``error`` with the reason, the raw text kept on the result and in history."""
    text_result = cast("TextResult", result)
    text_result.format = fmt
    if fmt != "json" or result.status != "ok":
        return
    from .display import parse_json
    from .errors import OutputFormatError

    for index, text in enumerate(text_result.texts):
        try:
            parse_json(text)
        except OutputFormatError as err:
            result.status = "error"
            result.error = (f"sample {index + 1}: " if len(text_result.texts) > 1 else "") + str(err)
            return
