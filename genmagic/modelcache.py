"""Loaded models stay in memory across cells, in an LRU bounded by a memory budget.

A loaded model is keyed by what it was loaded from: the model (backend, source, adapters
with their scales, and the backend's optional ``model_key``: a served model's name), the
weight fingerprint (which covers the adapters' files) and the backend's ``load_key`` (device,
dtype; a served model's client settings). Weights re-saved in place get a new fingerprint,
so the next run loads them afresh and the stale copy of that model and load is dropped.

A fingerprint may learn more at the load (a served model's identity, which the server tells
only then): the loaded model is filed under the fingerprint its backend gives after the load,
which is the one the next run computes, so that run finds it without loading again.
"""

from __future__ import annotations

import gc
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from .backends import Loaded
from .errors import GenmagicError
from .options import Options
from .registry import ModelSpec, Registry, get_backend


def free_memory() -> None:
    """Return freed tensors' memory: ``gc.collect()``, then the CUDA cache when CUDA is there."""
    gc.collect()
    import sys

    torch = sys.modules.get("torch")  # never import torch just to free nothing
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class ModelCache:
    def __init__(self, budget_mb: int = 8192, registry: Registry | None = None) -> None:
        self.budget_mb = budget_mb
        self.registry = registry  # resolves aliases for unload(name)
        self._items: OrderedDict[tuple[Any, ...], Loaded] = OrderedDict()
        self._lock = threading.RLock()

    @staticmethod
    def _key(spec: ModelSpec, options: Options, fingerprint: str) -> tuple[Any, ...]:
        """(the model, its fingerprint, how it is loaded)."""
        backend = get_backend(spec.backend)
        extra = backend.load_key(spec, options) if hasattr(backend, "load_key") else ()
        return (_model(spec), fingerprint, tuple(extra))

    def get(self, spec: ModelSpec, options: Options, fingerprint: str | None = None) -> Loaded:
        """The loaded model for ``spec`` with these weights (``fingerprint``, computed when
        not given) and options' device/dtype; loads it, evicting first if the budget needs it."""
        backend = get_backend(spec.backend)
        if fingerprint is None:
            fingerprint = backend.fingerprint(spec)
        key = self._key(spec, options, fingerprint)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                loaded = self._items[key]
                if loaded.spec.alias != spec.alias:
                    loaded.spec = spec
                return loaded
            for old in [k for k in self._items if k[0] == key[0] and k[2] == key[2] and k[1] != fingerprint]:
                self._drop(old)  # the same model and load with older weights: never used again
            estimate = getattr(backend, "estimate_bytes", None)
            self._evict(int(estimate(spec, options)) if callable(estimate) else 0)
            loaded = backend.load(spec, options)
            key = self._key(spec, options, backend.fingerprint(spec))  # what the load learnt (see above)
            if key in self._items:  # loaded meanwhile under the fingerprint it has now
                self._drop(key, collect=False)
            self._items[key] = loaded
            self._evict(0, keep=key)  # the estimate may have been low
            return loaded

    def holds(self, spec: ModelSpec, options: Options, fingerprint: str) -> bool:
        """Whether :meth:`get` would answer without loading."""
        with self._lock:
            return self._key(spec, options, fingerprint) in self._items

    def _evict(self, incoming: int, keep: tuple[Any, ...] | None = None) -> None:
        """Unload the least recently used models until ``incoming`` more bytes fit the budget
        (a model larger than the budget still loads, alone)."""
        budget = self.budget_mb * 2**20
        dropped = False
        while self.total_bytes() + incoming > budget:
            oldest = next((k for k in self._items if k != keep), None)
            if oldest is None:
                break
            self._drop(oldest, collect=False)
            dropped = True
        if dropped:
            free_memory()

    def _drop(self, key: tuple[Any, ...], collect: bool = True) -> None:
        loaded = self._items.pop(key)
        get_backend(loaded.spec.backend).unload(loaded)
        if collect:
            free_memory()

    def total_bytes(self) -> int:
        return sum(item.nbytes for item in self._items.values())

    def loaded(self) -> list[Loaded]:
        with self._lock:
            return list(self._items.values())

    def is_loaded(self, spec: ModelSpec) -> Loaded | None:
        for item in self.loaded():
            if _same_model(item.spec, spec):
                return item
        return None

    def memory_by_alias(self, specs: Iterable[ModelSpec]) -> dict[str, str]:
        """The memory column of a models table: each loaded model's size shown once, on the
        alias it was last used by (or the first alias naming it); its other aliases say
        which alias holds it."""
        specs = list(specs)
        held: dict[str, list[int]] = {}  # owner alias -> bytes of each load (one per device/dtype)
        shown_as: dict[str, str] = {}
        for item in self.loaded():
            aliases = [s.alias for s in specs if _same_model(s, item.spec)]
            if not aliases:
                continue
            owner = item.spec.alias if item.spec.alias in aliases else aliases[0]
            held.setdefault(owner, []).append(item.nbytes)
            shown_as.update({alias: owner for alias in aliases if alias != owner})
        out = {alias: f"(as {owner})" for alias, owner in shown_as.items() if alias not in held}
        for owner, sizes in held.items():
            out[owner] = f"{sum(sizes) / 2**20:.1f} MB" + (f" ({len(sizes)} loads)" if len(sizes) > 1 else "")
        return out

    def unload(self, name: str | None = None) -> list[str]:
        """Unload every model, or the model(s) ``name`` stands for: an alias (any alias of
        the same source and adapters), a source path or hub id; returns their aliases."""
        targets: list[ModelSpec] = []
        if name is not None and self.registry is not None:
            for kind in {item.spec.kind for item in self.loaded()}:
                try:
                    targets.append(self.registry.resolve(name, kind))
                except GenmagicError:  # not a model of this kind: no match
                    continue
        gone = []
        with self._lock:
            for key, item in list(self._items.items()):
                if (
                    name is None
                    or name in (item.spec.alias, item.spec.source)
                    or any(_same_model(t, item.spec) for t in targets)
                ):
                    self._drop(key, collect=False)
                    gone.append(item.spec.alias)
        if gone:
            free_memory()
        return gone


def _model(spec: ModelSpec) -> tuple[Any, ...]:
    """What makes two aliases the same model: backend, source, adapters and the backend's
    optional ``model_key`` (the model a server serves under one base_url)."""
    try:
        backend = get_backend(spec.backend)
    except GenmagicError:  # an entry whose backend is unknown (its source is not there yet): never loaded
        return (spec.backend, spec.source, spec.adapters)
    extra = backend.model_key(spec) if hasattr(backend, "model_key") else ()
    return (spec.backend, spec.source, spec.adapters, *extra)


def _same_model(a: ModelSpec, b: ModelSpec) -> bool:
    return _model(a) == _model(b)
