"""Loaded models stay in memory across cells, in an LRU bounded by a memory budget."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from .backends import Loaded
from .options import Options
from .registry import ModelSpec, get_backend


class ModelCache:
    def __init__(self, budget_mb: int = 8192) -> None:
        self.budget_mb = budget_mb
        self._items: OrderedDict[tuple[Any, ...], Loaded] = OrderedDict()
        self._lock = threading.RLock()

    @staticmethod
    def _key(spec: ModelSpec, options: Options) -> tuple[Any, ...]:
        backend = get_backend(spec.backend)
        extra = backend.load_key(spec, options) if hasattr(backend, "load_key") else ()
        return (spec.backend, spec.source, spec.adapters, spec.revision, *extra)

    def get(self, spec: ModelSpec, options: Options) -> Loaded:
        key = self._key(spec, options)
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                loaded = self._items[key]
                if loaded.spec.alias != spec.alias:
                    loaded.spec = spec
                return loaded
            loaded = get_backend(spec.backend).load(spec, options)
            self._items[key] = loaded
            self._evict(keep=key)
            return loaded

    def _evict(self, keep: tuple[Any, ...]) -> None:
        budget = self.budget_mb * 2**20
        while self.total_bytes() > budget and len(self._items) > 1:
            oldest = next(k for k in self._items if k != keep)
            self._drop(oldest)

    def _drop(self, key: tuple[Any, ...]) -> None:
        loaded = self._items.pop(key)
        get_backend(loaded.spec.backend).unload(loaded)

    def total_bytes(self) -> int:
        return sum(item.nbytes for item in self._items.values())

    def loaded(self) -> list[Loaded]:
        with self._lock:
            return list(self._items.values())

    def is_loaded(self, spec: ModelSpec) -> Loaded | None:
        for item in self.loaded():
            if (item.spec.source, item.spec.adapters) == (spec.source, spec.adapters):
                return item
        return None

    def unload(self, name: str | None = None) -> list[str]:
        """Unload every model, or those whose alias or source is ``name``; returns their aliases."""
        gone = []
        with self._lock:
            for key, item in list(self._items.items()):
                if name is None or name in (item.spec.alias, item.spec.source):
                    self._drop(key)
                    gone.append(item.spec.alias)
        if gone:
            import gc

            gc.collect()
        return gone
