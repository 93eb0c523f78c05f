"""Prompt assembly, shared by every way in: the cell body, the line's words, ``{name}`` filling.

``{name}`` (also ``{name.attr}``, ``{name[0]}``, ``{name:fmt}``) is filled from a namespace
(the notebook's variables); ``{{`` and ``}}`` are literal braces; any other brace is left alone.
"""

from __future__ import annotations

import re
import secrets
import shlex
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from .errors import OptionError, PromptError


class _Namespace(Mapping[str, Any]):
    """The notebook's variables, read in place (no copy per word); a missing name is a PromptError."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self._namespace = namespace

    def __iter__(self) -> Iterator[str]:
        return iter(self._namespace)

    def __len__(self) -> int:
        return len(self._namespace)

    def __getitem__(self, key: str) -> Any:
        if key in self._namespace:
            return self._namespace[key]
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
) -> tuple[list[str], dict[str, str]]:
    """A magic line as argv, and the filled words it stands in for: split POSIX-style first
    (quotes group words and are removed), then ``{name}`` is filled in each word from
    ``namespace`` (unless it is None or the line says ``--no-interpolate``).

    A filled value is always exactly one value, never an option: right after a flag that
    ``takes_value`` it is joined to it (``--system=-x``); anywhere else (the prompt's words) the
    word becomes a placeholder that cannot start with ``-``, to be put back by :func:`unfill`
    once the argv is parsed. A word the user wrote starting with ``-`` (``--stop={x}``) stays
    theirs. The dict maps each placeholder to its value.
    """
    try:
        words = shlex.split(line, posix=True)
    except ValueError as err:  # an unclosed quote, a trailing backslash
        raise OptionError(f"cannot read the options line ({err}): close every quote; write \\\\ for a backslash") from None
    filled: dict[str, str] = {}
    if namespace is None or "--no-interpolate" in words:
        return words, filled
    nonce = secrets.token_hex(4)
    argv: list[str] = []
    after_flag = False  # the word before is a flag (as written) that takes a value
    for word in words:
        value = interpolate(word, namespace)
        if value == word or word.startswith("-"):
            argv.append(value)
        elif after_flag:
            argv[-1] += "=" + value
        else:
            placeholder = f"\ue000{nonce}:{len(filled)}\ue000"
            filled[placeholder] = value
            argv.append(placeholder)
        after_flag = word == value and word.startswith("-") and "=" not in word and takes_value(word)
    return argv, filled


def unfill(value: Any, filled: Mapping[str, str]) -> Any:
    """``value`` with the placeholders of :func:`split_line` put back: in a string (an error
    message too), in the items of a list or tuple (``prompt``, ``--stop``)."""
    if not filled:
        return value
    if isinstance(value, str):
        return _PLACEHOLDERS.sub(lambda m: filled.get(m.group(0), m.group(0)), value)
    if isinstance(value, (list, tuple)):
        return type(value)(unfill(item, filled) for item in value)
    return value


_PLACEHOLDERS = re.compile("\ue000[0-9a-f]+:[0-9]+\ue000")


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
