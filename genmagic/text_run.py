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
    from .structured import Schema


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
    schema: Any = None,
    namespace: Mapping[str, Any] | None = None,
) -> TextResult:
    """Build the request, run it; the result shows itself in ``controls.format``. With
    ``-f json`` an output that does not parse makes a failed run (status ``error``, see
    :func:`check_format`): the caller reports it, the result and history keep the text.

    ``schema`` (a JSON Schema dict, a pydantic model class, a dataclass type), else
    ``controls.schema`` (a variable of ``namespace``, or a ``.json`` file): the output is JSON
    matching it (``-f json`` implied), and ``result.value`` is the parsed object."""
    request, finish = prepare(engine, prompt, options, controls, model=model, messages=messages, given=given,
                              schema=schema, namespace=namespace)
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
    schema: Any = None,
    namespace: Mapping[str, Any] | None = None,
) -> tuple[Request, Callable[[Result], None]]:
    """The request :func:`run` runs and the engine's ``finish`` for it: see :func:`prepare_many`."""
    requests, finish = prepare_many(engine, [prompt], options, controls, model=model, messages=messages, given=given,
                                    schema=schema, namespace=namespace)
    return requests[0], finish


def prepare_many(
    engine: Engine,
    prompts: Sequence[str],
    options: TextOptions,
    controls: TextControls,
    *,
    model: str | None = None,
    messages: Sequence[tuple[str, str]] = (),
    given: Collection[str] | None = None,
    schema: Any = None,
    namespace: Mapping[str, Any] | None = None,
) -> tuple[list[Request], Callable[[Result], None]]:
    """One request per prompt (``--tone`` applied: :func:`genmagic.presets.apply`; ``-f json`` /
    ``--schema`` asked for) and the engine's ``finish`` for them all (the ``-f`` check, the
    preset's name in ``info``): a single run and every row of ``--over`` are built the same way."""
    from . import presets

    shape = _schema(schema, controls, namespace)
    fmt = "json" if shape is not None else controls.format
    requests = []
    preset = None
    for prompt in prompts:
        sent, row_options, row_given, preset = presets.apply("text", controls.tone, prompt, options, given,
                                                             engine.registry)
        request = _ask_format(build_request(engine, sent, row_options, model or controls.model, messages, row_given),
                              fmt)
        if shape is not None:
            request = dataclasses.replace(request, inputs={**request.inputs, "json_schema": shape.canonical})
        requests.append(request)
    return requests, presets.noted(preset, functools.partial(check_format, fmt=fmt, schema=shape))


def _schema(schema: Any, controls: TextControls, namespace: Mapping[str, Any] | None) -> Schema | None:
    """The run's ``--schema``, checked (a one-line error naming ``--schema`` otherwise)."""
    if schema is None and controls.schema is None:
        return None
    from . import structured
    from .errors import OptionError

    shape = structured.schema_from(schema) if schema is not None else structured.resolve(str(controls.schema), namespace)
    if controls.format not in ("auto", "json"):
        raise OptionError(f"--schema gives JSON, not -f {controls.format}; leave -f out (or use -f json)")
    structured.unsupported(shape)
    return shape


def check_format(result: Result, fmt: str, schema: Schema | None = None) -> None:
    """The engine's ``finish`` for text (before history records the run): the result shows
    itself in ``fmt``; with ``-f json`` every sample must parse (and match ``schema``), or the
    run failed: status ``error`` with the reason, the raw text kept on the result and in
    history. The parsed samples are ``result.values`` (a pydantic or dataclass instance with
    such a schema)."""
    text_result = cast("TextResult", result)
    text_result.format = fmt
    if fmt != "json" or result.status != "ok":
        return
    from .display import parse_json
    from .errors import OutputFormatError

    values = []
    for index, text in enumerate(text_result.texts):
        try:
            value = parse_json(text)
            values.append(schema.convert(value) if schema is not None else value)
        except OutputFormatError as err:
            result.status = "error"
            result.error = (f"sample {index + 1}: " if len(text_result.texts) > 1 else "") + str(err)
            return
    text_result.values = values
