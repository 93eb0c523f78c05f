"""The backend protocol. Each backend lives in its own file and registers through the
``genmagic.backends`` entry-point group (see :mod:`genmagic.registry`).

A backend module must not import torch (or any heavy library) at import time: the
registry imports it to ask :meth:`Backend.detect`, and that must stay cheap.
"""

from __future__ import annotations

import contextlib
import os
import sys
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


@contextmanager
def seeded(seed: int | None, device: str = "cpu") -> Iterator[None]:
    """Seed torch's global RNGs for one generation without disturbing the user's: the CPU RNG
    state and that of the accelerator ``device`` runs on (every CUDA device, or MPS; for a CPU
    run the machine's accelerator, which ``manual_seed`` reseeds too) are saved and restored."""
    if seed is None:
        yield
        return
    import torch

    kind = torch.device(device).type
    if kind == "cpu":
        kind = "mps" if not torch.cuda.is_available() and torch.backends.mps.is_available() else "cuda"
    module: Any = getattr(torch, kind)
    devices = list(range(module.device_count())) if module.is_available() else []
    with torch.random.fork_rng(devices=devices, device_type=kind):
        torch.manual_seed(seed)
        yield


@contextmanager
def quiet_progress_bars(*libraries: str) -> Iterator[None]:
    """Switch off the loading bars of ``libraries`` (``"transformers"``, ``"diffusers"``)
    while a model loads, then restore what the user had (their own loads keep their bars)."""
    import importlib

    # transformers' disable_progress_bar also switches huggingface_hub's off, and its enable does not
    hub_utils: Any = None
    with contextlib.suppress(ImportError):  # huggingface_hub comes with transformers and diffusers
        hub_utils = importlib.import_module("huggingface_hub.utils")
    hub_on = hub_utils is not None and not hub_utils.are_progress_bars_disabled()
    switched = []
    for name in (f"{library}.utils.logging" for library in libraries):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if module.is_progress_bar_enabled():
            module.disable_progress_bar()
            switched.append(module)
    try:
        yield
    finally:
        for module in switched:
            module.enable_progress_bar()
        if hub_on:
            hub_utils.enable_progress_bars()


def check_device(device: str) -> None:
    """An OptionError naming ``--device`` unless torch can put a tensor on ``device``."""
    import torch

    from ..errors import OptionError

    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise OptionError(f"--device {device} is not usable here ({first}); use --device cpu") from None


DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}


def weight_bytes(folder: str) -> int:
    """The size of the weight files (``*.safetensors``, ``*.bin``) under ``folder``: an
    estimate of a model's memory before it is loaded."""
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            if name.endswith((".safetensors", ".bin")) and not name.startswith("training_args"):
                total += os.path.getsize(os.path.join(dirpath, name))
    return total


# Device nodes of the GPU drivers torch can use on Linux (NVIDIA, ROCm, WSL's DirectX).
_GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def default_device() -> str:
    """cuda, then mps, then cpu. On Linux with no GPU driver and torch not imported yet, "cpu"
    without importing torch (1-2 s): a cache hit, whose key holds the device, stays fast."""
    if sys.platform.startswith("linux") and "torch" not in sys.modules and not any(map(os.path.exists, _GPU_NODES)):
        return "cpu"
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

    # Optional: ``placement(spec, options) -> (device, dtype)``, the resolved device and dtype
    # a run will use (they enter the request key), and ``estimate_bytes(spec, options)``, the
    # memory a load will take (the model cache evicts before loading), and ``check(spec, options)``,
    # which raises for options the model's files (read cheaply, nothing loaded) show it cannot run.

    def load(self, spec: ModelSpec, options: Options) -> Loaded: ...

    def generate(self, loaded: Loaded, request: Request, sink: Sink) -> Result:
        """Run the request, emitting events to ``sink`` and honouring ``sink.cancelled``.

        On KeyboardInterrupt or cancellation it returns the partial result with
        ``status="interrupted"`` and leaves the loaded model usable.
        """

    def unload(self, loaded: Loaded) -> None: ...
