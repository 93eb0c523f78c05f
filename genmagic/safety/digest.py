"""Digests of a check's code and data files (for ``policy.policy_key``), once per file stamp."""

from __future__ import annotations

import functools
import hashlib
import os


def files_digest(*paths: str | os.PathLike[str] | None) -> str:
    h = hashlib.sha256()
    for path in paths:
        if path:
            stat = os.stat(path)
            h.update(_file_digest(str(path), stat.st_size, stat.st_mtime_ns).encode())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime_ns: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()
