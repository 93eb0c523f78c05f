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
    "finetune",
    "generate",
    "imagine",
    "load_ipython_extension",
    "read_metadata",
    "unload_ipython_extension",
]

_magics: Any = None


def __getattr__(name: str) -> Any:
    """``genmagic.TextResult``, ``genmagic.ImageResult``, ``genmagic.Result`` and ``genmagic.finetune``,
    imported on first use."""
    if name in ("ImageResult", "Result", "TextResult"):
        from . import results

        return getattr(results, name)
    if name == "finetune":  # a callable package: genmagic.finetune(NAME, data, **options)
        import importlib

        return importlib.import_module(".finetune", __name__)
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
    **options: Any,
) -> TextResult:
    """Generate text; ``options`` are the ``%%generate`` options (``temperature=0.7``, ``seed=1``, ...).

    Returns a :class:`~genmagic.results.TextResult`; ``stream=True`` prints tokens as they come.
    ``format="json"``: an output that does not parse gives ``status == "error"`` (the reason in
    ``.error``, the raw text in ``.text``), as in the magic and the CLI. ``safety`` is this run's
    safety level (``off | warn | standard | strict``; default: the session's, see ``%genmagic safety``).
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
        default_engine(), prompt, text_options, TextControls(cache=cache, format=format, safety=safety), model=model, messages=messages or (),
        sink=sink, given=set(values),
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
    **options: Any,
) -> ImageResult:
    """Generate images; ``options`` are the ``%%imagine`` options (``steps=30``, ``seed=7``, ``num=4``, ...).

    ``init``/``mask`` take a PIL image, a numpy array or a file path (img2img, inpainting);
    ``from_image`` re-runs the request stored in a PNG saved by genmagic. Returns an
    :class:`~genmagic.results.ImageResult`; ``progress=True`` shows a progress bar. ``safety``: as
    for :func:`generate`.
    """
    from . import image_run as im
    from .engine import default_engine
    from .options import ImageControls, ImageOptions, split_kwargs
    from .sinks import TerminalImageSink

    (values,) = split_kwargs(options, ImageOptions)
    image_options = ImageOptions(**values)
    controls = ImageControls(model=model, cache=cache, save=save, from_image=from_image, safety=safety)
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


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The generation parameters stored in a PNG: ``{"request": ..., "seed": ..., "parameters": ...}``."""
    from .pngmeta import read_metadata as read

    return read(path)
