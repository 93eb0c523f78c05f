"""One path for every run: the magics, the CLI and the Python API all call :meth:`Engine.run`.

::

    Request ─ checks (prompt) ─ cache ─ registry.resolve ─ fingerprint ─ models.get (LRU) ─ backend.generate(sink)
            ─ checks (output) ─ history.record ─ Result

Nothing here knows a modality, a backend or a display: those live behind the backend
protocol, the options classes and the sink.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Protocol

from .backends import Loaded
from .errors import BlockedError, GenmagicError, OptionError
from .history import History
from .modelcache import ModelCache
from .options import Options, check_value
from .registry import ModelSpec, Registry, get_backend, home_dir
from .request import Event, NullSink, Request, Sink
from .results import Result, Verdict, result_class


class Check(Protocol):
    """A safety check: screens the prompt before the backend runs and the outputs after."""

    name: str

    def screen(self, text: str, stage: str, request: Request) -> list[Verdict]: ...


def _output_texts(result: Result) -> list[str]:
    return list(getattr(result, "texts", []) or [])


class Engine:
    def __init__(
        self,
        home: str | os.PathLike[str] | None = None,
        registry: Registry | None = None,
        budget_mb: int = 8192,
    ) -> None:
        self.registry = registry or Registry()
        self.history = History(home or home_dir())
        self.models = ModelCache(budget_mb, self.registry)
        self.checks: list[Check] = []

    # -- building requests
    def request(
        self,
        kind: str,
        prompt: str,
        options: Options,
        model: str | None = None,
        messages: tuple[tuple[str, str], ...] = (),
        inputs: Mapping[str, Any] | None = None,
        given: Collection[str] | None = None,
    ) -> Request:
        """Resolve the model, fingerprint it and fix the seed: a complete, reproducible request.

        ``given`` names the options the user set explicitly; the others take the model's
        defaults (see :meth:`model_defaults`). ``None`` means all of them were given.
        """
        spec = self.registry.resolve(model, kind)
        backend = get_backend(spec.backend)
        fingerprint = backend.fingerprint(spec)
        if given is not None:
            options = self.apply_defaults(spec, options, given)
        seed_given = True
        if hasattr(options, "seed") and options.seed is None and not _deterministic(options):
            options = options.replace(seed=random.SystemRandom().randrange(2**31))
            seed_given = False
        placement = getattr(backend, "placement", None)
        device, dtype = placement(spec, options) if callable(placement) else ("", "")
        check = getattr(backend, "check", None)
        if callable(check):
            check(spec, options)  # what the model's files already refuse, before any load
        return Request(
            kind=kind,
            prompt=prompt,
            model=spec.alias,
            options=options,
            fingerprint=fingerprint,
            messages=tuple(messages),
            device=device,
            dtype=dtype,
            inputs=dict(inputs or {}),
            seed_given=seed_given,
            spec=spec,
        )

    def model_defaults(self, spec: ModelSpec, kind: type[Options]) -> dict[str, tuple[Any, str]]:
        """Option defaults of one model, lowest precedence first: the model's own files
        (e.g. ``generation_config.json``, via the backend's optional ``defaults(spec)``), then
        the registry entry's ``params``. Values are ``(value, where it comes from)``."""
        fields = {f.name: f for f in kind.option_fields()}
        out: dict[str, tuple[Any, str]] = {}
        own = getattr(get_backend(spec.backend), "defaults", None)
        for name, value in (own(spec) if callable(own) else {}).items():
            if name in fields and name != "device":  # a model's files may suggest options, never where it runs
                try:  # a model file's odd value is skipped, not an error for the user
                    out[name] = (check_value(fields[name], value), "the model's generation config")
                except OptionError:
                    pass
        for name, value in spec.params.items():
            if name not in fields:
                raise OptionError(
                    f"model {spec.alias!r} ({spec.origin} registry) has params.{name}, which is not a "
                    f"{kind.kind} option; valid: {', '.join(sorted(fields))}"
                )
            try:
                out[name] = (check_value(fields[name], value), f"{spec.origin} registry params")
            except OptionError as err:
                raise OptionError(f"model {spec.alias!r} ({spec.origin} registry) params.{name}: {err}") from None
        return out

    def apply_defaults(self, spec: ModelSpec, options: Options, given: Collection[str]) -> Options:
        """``options`` with the model's defaults in place of the values not ``given``."""
        changes = {name: value for name, (value, _) in self.model_defaults(spec, type(options)).items()
                   if name not in given}
        return options.replace(**changes) if changes else options

    def cacheable(self, request: Request, spec: ModelSpec | None = None) -> bool:
        """Seeded or greedy, unless the backend's optional ``cacheable(spec, request)`` says no
        (a served model whose server does not honour seeds)."""
        spec = spec or request.spec
        hook = getattr(get_backend(spec.backend), "cacheable", None) if spec is not None else None
        return (request.seed_given or _deterministic(request.options)) and (not callable(hook) or hook(spec, request))

    # -- running
    def run(
        self,
        request: Request,
        sink: Sink | None = None,
        *,
        cache: bool = True,
        notebook: str | None = None,
        cell_id: str | None = None,
        finish: Callable[[Result], None] | None = None,
    ) -> Result:
        """Run ``request``; ``finish`` (the run layer's, e.g. ``-f json`` parsing) sees the result,
        fresh or from the cache, before history records it, and may mark it failed (status, error)."""
        sink = sink or NullSink()
        finish = finish or (lambda result: None)
        where = {"notebook": notebook, "cell_id": cell_id}
        started = time.perf_counter()

        verdicts = self._screen(request.prompt, "prompt", request)
        if any(v.action == "block" for v in verdicts):
            blocked = result_class(request.kind)(request=request, status="blocked", verdicts=verdicts)
            self.history.record(blocked, **where)
            names = ", ".join(sorted({v.category for v in verdicts if v.action == "block"}))
            raise BlockedError(f"the prompt was blocked by a safety check ({names}); see history #{blocked.history_id}")

        spec = request.spec or self.registry.resolve(request.model, request.kind)
        backend = get_backend(spec.backend)
        fingerprint = backend.fingerprint(spec)  # cheap (cached per file stamp); weights may have changed
        if fingerprint != request.fingerprint:
            request = dataclasses.replace(request, fingerprint=fingerprint)

        if cache and self.cacheable(request, spec):
            result = self._from_cache(request, verdicts, started)
            if result is not None:
                finish(result)
                self.history.record(result, **where)
                return result

        try:  # a model that fails to load leaves an error row, like any failed run
            t_load = time.perf_counter()
            cold = not self.models.holds(spec, request.options, fingerprint)
            if cold:  # a live view says so while it loads (a 7B model takes a while)
                sink.emit(Event("loading", spec.alias))
            loaded: Loaded = self.models.get(spec, request.options, fingerprint)
            load_s = time.perf_counter() - t_load
            if cold:
                sink.emit(Event("loaded", load_s))
            result = backend.generate(loaded, request, sink)
        except Exception as err:
            failed = result_class(request.kind)(request=request, status="error", error=_one_line(err), verdicts=verdicts)
            self.history.record(failed, **where)
            raise
        result.timings["load"] = load_s
        result.timings["total"] = time.perf_counter() - started
        # the backend's own flags (nsfw, ...) stay
        result.verdicts = verdicts + result.verdicts + self._screen_outputs(result, request)
        finish(result)
        self.history.record(result, **where)
        return result

    def _from_cache(self, request: Request, verdicts: list[Verdict], started: float) -> Result | None:
        """The result of the newest original run of ``request``, or None (a miss). A stored run
        that cannot be read back (a damaged database, a missing or altered blob, outputs of an
        unexpected shape) is a miss with a warning: the model runs instead.

        The outputs are screened by the checks of *now*, as a fresh run's are: a check added
        since the stored run sees them, a removed one's flags are gone. Stored verdicts of
        neither stage (a backend's own flags) are kept."""
        try:
            hit = self.history.lookup(request.key())
            if hit is None:
                return None
            result = result_class(request.kind).from_record(request, hit.outputs, self.history.get_blob)
            kept = [Verdict(**_verdict_args(v)) for v in hit.verdicts if v.get("stage") not in ("prompt", "output")]
        except Exception as err:  # the cache is an optimisation: it never stops a run
            print(f"genmagic: not served from the cache ({_one_line(err)}); running the model", file=sys.stderr)
            return None
        result.cached = True
        result.verdicts = verdicts + kept + self._screen_outputs(result, request)
        result.timings = {**hit.timings, "total": time.perf_counter() - started, "cached_from": float(hit.id)}
        result.info = hit.info
        return result

    def _screen_outputs(self, result: Result, request: Request) -> list[Verdict]:
        return [v for text in _output_texts(result) for v in self._screen(text, "output", request)]

    def _screen(self, text: str, stage: str, request: Request) -> list[Verdict]:
        out: list[Verdict] = []
        for check in self.checks:
            out.extend(check.screen(text, stage, request))
        return out


def _one_line(err: Exception) -> str:
    """A failure as history keeps it: our own errors as they read, others with their type."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if isinstance(err, GenmagicError):
        return text or type(err).__name__
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _verdict_args(data: Mapping[str, Any]) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(Verdict)}
    args = {k: v for k, v in data.items() if k in known}  # a row written by another version may have more
    args["spans"] = tuple(tuple(s) for s in args.get("spans", ()))
    return args


def _deterministic(options: Options) -> bool:
    """Options that give the same output without a seed (greedy decoding)."""
    method = getattr(options, "deterministic", None)
    return bool(method()) if callable(method) else False


_default: Engine | None = None


def default_engine() -> Engine:
    """The process-wide engine (created on first use, under ``GENMAGIC_HOME``)."""
    global _default
    if _default is None:
        _default = Engine()
    elif _default.history.home != home_dir():  # GENMAGIC_HOME changed: keep the loaded models
        _default.history = History(home_dir())
    return _default
