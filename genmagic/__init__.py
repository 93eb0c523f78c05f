"""genmagic: generative AI as notebook cells.

``%load_ext genmagic`` registers ``%%generate`` (text) and ``%genmagic`` (models, history).
Loading the extension imports no torch, transformers or diffusers: they are imported
on the first run that needs them.

The same runs from Python::

    import genmagic
    result = genmagic.generate("Once upon a time", temperature=0, max_new_tokens=40)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import GenmagicError, ModelNotFoundError, OptionError, OutputFormatError, PromptError

if TYPE_CHECKING:
    from .request import TextResult

__version__ = "0.1.0"
__all__ = [
    "GenmagicError",
    "ModelNotFoundError",
    "OptionError",
    "OutputFormatError",
    "PromptError",
    "generate",
    "load_ipython_extension",
    "unload_ipython_extension",
]

_magics: Any = None


def load_ipython_extension(ipython: Any) -> None:
    global _magics
    from .magics import GenMagics

    _magics = GenMagics(ipython)
    ipython.register_magics(_magics)


def unload_ipython_extension(ipython: Any) -> None:
    global _magics
    if _magics is not None:
        magics = ipython.magics_manager.magics
        for kind in ("line", "cell"):
            for name, func in list(magics[kind].items()):
                if getattr(func, "__self__", None) is _magics:
                    del magics[kind][name]
        _magics = None


def generate(
    prompt: str,
    model: str | None = None,
    *,
    stream: bool = False,
    cache: bool = True,
    messages: list[tuple[str, str]] | None = None,
    **options: Any,
) -> TextResult:
    """Generate text; ``options`` are the ``%%generate`` options (``temperature=0.7``, ``seed=1``, ...).

    Returns a :class:`~genmagic.request.TextResult`; ``stream=True`` prints tokens as they come.
    """
    from .display import StreamSink
    from .engine import default_engine
    from .options import TextOptions, split_kwargs
    from .request import NullSink

    (values,) = split_kwargs(options, TextOptions)
    text_options = TextOptions(**values)
    engine = default_engine()
    request = engine.request("text", prompt, text_options, model=model, messages=tuple(messages or ()))
    sink = StreamSink(num=text_options.num) if stream else NullSink()
    result = engine.run(request, sink, cache=cache)
    sink.close(result.ok)
    return result  # type: ignore[return-value]
