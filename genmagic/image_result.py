"""Moved: the image result is :class:`genmagic.results.ImageResult` (plain data) and its grid
is rendered by :mod:`genmagic.display`. These names stay importable from here."""

from .results import ImageResult, pending_sources, write_atomic

__all__ = ["ImageResult", "pending_sources", "write_atomic"]
