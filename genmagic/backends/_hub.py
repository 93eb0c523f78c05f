"""Finding a model's files: a local folder, or a hub id already in the local HF cache."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import ModelNotFoundError
from ..registry import dir_fingerprint, split_scale


def looks_like_hub_id(source: str) -> bool:
    return source.count("/") == 1 and not source.startswith((".", "/", "~")) and not Path(source).exists()


def cached_file(repo_id: str, filename: str, revision: str | None = None) -> str | None:
    """The path of ``filename`` of ``repo_id`` in the local HF cache, or None (never downloads)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    try:
        found = try_to_load_from_cache(repo_id, filename, revision=revision)
    except Exception:  # an invalid repo id
        return None
    return found if isinstance(found, str) else None


def local_folder(source: str, marker: str, revision: str | None = None) -> str | None:
    """A folder holding ``marker`` for a local path or a cached hub id, else None."""
    if os.path.isdir(source):
        return source if os.path.isfile(os.path.join(source, marker)) else None
    if looks_like_hub_id(source):
        found = cached_file(source, marker, revision)
        return os.path.dirname(found) if found else None
    return None


def require_folder(source: str, marker: str, revision: str | None = None) -> str:
    folder = local_folder(source, marker, revision)
    if folder is None:
        if os.path.isdir(source):
            raise ModelNotFoundError(f"{source!r} has no {marker}; point -m at a saved model folder")
        raise ModelNotFoundError(
            f"model {source!r} is not in the local Hugging Face cache; fetch it where there is network "
            f"with `hf download {source}`, or point -m at a local folder"
        )
    return folder


def fingerprint(source: str, marker: str, adapters: tuple[str, ...] = (), revision: str | None = None) -> str:
    folder = require_folder(source, marker, revision)
    parts = [dir_fingerprint(folder)]
    for adapter in adapters:
        path, scale = split_scale(adapter)
        part = dir_fingerprint(path) if os.path.isdir(path) else path
        parts.append(part if scale == 1.0 else f"{part}*{scale:g}")
    return "+".join(parts)


def read_json(path: str) -> dict[str, Any]:
    """A JSON object from a model file; ``{}`` when it is missing or not an object."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
