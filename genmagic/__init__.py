"""genmagic: generative AI as notebook cells.

``%load_ext genmagic`` registers ``%%generate`` (text) and ``%genmagic`` (models, history).
Loading the extension imports no torch, transformers or diffusers: they are imported
on the first run that needs them.

The same runs from Python::

    import genmagic
    result = genmagic.generate("Once upon a time", temperature=0, max_new_tokens=40)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .errors import GenmagicError, ModelNotFoundError, OptionError, OutputFormatError, PromptError

if TYPE_CHECKING:
    from .results import ImageResult, Result, TextResult

__version__ = "0.1.0"
__all__ = [
    "GenmagicError",
    "ImageResult",
    "ModelNotFoundError",
    "OptionError",
    "OutputFormatError",
    "PromptError",
    "Result",
    "TextResult",
    "comparison",
    "finetune",
    "generate",
    "generate_many",
    "imagine",
    "imagine_many",
    "load_ipython_extension",
    "read_metadata",
    "unload_ipython_extension",
]

_magics: Any = None


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The lab sidebar (built into genmagic/labextension; ``jupyter labextension develop .``)."""
    return [{"src": "labextension", "dest": "genmagic"}]


def __getattr__(name: str) -> Any:
    """``genmagic.TextResult``, ``genmagic.ImageResult``, ``genmagic.Result``, imported on first use."""
    if name in ("ImageResult", "Result", "TextResult"):
        from . import results

        return getattr(results, name)
    raise AttributeError(f"module 'genmagic' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    global _magics
    from .magics import GenMagics, empty_cell_as_line

    _magics = GenMagics(ipython)
    ipython.register_magics(_magics)
    if empty_cell_as_line not in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.append(empty_cell_as_line)


def unload_ipython_extension(ipython: Any) -> None:
    global _magics
    if _magics is not None:
        magics = ipython.magics_manager.magics
        for kind in ("line", "cell"):
            for name, func in list(magics[kind].items()):
                if getattr(func, "__self__", None) is _magics:
                    del magics[kind][name]
        _magics = None
    from .magics import empty_cell_as_line

    if empty_cell_as_line in ipython.input_transformers_cleanup:
        ipython.input_transformers_cleanup.remove(empty_cell_as_line)


def generate(
    prompt: str,
    model: str | None = None,
    *,
    stream: bool = False,
    cache: bool = True,
    format: str = "auto",
    messages: list[tuple[str, str]] | None = None,
    safety: str | None = None,
    schema: Any = None,
    tone: str | None = None,
    **options: Any,
) -> TextResult:
    """Generate text; ``options`` are the ``%%generate`` options (``temperature=0.7``, ``seed=1``, ...).

    Returns a :class:`~genmagic.results.TextResult`; ``stream=True`` prints tokens as they come.
    ``format="json"``: an output that does not parse gives ``status == "error"`` (the reason in
    ``.error``, the raw text in ``.text``), as in the magic and the CLI. ``safety`` is this run's
    safety level (``off | warn | standard | strict``; default: the session's, see ``%genmagic safety``).
    ``schema`` (a pydantic model class, a dataclass type, a JSON Schema dict or a ``.json`` file):
    the output is JSON matching it (``format="json"`` implied); ``result.value`` is the parsed
    object (an instance of the class; for -f json the JSON value).
    ``tone`` is a tone preset (``"formal"``, ...; see ``%genmagic presets``).
    """
    from . import text_run
    from .engine import default_engine
    from .options import TextControls, TextOptions, split_kwargs
    from .request import NullSink
    from .sinks import StreamSink

    (values,) = split_kwargs(options, TextOptions)
    text_options = TextOptions(**values)
    sink = StreamSink(num=text_options.num) if stream else NullSink()
    result = text_run.run(
        default_engine(), prompt, text_options, TextControls(cache=cache, format=format, safety=safety, tone=tone), model=model, messages=messages or (),
        sink=sink, given=set(values), schema=schema,
    )
    sink.close(result.ok)
    return result


def imagine(
    prompt: str = "",
    model: str | None = None,
    *,
    init: Any = None,
    mask: Any = None,
    cache: bool = True,
    progress: bool = False,
    save: str | None = None,
    from_image: str | None = None,
    safety: str | None = None,
    style: str | None = None,
    cell: str | None = None,
    **options: Any,
) -> ImageResult:
    """Generate images; ``options`` are the ``%%imagine`` options (``steps=30``, ``seed=7``, ``num=4``, ...).

    ``init``/``mask`` take a PIL image, a numpy array or a file path (img2img, inpainting);
    ``from_image`` re-runs the request stored in a PNG saved by genmagic. Returns an
    :class:`~genmagic.results.ImageResult`; ``progress=True`` shows a progress bar. ``safety``: as
    for :func:`generate`. ``style`` is a style preset (``"watercolor"``, ...); ``cell="X,Y"`` picks
    the cell of a comparison grid PNG given as ``from_image``.
    """
    from . import image_run as im
    from .engine import default_engine
    from .options import ImageControls, ImageOptions, split_kwargs
    from .sinks import TerminalImageSink

    (values,) = split_kwargs(options, ImageOptions)
    image_options = ImageOptions(**values)
    controls = ImageControls(model=model, cache=cache, save=save, from_image=from_image, safety=safety,
                             style=style, cell=cell)
    init_image = im.resolve_image(init, "init=") if init is not None else None
    mask_image = im.resolve_image(mask, "mask=") if mask is not None else None
    sources = {name: os.path.abspath(value) for name, value in (("init", init), ("mask", mask)) if isinstance(value, str)}
    sink = TerminalImageSink(image_options.num) if progress else None
    result = im.run(
        default_engine(), prompt, image_options, controls, sink=sink, init=init_image, mask=mask_image, given=set(values),
        sources=sources,
    )
    if sink is not None:
        sink.close(result.ok)
    return result


def finetune(name: str, data: Any = None, *, progress: bool = False, **options: Any) -> Any:
    """Fine-tune a LoRA adapter into alias ``name`` (``%%finetune``; see :mod:`genmagic.tuning`);
    ``options`` are ``%%finetune``'s (``base="tiny-text"``, ``text_column="reply"``, ``steps=200``,
    ``seed=0``, ``redact_pii=True``, ``retrain=True``, ...). ``data``: a DataFrame, a list of texts
    or dicts, or a file path. ``progress=True`` prints progress on stderr. Returns a
    :class:`~genmagic.tuning.result.FinetuneResult`; ``generate(..., model=name)`` then uses it."""
    from .tuning import finetune as run

    return run(name, data, progress=progress, **options)


def generate_many(data: Any, prompt: str | None = None, model: str | None = None, *, column: str | None = None,
                  progress: bool = True, **options: Any) -> Any:
    """Generate once per item of a list / pandas Series (``{item}`` in ``prompt``) or per row of a
    DataFrame (``{column}`` placeholders, ``{row[any name]}``; or ``column=`` as the whole prompt).

    ``options`` are the ``%%generate`` options and controls (``seed=1``, ``format="json"``,
    ``out_column="summary"``, ``inplace=True``, ``batch_size=16``, ``concurrency=8``...). Returns a
    list (list input), a Series on the input's index, or the DataFrame with ``out_column`` (one
    column per key when every output is a JSON object). A row that fails gets a missing value
    and its reason in ``.attrs["genmagic_errors"]``; see :mod:`genmagic.batch`.
    """
    from .batch import run_api

    return run_api("text", data, prompt, model, column, options, progress)


def imagine_many(data: Any, prompt: str | None = None, model: str | None = None, *, column: str | None = None,
                 progress: bool = True, **options: Any) -> Any:
    """One image per item or row, as :func:`generate_many` (``%%imagine`` options): a list of PIL
    images, or a Series of them."""
    from .batch import run_api

    return run_api("image", data, prompt, model, column, options, progress)


def comparison(prompt: str, *axes: str, kind: str = "image", model: str | None = None, cache: bool = True,
            safety: str | None = None, **options: Any) -> Any:
    """Run ``prompt`` over one or two axes (``"seed=1,2,3"``, ``"steps=10,30"``, ``"style=photo,watercolor"``,
    ``"model=a,b"``) and return a :class:`~genmagic.compare.CompareResult` (``.grid()``, ``.save(path)``,
    ``[x, y]``). ``kind``: ``"image"`` or ``"text"``; ``options`` (and ``tone``/``style``) apply to every cell."""
    from . import compare as grid  # (this function is not called compare: the module would shadow it)
    from .engine import default_engine
    from .options import ImageControls, ImageOptions, TextControls, TextOptions, split_kwargs

    if kind not in ("text", "image"):
        raise OptionError(f"kind={kind!r}: use 'text' or 'image'")
    option_cls, controls_cls = (TextOptions, TextControls) if kind == "text" else (ImageOptions, ImageControls)
    values, control_values = split_kwargs(options, option_cls, controls_cls)
    controls = controls_cls(**{**control_values, "model": model, "cache": cache, "safety": safety, "compare": axes})
    return grid.run(default_engine(), kind, prompt, option_cls(**values), controls, model=model, given=set(values))


def read_metadata(path: str | os.PathLike[str], cell: str | None = None) -> dict[str, Any]:
    """The generation parameters stored in a PNG: ``{"request": ..., "seed": ..., "parameters": ...}``;
    for a comparison grid, those of the cell ``"X,Y"`` (from 1)."""
    from .pngmeta import read_metadata as read

    return read(path, cell=cell)
