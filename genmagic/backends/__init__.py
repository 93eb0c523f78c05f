"""The backend protocol. Each backend lives in its own file and registers through the
``genmagic.backends`` entry-point group (see :mod:`genmagic.registry`).

A backend module must not import torch (or any heavy library) at import time: the
registry imports it to ask :meth:`Backend.detect`, and that must stay cheap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..options import Options
    from ..registry import ModelSpec
    from ..request import Request, Result, Sink


_SMALL_MODEL_BYTES = 256 * 2**20


@contextmanager
def torch_threads(nbytes: int) -> Iterator[None]:
    """Run a small model's generation on one CPU thread, then restore the setting.

    Small matrices gain nothing from more threads, and with another busy process on the
    CPU, torch's default thread count made tiny-model generation 7-60x slower here.
    ``GENMAGIC_THREADS`` overrides the choice (for any model size).
    """
    env = os.environ.get("GENMAGIC_THREADS")
    threads = int(env) if env and env.isdigit() and int(env) > 0 else (1 if nbytes < _SMALL_MODEL_BYTES else 0)
    if not threads:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def default_device() -> str:
    """cuda, then mps, then cpu."""
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


@dataclass
class Loaded:
    """A model in memory, as a backend loaded it."""

    spec: ModelSpec
    model: Any
    nbytes: int = 0
    device: str = "cpu"
    dtype: str = "float32"
    info: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    kinds: tuple[str, ...]  # the run kinds it serves: "text", "image", ...

    def detect(self, source: str) -> str | None:
        """The kind of model at ``source`` if this backend can load it, else None."""

    def fingerprint(self, spec: ModelSpec) -> str:
        """A fingerprint of the model's weights/adapters (part of every request key and of
        the loaded-model cache key): it changes whenever the weights change."""

    def load_key(self, spec: ModelSpec, options: Options) -> tuple[Any, ...]:
        """What distinguishes two loads of one spec (device, dtype); () if nothing."""

    def load(self, spec: ModelSpec, options: Options) -> Loaded: ...

    def generate(self, loaded: Loaded, request: Request, sink: Sink) -> Result:
        """Run the request, emitting events to ``sink`` and honouring ``sink.cancelled``.

        On KeyboardInterrupt or cancellation it returns the partial result with
        ``status="interrupted"`` and leaves the loaded model usable.
        """

    def unload(self, loaded: Loaded) -> None: ...
