"""Models and backends: one registry.

Model specs come from (later overrides earlier): the built-ins, the user config file
(``$GENMAGIC_CONFIG_DIR/config.toml``, default the XDG config dir), the project file
(``genmagic.toml`` in the working directory or a parent), then the session
(``%genmagic register``). A name that is not an alias may be a local directory or a hub
id; each backend says whether it recognises it.

Backends arrive through the ``genmagic.backends`` entry-point group, the built-in ones
too; :func:`register_backend` adds one at run time (tests, notebooks).
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

import tomllib

from .errors import ModelNotFoundError, OptionError, command

PACKAGE_MODELS = Path(__file__).parent / "models"
ENTRY_POINT_GROUP = "genmagic.backends"
# Used only when the package's own entry points are not installed (running from a checkout).
_BUILTIN_BACKENDS = {
    "transformers": "genmagic.backends.transformers_text:TransformersTextBackend",
    "diffusers": "genmagic.backends.diffusers_image:DiffusersImageBackend",
    "openai": "genmagic.backends.openai_compat:OpenAICompatBackend",
}


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    kind: str  # "text" | "image"
    backend: str  # a name in the genmagic.backends entry-point group
    source: str  # local directory, hub id or URL
    adapters: tuple[str, ...] = ()  # "PATH" or "PATH:SCALE" (see split_scale); all active together
    hub_revision: str | None = None  # a pinned hub revision (branch, tag or commit); TOML key `revision`
    allow_pickle: bool = False
    trust_remote_code: bool = False
    origin: str = "builtin"  # builtin | user | project | session | path
    params: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    description: str = ""
    config_file: str = field(default="", compare=False)  # the file the alias came from, if any
    # Backend-specific settings (a served model's base_url, model, api_key_env...), checked
    # against the backend's declared ``settings`` (see :class:`Setting`, :func:`check_settings`).
    settings: Mapping[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()


@dataclass(frozen=True)
class Setting:
    """One backend-specific key of a registry entry: its type(s), help, and an optional
    ``check(value) -> problem | None`` (the problem names what is wrong and the fix)."""

    help: str
    types: tuple[type, ...] = (str,)
    required: bool = False
    check: Callable[[Any], str | None] | None = None
    flag: str | None = None  # the `%genmagic register` option that sets it, if any
    secret: bool = False  # a wrong value may be a pasted key: an error never repeats it


# Keys of a registry entry that every backend understands; any other key is a backend setting.
ENTRY_KEYS = frozenset({"source", "kind", "backend", "adapters", "revision", "allow_pickle", "trust_remote_code",
                        "params", "description"})
# Secrets never go in a config file (it is often committed, and history records where a model came from).
_SECRET_KEYS = frozenset({"api_key", "apikey", "token", "password", "secret"})
# A conventional environment variable name: keys (sk-..., hf_..., gsk_..., xai-...) are lower case or hold "-"
_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def is_env_name(value: Any) -> str | None:
    """A :class:`Setting` check: ``value`` names an environment variable (not a key itself).
    The problem never repeats the value: it may be a pasted key."""
    if isinstance(value, str) and _ENV_NAME.fullmatch(value):
        return None
    return ("must name an environment variable (upper-case letters, digits, _; e.g. TEAM_KEY), not hold the key "
            "itself; put the key in that variable")


def check_settings(spec: ModelSpec, declared: Mapping[str, Setting] | None, source_key: str | None = None) -> None:
    """Check ``spec.settings`` against a backend's declared settings: one-line errors naming the
    alias, the key and the file. A backend that declares none keeps the old behaviour (other
    keys are ignored), so existing registry files still read."""
    where = _where(spec)
    for key in spec.settings:
        if key.lower() in _SECRET_KEYS:
            raise ModelNotFoundError(
                f"model {spec.alias!r} ({where}) has {key} = ...: secrets never go in a config file; put the key in "
                "an environment variable and name it with api_key_env = \"VAR\" (--api-key-env VAR)"
            )
    if declared is None:
        return
    for key, value in spec.settings.items():
        if key == source_key and value != spec.source:
            raise ModelNotFoundError(
                f"model {spec.alias!r} ({where}) has source = {spec.source!r} and {key} = {value!r}; keep one of them"
            )
        setting = declared.get(key)
        if setting is None:
            close = difflib.get_close_matches(key, list(declared), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ModelNotFoundError(
                f"model {spec.alias!r} ({where}) has unknown key {key!r} for backend {spec.backend!r}; "
                f"{hint}valid: {', '.join(sorted(ENTRY_KEYS | set(declared)))}"
            )
        problem = None
        if (isinstance(value, bool) and bool not in setting.types) or not isinstance(value, setting.types):
            words = ("number" if t in (int, float) else {str: "text", bool: "true/false"}.get(t, t.__name__)
                     for t in setting.types)
            names = " or ".join(dict.fromkeys(words))  # int and float are both "number", said once
            problem = f"must be {names}"
        elif setting.check is not None:
            problem = setting.check(value)
        if problem:
            shown = "(the value is not repeated: it may be a key)" if setting.secret else f"= {_masked(value)!r}"
            raise ModelNotFoundError(f"model {spec.alias!r} ({where}): {key} {shown} {problem}")
    missing = [key for key, setting in declared.items() if setting.required and key not in spec.settings]
    if missing:
        flag = declared[missing[0]].flag
        how = f" (--{flag} with {command('register')})" if flag else ""
        raise ModelNotFoundError(f"model {spec.alias!r} ({where}) needs {missing[0]} = ...{how}; {declared[missing[0]].help}")


def _masked(value: Any) -> Any:
    """``value`` for an error message: a URL's password, query and fragment (where keys hide) masked."""
    if not isinstance(value, str) or "://" not in value:
        return value
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(value)
        netloc = parts.netloc
        if parts.username or parts.password:
            netloc = "***@" + netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "",
                           "***" if parts.fragment else ""))
    except ValueError:
        return "(a malformed URL)"


