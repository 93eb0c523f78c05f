"""Prompt assembly, shared by every way in: the cell body, the line's words, ``{name}`` filling.

``{name}`` (also ``{name.attr}``, ``{name[0]}``, ``{name:fmt}``) is filled from a namespace
(the notebook's variables); ``{{`` and ``}}`` are literal braces; any other brace is left alone.
"""

from __future__ import annotations

import re
import shlex
import string
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import OptionError, PromptError


class _Namespace(dict[str, Any]):
    def __missing__(self, key: str) -> Any:
        raise PromptError(
            f"unknown variable {key!r} in the prompt: define it first, write {{{{ and }}}} for literal braces, "
            "or pass --no-interpolate"
        )


_PLACEHOLDER = re.compile(
    r"\{\{|\}\}|\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[[^\[\]{}]*\])*)(![rsa])?(:[^{}]*)?\}"
)


def interpolate(text: str, namespace: Mapping[str, Any]) -> str:
    """Fill ``{name}`` (also ``{name.attr}``, ``{name[0]}``, ``{name:fmt}``) from ``namespace``.

    ``{{`` and ``}}`` are literal braces; any other brace (JSON in a prompt, say) is left alone.
    """
    if "{" not in text and "}" not in text:
        return text
    ns = _Namespace(namespace)

    def fill(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        try:
            return string.Formatter().vformat(token, (), ns)
        except PromptError:
            raise
        except Exception as err:
            raise PromptError(
                f"cannot fill {token} in the prompt ({type(err).__name__}: {err}); "
                "write {{ and }} for literal braces, or pass --no-interpolate"
            ) from None

    return _PLACEHOLDER.sub(fill, text)


def split_line(
    line: str, namespace: Mapping[str, Any] | None = None, takes_value: Callable[[str], bool] = lambda flag: False
) -> list[str]:
    """A magic line as argv: split POSIX-style first (quotes group words and are removed), then
    ``{name}`` is filled in each word from ``namespace`` (unless it is None or the line says
    ``--no-interpolate``). A filled value is always exactly one value: its spaces, quotes or
    dashes never make more words or options. A filled value that starts with ``-`` right after
    a flag that ``takes_value`` is joined to it (``--system=-x``) so argparse cannot take it for a flag.
    """
    try:
        words = shlex.split(line, posix=True)
    except ValueError as err:  # an unclosed quote, a trailing backslash
        raise OptionError(f"cannot read the options line ({err}): close every quote; write \\\\ for a backslash") from None
    if namespace is None or "--no-interpolate" in words:
        return words
    argv: list[str] = []
    for word in words:
        value = interpolate(word, namespace)
        if value != word and value.startswith("-") and argv and argv[-1].startswith("-") and takes_value(argv[-1]):
            argv[-1] += "=" + value
        else:
            argv.append(value)
    return argv


def assemble(cell: str | None, words: Sequence[str], namespace: Mapping[str, Any] | None = None) -> str:
    """The prompt of a magic: the cell body (filled from ``namespace`` unless it is None), after
    the words left on the magic line, if any; the line's words alone in the line form."""
    if cell is not None and cell.strip():
        prompt = cell.strip("\n")
        if namespace is not None:
            prompt = interpolate(prompt, namespace)
        if words:
            prompt = " ".join(words) + "\n" + prompt
        return prompt
    return " ".join(words)
