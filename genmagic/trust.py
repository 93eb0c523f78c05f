"""Trust in a project's ``genmagic.toml``, the way ``direnv allow`` or VS Code's workspace trust work.

A project file comes with a clone: it is someone else's code. Until the user trusts it, its
entries may not switch on ``trust_remote_code`` or ``allow_pickle`` (both run code from the
model folder), and its ``[defaults]`` may not point at a model that does; everything else in it
(aliases, sources, params) works as usual.

``%genmagic trust [PATH]`` / ``genmagic trust [PATH]`` records the file's sha256 in
``trusted.json`` in the user config dir (``$GENMAGIC_CONFIG_DIR``), and the fingerprint of each
local source folder of its risky entries (their ``modeling_*.py`` and weights: a ``git pull`` that
changes them changes what runs); a file or such a folder that changes needs trusting again.
This module imports nothing of the package but its errors: the registry passes the
config dir, the parsed file's digest and the fingerprint functions in.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import tomllib

from .errors import GenmagicError, command, management

STORE_NAME = "trusted.json"
RISKY_FLAGS = ("trust_remote_code", "allow_pickle")


class UntrustedFileError(GenmagicError, PermissionError):
    """A project file that is not trusted (or changed since) asks to run model code."""


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_store(config_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((config_dir / STORE_NAME).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _store(config_dir: Path) -> dict[str, str]:
    """``{absolute path: sha256}``; a missing or unreadable store trusts nothing."""
    files = _read_store(config_dir).get("files")
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def _sources(config_dir: Path) -> dict[str, dict[str, str]]:
    """``{absolute path: {source folder: fingerprint at trust time}}``."""
    found = _read_store(config_dir).get("sources")
    if not isinstance(found, dict):
        return {}
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in found.items() if isinstance(v, dict)}


def _key(path: Path) -> str:
    return str(path.expanduser().resolve())


def is_trusted(path: Path, config_dir: Path, digest: str | None = None) -> bool:
    """True when ``path`` is trusted exactly as it is now (same sha256), or as it was when it
    was parsed, when that parse's ``digest`` is given (no window between parse and check)."""
    try:
        return _store(config_dir).get(_key(path)) == (digest or file_digest(path))
    except OSError:
        return False


def risky_entries(path: Path) -> list[str]:
    """The ``models`` entries of a config file that set a risky flag: ``"alias (flag, ...)"``."""
    try:
        with open(path, "rb") as fh:
            models = tomllib.load(fh).get("models") or {}
    except (OSError, tomllib.TOMLDecodeError):
        return []
    out = []
    for alias, entry in models.items():
        flags = [f for f in RISKY_FLAGS if isinstance(entry, dict) and entry.get(f) is True]
        if flags:
            out.append(f"{alias} ({', '.join(flags)})")
    return out


def trust_file(path: str | os.PathLike[str], config_dir: Path,
               folders: Callable[[Path, bytes], dict[str, str]] | None = None) -> str:
    """Record ``path``'s current sha256 as trusted, with ``folders(path, content)``: the
    fingerprints of its risky entries' source folders; returns a one-line summary."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise GenmagicError(f"trust {path}: no such file; pass the path of the project's genmagic.toml")
    raw = file.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    files, sources = _store(config_dir), _sources(config_dir)
    files[_key(file)] = digest
    sources[_key(file)] = folders(file, raw) if folders else {}
    config_dir.mkdir(parents=True, exist_ok=True)
    tmp = config_dir / f".{STORE_NAME}.{os.getpid()}.tmp"
    store = {"version": 2, "files": files, "sources": sources}
    tmp.write_text(json.dumps(store, indent=2, sort_keys=True) + "\n", "utf-8")
    tmp.replace(config_dir / STORE_NAME)
    enabled = risky_entries(file)
    what = f"; it may now enable {', '.join(enabled)}" if enabled else ""
    return f"trusted {_key(file)} (sha256 {digest[:12]}){what}. A changed file needs trusting again."


def require_trusted(spec: Any, path: Path, config_dir: Path, *, via_default: bool = False,
                    digest: str | None = None, fingerprint: Callable[[str], str] | None = None,
                    sends_to: str | None = None) -> None:
    """Raise :class:`UntrustedFileError` when ``spec`` (from, or made the default by, the project
    file ``path``, whose parsed content had sha256 ``digest``) sets a risky flag, or is a served
    model (``sends_to``: the URL prompts and its API key would go to), and ``path`` is not
    trusted as it is, or ``spec``'s source folder changed since (by ``fingerprint``)."""
    flags = [f for f in RISKY_FLAGS if getattr(spec, f, False)] + ([f"base_url = {sends_to}"] if sends_to else [])
    where = _key(path)
    if flags and is_trusted(path, config_dir, digest):
        if fingerprint is None or spec.origin != "project" or not os.path.isdir(spec.source):
            return
        recorded = _sources(config_dir).get(where, {}).get(spec.source)
        if recorded == fingerprint(spec.source):
            return
        quoted = shlex.quote(where)
        raise UntrustedFileError(
            f"model {spec.alias!r} sets {' and '.join(flags)} in {where}, and its source folder {spec.source} "
            f"{'has changed (code or weights) since' if recorded else 'was not recorded when'} you trusted that file, "
            f"so it may not run model code; if you trust the folder as it is now, run {command(f'trust {quoted}')}"
        )
    if not flags:
        return
    state = "has changed since you trusted it" if where in _store(config_dir) else "is not trusted yet"
    what = (
        f"{where} makes {spec.alias!r} the default {spec.kind} model, and that model sets {' and '.join(flags)}"
        if via_default and spec.origin != "project"
        else f"model {spec.alias!r} sets {' and '.join(flags)} in {where}"
    )
    quoted = shlex.quote(where)
    raise UntrustedFileError(
        f"{what}, but that project file {state}, so it may not run model code{' or send prompts to a server' if sends_to else ''}; if you trust it, run "
        f"{command(f'trust {quoted}')}"
    )


def trust_command(path: str | None, registry: Any) -> str:
    """``%genmagic trust [PATH]`` / ``genmagic trust [PATH]``: without PATH, the registry's project file."""
    if path is None:
        found = [p for origin, p in registry.config_files() if origin == "project"]
        if not found:
            raise GenmagicError(
                f"no genmagic.toml in {Path.cwd()} or a folder above it; pass its path: {management()} trust PATH"
            )
        path = str(found[0])
    config_dir = next(p for origin, p in registry.config_files() if origin == "user").parent
    return trust_file(path, config_dir, registry.risky_folders)
