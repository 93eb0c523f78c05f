"""The package's own error types.

Every user mistake raises a :class:`GenmagicError` whose message is one line naming the
option or value and the fix. The magics turn it into a plain IPython ``UsageError``; the
CLI prints it and exits with status 2; the Python API lets it propagate.
"""

from __future__ import annotations


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
