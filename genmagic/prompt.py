"""Prompt assembly, shared by every way in: the cell body, the line's words, ``{name}`` filling.

``{name}`` (also ``{name.attr}``, ``{name[0]}``, ``{name:fmt}``) is filled from a namespace
(the notebook's variables); ``{{`` and ``}}`` are literal braces; any other brace is left alone.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import PromptError


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
