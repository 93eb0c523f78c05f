"""The package's own error types.

Every user mistake raises a :class:`GenmagicError` whose message is one line naming the
option or value and the fix. The magics turn it into a plain IPython ``UsageError``; the
CLI prints it and exits with status 2; the Python API lets it propagate.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator


class GenmagicError(Exception):
    """A user-facing error: one line, names the value and says how to fix it."""


class OptionError(GenmagicError, ValueError):
    """An option has a wrong type or is out of range."""


class ModelNotFoundError(GenmagicError, LookupError):
    """A model alias, directory or hub id could not be resolved or loaded."""


class PromptError(GenmagicError, ValueError):
    """The prompt cannot be used as given (unknown variable, too long, ...)."""


class OutputFormatError(GenmagicError, ValueError):
    """The model's output could not be parsed in the requested format."""


class BlockedError(GenmagicError):
    """A safety check blocked the prompt or the output."""


# Where the user is: messages name the management commands they can type there.
_management = contextvars.ContextVar("genmagic_management", default="%genmagic")


def management() -> str:
    """``%genmagic`` in a notebook (and from Python), ``genmagic`` on the command line."""
    return _management.get()


def command(words: str, shell: str | None = None) -> str:
    """A management command as the user types it where they are, for messages: ```%genmagic
    models``` in a notebook (and from Python), ```genmagic models``` on the command line, where
    ``shell`` (if given) replaces a command that only the magic has."""
    prefix = management()
    if shell is not None and prefix == "genmagic":
        return shell
    return f"`{prefix} {words}`"


@contextlib.contextmanager
def on_command_line() -> Iterator[None]:
    """Messages raised inside name the shell's commands (``genmagic history``), not the magic's."""
    token = _management.set("genmagic")
    try:
        yield
    finally:
        _management.reset(token)