def builtin_specs() -> list[ModelSpec]:
    return [
        ModelSpec(
            alias="tiny-text",
            kind="text",
            backend="transformers",
            source=str(PACKAGE_MODELS / "tiny-text"),
            description="embedded demo model (Llama-style, a few M parameters)",
        ),
        ModelSpec(
            alias="tiny-image",
            kind="image",
            backend="diffusers",
            source=str(PACKAGE_MODELS / "tiny-image"),
            description="embedded demo model (Stable Diffusion in miniature, 64x64)",
        ),
    ]


# An embedded model's alias, written as a config entry's `source`, means its folder in the installed package.
BUILTIN_SOURCES = {s.alias: s.source for s in builtin_specs()}


# --------------------------------------------------------------------------- paths


def home_dir() -> Path:
    """Where history and blobs live: ``$GENMAGIC_HOME`` or the XDG data dir."""
    env = os.environ.get("GENMAGIC_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("genmagic"))


def user_config_path() -> Path:
    return _user_config_path(os.environ.get("GENMAGIC_CONFIG_DIR"), os.environ.get("XDG_CONFIG_HOME"))


@cache
def _user_config_path(env: str | None, xdg: str | None) -> Path:
    if env:
        return Path(env).expanduser() / "config.toml"
    import platformdirs

    return Path(platformdirs.user_config_dir("genmagic")) / "config.toml"


def project_config_path(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "genmagic.toml"
        if candidate.is_file():
            return candidate
    return None


# --------------------------------------------------------------------------- backends

_runtime_backends: dict[str, Any] = {}
_backend_instances: dict[str, Any] = {}


def register_backend(name: str, backend: Any) -> None:
    """Add (or replace) a backend class or instance under ``name`` for this process."""
    _runtime_backends[name] = backend
    _backend_instances.pop(name, None)


def unregister_backend(name: str) -> None:
    _runtime_backends.pop(name, None)
    _backend_instances.pop(name, None)


@cache
def _entry_points() -> dict[str, str]:
    found = {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    for name, value in _BUILTIN_BACKENDS.items():
        found.setdefault(name, value)
    return found


def backend_names() -> list[str]:
    return sorted(set(_entry_points()) | set(_runtime_backends))


_broken: set[str] = set()


def usable_backends() -> Iterator[tuple[str, Any]]:
    """Every backend that imports; a broken plugin is reported once and skipped."""
    for name in backend_names():
        try:
            yield name, get_backend(name)
        except ModelNotFoundError:
            raise
        except Exception as err:
            if name not in _broken:
                _broken.add(name)
                import warnings

                warnings.warn(f"genmagic backend {name!r} failed to load and is skipped: {err}", stacklevel=2)


def get_backend(name: str) -> Any:
    """The backend instance for ``name`` (imported on first use: no torch at load time)."""
    if name in _backend_instances:
        return _backend_instances[name]
    if name in _runtime_backends:
        obj = _runtime_backends[name]
    elif name in _entry_points():
        obj = metadata.EntryPoint(name=name, value=_entry_points()[name], group=ENTRY_POINT_GROUP).load()
    else:
        raise ModelNotFoundError(
            f"no backend named {name!r}; installed backends: {', '.join(backend_names())}"
        )
    instance = obj() if isinstance(obj, type) else obj
    _backend_instances[name] = instance
    return instance


# --------------------------------------------------------------------------- fingerprints


# Files up to this size are hashed whole (about 25 ms for the 18 MB tiny-text, once per stamp);
# bigger shards by their first and last MiB, so a 15 GB model does not cost ~15 s per process.
_WHOLE_FILE_HASH = 64 << 20


@cache
def _dir_fingerprint(path: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    h = hashlib.sha256()
    for rel, size, mtime_ns in stamp:
        h.update(f"{rel}:{size}:{mtime_ns}\n".encode())
        with open(os.path.join(path, rel), "rb") as fh:
            if size <= _WHOLE_FILE_HASH:
                h.update(hashlib.file_digest(fh, "sha256").digest())
                continue
            h.update(fh.read(1 << 20))
            fh.seek(-(1 << 20), os.SEEK_END)
            h.update(fh.read())
    return h.hexdigest()[:16]


# Every file from_pretrained may read: weights, configs, tokenizers, chat templates, and the code
# run under trust_remote_code (modeling_*.py, a custom pipeline.py).
_FINGERPRINT_SUFFIXES = (
    ".json", ".safetensors", ".bin", ".model", ".txt", ".jinja", ".pt", ".pth", ".ckpt", ".gguf",
    ".py", ".tiktoken", ".yaml", ".yml", ".msgpack", ".h5", ".npz", ".onnx", ".spm", ".vocab",
)


def hub_snapshot_commit(path: str | os.PathLike[str]) -> str | None:
    """The commit hash of a Hugging Face cache snapshot folder
    (``.../models--org--name/snapshots/<commit>``), else None."""
    rest, commit = os.path.split(os.path.normpath(os.fspath(path)))
    repo, snapshots = os.path.split(rest)
    if snapshots == "snapshots" and os.path.basename(repo).startswith(("models--", "datasets--")):
        return commit
    return None


def dir_fingerprint(path: str | os.PathLike[str]) -> str:
    """A fingerprint of a model folder that changes whenever its weights change.

    A Hugging Face cache snapshot is named by its commit: the fingerprint is that commit.
    Any other folder: a hash of each weight/config file's relative name, size and mtime
    (nanoseconds) plus its first and last MiB. Saving a file again changes its mtime, so a
    change anywhere in a file (a fine-tuning loop re-saving in place) changes the
    fingerprint; copying a folder without keeping mtimes only costs a cache miss.
    Computed once per file stamp (the sizes and mtimes), so it is cheap to call per run.
    """
    commit = hub_snapshot_commit(path)
    if commit is not None:
        return "hub-" + commit
    root = str(path)
    stamp = []
    seen: set[str] = set()  # real folders walked: a symlinked sub-folder is followed once (no loops)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(_FINGERPRINT_SUFFIXES):
                full = os.path.join(dirpath, name)
                st = os.stat(full)
                stamp.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))
    return _dir_fingerprint(root, tuple(stamp))


# --------------------------------------------------------------------------- registry


def split_scale(value: str) -> tuple[str, float]:
    """``PATH[:SCALE]`` → (path, scale): the syntax of an adapter in a registry entry's
    ``adapters``, ``%genmagic register --adapter`` and ``--lora``. A missing (or non-numeric)
    scale is 1, so a path that itself holds a colon still works."""
    head, sep, tail = value.rpartition(":")
    if sep and head:
        try:
            return head, float(tail)
        except ValueError:
            pass
    return value, 1.0


def _adapter_entry(value: str, base: Path) -> str:
    """An adapter entry with its path made absolute (relative to ``base``) and its scale kept."""
    path, scale = split_scale(value)
    expanded = Path(path).expanduser()
    if path.startswith(("./", "../")):
        path = str((base / expanded).resolve())
    elif expanded.exists():
        path = str(expanded.resolve())
    return path if scale == 1.0 else f"{path}:{scale:g}"


def _read_toml(path: Path) -> dict[str, Any]:
    return _parse_toml(path, path.read_bytes())


def _parse_toml(path: Path, raw: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ModelNotFoundError(f"cannot read {path}: {err}; fix the TOML syntax") from None


def _flag(entry: Mapping[str, Any], key: str, alias: str, where: str) -> bool:
    """A boolean key of a registry entry; a string such as ``"false"`` is an error, not True."""
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ModelNotFoundError(
            f"model {alias!r} in {where}: {key} = {value!r} is not a boolean; "
            f"write {key} = true or {key} = false (no quotes)"
        )
    return value


def _specs_from_config(data: Mapping[str, Any], origin: str, base: Path, file: str = "") -> Iterator[ModelSpec]:
    for alias, entry in (data.get("models") or {}).items():
        if isinstance(entry, Mapping) and "source" not in entry:  # a served model: its URL is its source
            entry = {**entry, "source": _source_setting(entry)}
        if not isinstance(entry, Mapping) or entry["source"] is None:
            raise ModelNotFoundError(f"model {alias!r} in the {origin} config needs a `source`")
        source = str(entry["source"])
        source = BUILTIN_SOURCES.get(source, source)  # `source = "tiny-text"`: the embedded model, wherever installed
        if source.startswith(("./", "../")) or source in (".", ".."):
            source = str((base / source).resolve())
        adapters = tuple(_adapter_entry(str(a), base) for a in entry.get("adapters", ()))
        yield ModelSpec(
            alias=alias,
            kind=str(entry.get("kind", "")),
            backend=str(entry.get("backend", "")),
            source=os.path.expanduser(source),
            adapters=adapters,
            hub_revision=entry.get("revision"),
            allow_pickle=_flag(entry, "allow_pickle", alias, file or f"the {origin} config"),
            trust_remote_code=_flag(entry, "trust_remote_code", alias, file or f"the {origin} config"),
            origin=origin,
            params=dict(entry.get("params", {})),
            description=str(entry.get("description", "")),
            config_file=file,
            settings={k: v for k, v in entry.items() if k not in ENTRY_KEYS},
        )


def _check_backend_settings(spec: ModelSpec) -> Any:
    """Check a spec's settings against its backend's declaration; the backend instance."""
    backend = get_backend(spec.backend)
    check_settings(spec, getattr(backend, "settings", None), getattr(backend, "source_setting", None))
    return backend


def _source_setting(entry: Mapping[str, Any]) -> Any:
    """The source of an entry that has none: the setting its backend names as its source
    (``base_url`` for a served model), else None."""
    try:
        name = getattr(get_backend(str(entry.get("backend", ""))), "source_setting", None)
    except ModelNotFoundError:
        return None
    return entry.get(name) if name else None


_BACKEND_URL = re.compile(r"([A-Za-z][\w.-]*):(https?://.*)")


def split_backend_url(source: str) -> tuple[str | None, str]:
    """``openai:http://host:8000/v1`` → ("openai", "http://host:8000/v1"): a served model's
    source names its backend; any other source comes back as it is, with None."""
    match = _BACKEND_URL.fullmatch(source)
    return (match.group(1), match.group(2)) if match else (None, source)


class Registry:
    """Aliases → :class:`ModelSpec`, plus the default model per kind."""

    def __init__(self, project_file: Path | None = None, user_file: Path | None = None) -> None:
        self._project_file = project_file
        self._user_file = user_file
        self._session: dict[str, ModelSpec] = {}
        self._session_defaults: dict[str, str] = {}
        self._loaded_stamp: tuple[Any, ...] | None = None
        self._specs: dict[str, ModelSpec] = {}
        self._defaults: dict[str, str] = {}
        self._safety: dict[str, dict[str, tuple[Any, Path]]] = {}  # origin -> [safety] key -> (value, file)
        self._presets: list[tuple[str, Path, Any]] = []  # (origin, file, its [presets] table), user first
        # the project file, the kinds whose default it sets, the sha256 of the bytes that were parsed
        self._project: tuple[Path, frozenset[str], str] | None = None

    # -- files
    def config_files(self) -> list[tuple[str, Path]]:
        files = [("user", self._user_file or user_config_path())]
        project = self._project_file or project_config_path()
        if project is not None:
            files.append(("project", project))
        return files

    def _refresh(self) -> None:
        files = self.config_files()
        stamp = tuple((str(p), p.stat().st_mtime_ns if p.is_file() else None) for _, p in files)
        if stamp == self._loaded_stamp:
            return
        specs = {s.alias: s for s in builtin_specs()}
        defaults = {"text": "tiny-text", "image": "tiny-image"}
        project = None
        safety: dict[str, dict[str, tuple[Any, Path]]] = {}
        presets: list[tuple[str, Path, Any]] = []
        for origin, path in files:
            if not path.is_file():
                continue
            raw = path.read_bytes()
            data = _parse_toml(path, raw)
            if origin == "project":
                project = (path, frozenset(data.get("defaults") or {}), hashlib.sha256(raw).hexdigest())
            for spec in _specs_from_config(data, origin, path.parent, str(path)):
                specs[spec.alias] = spec
            defaults.update({k: str(v) for k, v in (data.get("defaults") or {}).items()})
            section = data.get("safety") or {}
            if not isinstance(section, dict):
                raise OptionError(f"{path}: [safety] must be a table, e.g. [safety] level = \"strict\"")
            safety[origin] = {k: (v, path) for k, v in section.items()}
            if "presets" in data:
                presets.append((origin, path, data["presets"]))
        self._specs, self._defaults, self._loaded_stamp, self._project = specs, defaults, stamp, project
        self._safety, self._presets = safety, presets

    def preset_tables(self) -> list[tuple[str, Path, Any]]:
        """``(origin, file, its [presets] table)`` of the config files, the user's before the project's:
        plain data, checked by :mod:`genmagic.presets`."""
        self._refresh()
        return list(self._presets)

    def _safety_entry(self, key: str) -> tuple[Any, str, Path] | None:
        """The ``[safety] key`` that applies: the project file's when the user trusts it or the user
        config does not set the key, else the user config's (a cloned repository cannot replace the
        user's own choices); ``(value, origin, file)``."""
        self._refresh()
        user, project = self._safety.get("user", {}).get(key), self._safety.get("project", {}).get(key)
        if project is not None and (user is None or self._project_trusted()):
            return project[0], "project", project[1]
        return (user[0], "user", user[1]) if user is not None else None

    def _project_trusted(self) -> bool:
        if self._project is None:
            return False
        from .trust import is_trusted

        return is_trusted(self._project[0], (self._user_file or user_config_path()).parent, self._project[2])

    def safety_setting(self, key: str) -> Any:
        """A ``[safety]`` value from the config files (see :meth:`_safety_entry`), or None."""
        entry = self._safety_entry(key)
        return entry[0] if entry else None

    def safety_path(self, key: str) -> str | None:
        """A ``[safety]`` path (e.g. ``image_classifier``), relative to the config file that set it."""
        entry = self._safety_entry(key)
        if entry is None:
            return None
        value, _, path = entry
        if not isinstance(value, str) or not value:
            raise OptionError(f"[safety] {key} in {path} must be a folder path (a string), got {value!r}")
        return str((path.parent / os.path.expanduser(value)).resolve())

    def safety_level(self) -> str | None:
        """The config files' ``[safety] level``: the user config's, or a project file's when it is at
        least as strict (``standard`` when the user sets none) or the user trusts that file (a cloned
        repository must not switch checks off)."""
        from .safety.labels import LEVELS, check_level

        self._refresh()
        user, project = self._safety.get("user", {}).get("level"), self._safety.get("project", {}).get("level")
        mine = check_level(str(user[0]), f"[safety] level in {user[1]}:") if user else None
        if project is None:
            return mine
        theirs = check_level(str(project[0]), f"[safety] level in {project[1]}:")
        if LEVELS.index(theirs) >= LEVELS.index(mine or "standard") or self._project_trusted():
            return theirs
        _warn_once(f"{project[1]} sets [safety] level = {theirs!r}, which lowers the checks; ignored until "
                   f"you trust the file ({command('trust')} {project[1]})")
        return mine

    @staticmethod
    def risky_folders(path: Path, raw: bytes) -> dict[str, str]:
        """``{source folder: dir_fingerprint}`` of the entries of the project file ``path`` (whose
        content is ``raw``) that set ``trust_remote_code`` or ``allow_pickle`` (for ``trust``)."""
        specs = _specs_from_config(_parse_toml(path, raw), "project", path.parent, str(path))
        folders = {s.source for s in specs if (s.trust_remote_code or s.allow_pickle) and os.path.isdir(s.source)}
        return {folder: dir_fingerprint(folder) for folder in sorted(folders)}

    def specs(self) -> list[ModelSpec]:
        self._refresh()
        merged = {**self._specs, **self._session}
        return [self._complete(s) for s in merged.values()]

    def aliases(self) -> list[str]:
        self._refresh()
        return sorted({**self._specs, **self._session})

    # -- defaults
    def default(self, kind: str) -> str:
        self._refresh()
        return self._session_defaults.get(kind) or self._defaults.get(kind) or f"tiny-{kind}"

    def set_default(self, kind: str, name: str, persist: bool = False) -> None:
        self.resolve(name, kind)  # fail early on an unknown model
        self._session_defaults[kind] = name
        if persist:
            self._write_user({"defaults": {kind: name}})

    # -- registration
    def register(
        self,
        alias: str,
        source: str,
        *,
        kind: str | None = None,
        backend: str | None = None,
        adapters: Iterable[str] = (),
        persist: bool = False,
        settings: Mapping[str, Any] | None = None,
        **extra: Any,
    ) -> ModelSpec:
        named, url = split_backend_url(source)
        prefix, colon, rest = source.partition(":")
        if (named is None and colon and prefix in backend_names() and not Path(source).expanduser().exists()
                and getattr(get_backend(prefix), "source_setting", None)):  # a served model's backend: openai:URL
            raise OptionError(f"{source!r}: the server's URL needs http:// or https://, e.g. {prefix}:http://{rest}")
        if named is not None:  # openai:http://host:port/v1
            if backend and backend != named:
                raise OptionError(f"--backend {backend} contradicts the source {source!r}; leave --backend out")
            backend, source = named, url
            source_key = getattr(get_backend(named), "source_setting", None)
            settings = {**({source_key: url} if source_key else {}), **(settings or {})}
        if Path(source).expanduser().is_dir():
            source = str(Path(source).expanduser().resolve())
        adapters = tuple(_adapter_entry(a, Path.cwd()) for a in adapters)
        for adapter in adapters:  # a path must exist now; a hub id (org/name) is checked at load
            path = split_scale(adapter)[0]
            if not Path(path).is_dir() and (Path(path).is_absolute() or path.startswith(("~", ".")) or path.count("/") != 1):
                raise OptionError(
                    f"--adapter {adapter}: no such folder; give a LoRA folder saved by peft (with adapter_config.json), "
                    "optionally PATH:SCALE"
                )
        spec = ModelSpec(
            alias=alias,
            kind=kind or "",
            backend=backend or "",
            source=source,
            adapters=adapters,
            origin="session",
            config_file=str(self._user_file or user_config_path()) if persist else "",  # errors name where it goes
            params=dict(extra.pop("params", {})),
            settings=dict(settings or {}),
            **extra,
        )
        spec = self._complete(spec, strict=True)
        _check_backend_settings(spec)
        self._session[alias] = spec
        if persist:  # a served model's entry names its URL by its own key (base_url), not `source`
            source_key = getattr(get_backend(spec.backend), "source_setting", None)
            builtin = next((a for a, path in BUILTIN_SOURCES.items() if path == spec.source), spec.source)
            entry: dict[str, Any] = {} if source_key in spec.settings else {"source": builtin}
            entry.update(kind=spec.kind, backend=spec.backend)
            if spec.adapters:
                entry["adapters"] = list(spec.adapters)
            for name in ("allow_pickle", "trust_remote_code"):
                if getattr(spec, name):
                    entry[name] = True
            if spec.hub_revision:
                entry["revision"] = spec.hub_revision
            if spec.params:
                entry["params"] = dict(spec.params)
            entry.update(spec.settings)
            self._write_user({"models": {alias: entry}})
        return spec

    def unregister(self, alias: str) -> None:
        self._session.pop(alias, None)

    def _write_user(self, update: Mapping[str, Mapping[str, Any]]) -> None:
        import tomli_w

        path = self._user_file or user_config_path()
        data = _read_toml(path) if path.is_file() else {}
        for table, values in update.items():
            data.setdefault(table, {}).update(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(tomli_w.dumps(data).encode("utf-8"))
        tmp.replace(path)

    # -- resolution
    def _complete(self, spec: ModelSpec, strict: bool = False) -> ModelSpec:
        """Fill a spec's kind and backend by asking the backends, when the config left them out."""
        if spec.kind and spec.backend:
            _check_backend_settings(spec)
            return spec
        if spec.backend:
            backend = _check_backend_settings(spec)
            kind = spec.kind or backend.detect(spec.source) or backend.kinds[0]
            return replace(spec, kind=kind)
        for name, backend in usable_backends():
            if spec.kind and spec.kind not in backend.kinds:
                continue
            kind = backend.detect(spec.source)
            if kind and (not spec.kind or kind == spec.kind):
                return replace(spec, kind=kind, backend=name)
        if strict:
            raise ModelNotFoundError(
                f"cannot tell what kind of model {spec.source!r} is: it is not a local model folder "
                "or a hub id in the local cache; pass --kind and --backend, or fetch the model first"
            )
        return spec

    def resolve(self, name: str | None, kind: str) -> ModelSpec:
        """The spec for an alias, a local directory or a hub id, for a run of ``kind``."""
        self._refresh()
        by_default = not name and kind not in self._session_defaults
        name = name or self.default(kind)
        spec = self._session.get(name) or self._specs.get(name)
        if spec is not None:
            _check_source(spec)
            spec = self._complete(spec)
            if not spec.backend:
                raise ModelNotFoundError(
                    f"model {spec.alias!r} ({_where(spec)}) has source {spec.source!r}, which holds no model "
                    "this package can load (no config.json / model_index.json, or a hub id not in the local "
                    "cache); fix its `source`, or set `kind` and `backend` there"
                )
        else:
            spec = self._resolve_source(name, kind)
        if spec.kind and spec.kind != kind:
            raise ModelNotFoundError(
                f"model {name!r} is {_a(spec.kind)} model, not {_a(kind)} model; "
                f"pick {_a(kind)} model from {command('models')}"
            )
        if self._project and (spec.origin == "project" or (by_default and kind in self._project[1])):
            from .trust import require_trusted  # an untrusted project file may not run model code

            path, _, digest = self._project
            # nor send prompts (and the key its api_key_env names) to a server it chose
            remote = bool(getattr(get_backend(spec.backend), "remote", False)) if spec.backend else False
            require_trusted(spec, path, (self._user_file or user_config_path()).parent, via_default=by_default,
                            digest=digest, fingerprint=dir_fingerprint, sends_to=spec.source if remote else None)
        return spec

    def _resolve_source(self, name: str, kind: str) -> ModelSpec:
        expanded = os.path.expanduser(name)
        is_dir = os.path.isdir(expanded)
        source = str(Path(expanded).resolve()) if is_dir else name
        for backend_name, backend in usable_backends():
            if kind not in backend.kinds:
                continue
            found = backend.detect(source)
            if found:
                return ModelSpec(alias=name, kind=found, backend=backend_name, source=source, origin="path")
        if is_dir:
            raise ModelNotFoundError(
                f"{name!r} is a folder but holds no {kind} model this package can load "
                "(no config.json / model_index.json); point -m at a saved model folder"
            )
        looks_like_hub = name.count("/") == 1 and not name.startswith((".", "/", "~"))
        if looks_like_hub:
            raise ModelNotFoundError(
                f"model {name!r} is not in the local Hugging Face cache (no network or HF_HUB_OFFLINE=1); "
                f"fetch it where there is network with `hf download {name}`, or point -m at a local folder"
            )
        known = [s.alias for s in self.specs() if s.kind == kind]
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
        hint = f"did you mean {', '.join(close)}?" if close else f"known {kind} models: {', '.join(known) or 'none'}"
        raise ModelNotFoundError(
            f"unknown model {name!r}: {hint} (see {command('models')}, or "
            f"{command('register ALIAS PATH', shell='add the alias to genmagic.toml')})"
        )


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(f"genmagic: {message}", file=sys.stderr)


def _a(word: str) -> str:
    """``word`` with its indefinite article: "a text", "an image"."""
    return ("an " if word[:1].lower() in "aeiou" else "a ") + word


def _where(spec: ModelSpec) -> str:
    if spec.config_file:  # a session entry with a file is one `register --persist` writes there
        return f"{'for' if spec.origin == 'session' else 'from'} {spec.config_file}"
    return f"{spec.origin} registry"


def _check_source(spec: ModelSpec) -> None:
    """A registered alias whose source is a path that does not exist: name the alias, the
    config file it came from and the missing path."""
    source = spec.source
    if (os.path.isabs(source) or source.startswith(("~", "."))) and not os.path.exists(os.path.expanduser(source)):
        raise ModelNotFoundError(
            f"model {spec.alias!r} ({_where(spec)}) has source {source!r}, which does not exist; "
            "fix the path there, or copy the model to it"
        )
