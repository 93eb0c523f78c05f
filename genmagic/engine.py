"""One path for every run: the magics, the CLI and the Python API all call :meth:`Engine.run`.

::

    Request ─ checks (prompt, system, turns, negative: redact / block) ─ cache ─ fingerprint ─ models.get (LRU)
            ─ backend.generate(screening sink: streamed text checked as it arrives)
            ─ checks (outputs: withhold / review) ─ history.record ─ Result

The safety level (``off | warn | standard | strict``) is the run's ``safety=``, else the
session's (``Engine.safety_level``), else the config files' ``[safety] level``, else ``standard``.

Nothing here knows a modality, a backend or a display: those live behind the backend
protocol, the options classes and the sink.
"""

from __future__ import annotations

import dataclasses
import os
import random
import sys
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
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
    """A safety check: screens what the user sends before the backend runs and the outputs after
    (see :mod:`genmagic.safety.policy` for the optional ``redact``, ``screen_stream`` and
    ``screen_images``)."""

    name: str

    def screen(self, text: str, stage: str, request: Request, level: str) -> list[Verdict]: ...


@dataclasses.dataclass
class _Run:
    """One request on its way through :meth:`Engine.run` (or :meth:`Engine.run_many`): what the
    phases before the model found, for the phases after it."""

    request: Request
    spec: ModelSpec
    backend: Any
    fingerprint: str
    checks: list[Check]
    level: str
    policy: str | None
    verdicts: list[Verdict]
    started: float
    where: dict[str, Any]
    finish: Callable[[Result], None]
    blocked: Result | None = None  # the request was blocked (recorded)
    served: Result | None = None  # served from the cache (finished and recorded)
    reason: str = ""  # why it was blocked

    def screening(self, sink: Sink) -> Any:
        """The sink the backend gets: ``sink`` screened as text streams in (when there are checks)."""
        from .safety.screen import ScreeningSink

        return ScreeningSink(sink, self.checks, self.request, self.level) if self.checks else None


_ASSIGNED = object()  # Engine.checks was assigned: it no longer follows the config


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
        self._checks: list[Check] | None = None
        self._checks_from: Any = None  # the config's [safety] settings the default checks were made with
        self.safety_level: str | None = None  # the session's level (%genmagic safety); None: the config's
        # One run at a time per engine: a panel runs in a worker thread while a cell may run another, and
        # loaded models, seeded RNG forks, torch's thread setting and a pipeline's scheduler are shared state.
        self.lock = threading.RLock()

    @property
    def checks(self) -> list[Check]:
        """The safety checks every run goes through: the defaults (made on first use, and again when
        the config's ``[safety]`` image classifier or redaction mode changes), or the list assigned
        to this property."""
        configured = (self.registry.safety_path("image_classifier"), self.registry.safety_setting("redaction"))
        if self._checks is None or (self._checks_from is not _ASSIGNED and configured != self._checks_from):
            from .safety.policy import default_checks

            try:
                self._checks = default_checks(*configured)
            except OptionError as err:
                files = ", ".join(str(path) for _, path in self.registry.config_files() if path.is_file())
                raise OptionError(f"[safety] in {files}: {err}") from None
            self._checks_from = configured
        return self._checks

    @checks.setter
    def checks(self, value: list[Check]) -> None:
        self._checks = list(value)
        self._checks_from = _ASSIGNED

    def level(self, safety: str | None = None) -> str:
        """The safety level of a run: its own, the session's, the config files', ``standard``."""
        from .safety.labels import DEFAULT_LEVEL, check_level

        if safety:
            return check_level(safety)
        if self.safety_level:
            return check_level(self.safety_level, "%genmagic safety")
        configured = self.registry.safety_level()
        return configured or DEFAULT_LEVEL

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
    def run(self, request: Request, sink: Sink | None = None, **kwargs: Any) -> Result:
        """Run ``request`` (see :meth:`_run`), one run at a time (:attr:`lock`)."""
        if not self.lock.acquire(blocking=False):  # a panel's run (a worker thread) holds the engine
            print("genmagic: waiting for a panel's run to end (press its Stop, or interrupt the kernel)",
                  file=sys.stderr)
            self.lock.acquire()
        try:
            return self._run(request, sink, **kwargs)
        finally:
            self.lock.release()

    def _run(
        self,
        request: Request,
        sink: Sink | None = None,
        *,
        cache: bool = True,
        notebook: str | None = None,
        cell_id: str | None = None,
        finish: Callable[[Result], None] | None = None,
        safety: str | None = None,
    ) -> Result:
        """Run ``request``; ``finish`` (the run layer's, e.g. ``-f json`` parsing) sees the result,
        fresh or from the cache, before history records it, and may mark it failed (status, error).
        ``safety`` is this run's safety level (default: :meth:`level`)."""
        sink = sink or NullSink()
        run = self._prepare(request, cache, safety, {"notebook": notebook, "cell_id": cell_id}, finish)
        if run.blocked is not None:
            raise BlockedError(
                f"{_blocked_text(run.verdicts)}; nothing was sent to the model (history #{run.blocked.history_id}). "
                "If this is a false alarm, run it again with --safety warn"
            )
        if run.served is not None:
            return run.served
        return self._generate(run, sink)

    def _generate(self, run: _Run, sink: Sink, *, raise_errors: bool = True) -> Result:
        """The model's part of a run, then :meth:`_complete`; a model that fails to load or run
        leaves an error row, like any failed run (and raises, unless not ``raise_errors``: then
        the error row is the result)."""
        screening = None
        try:
            loaded, load_s = self._load(run, sink)
            screening = run.screening(sink)
            result = run.backend.generate(loaded, run.request, screening or sink)
        except Exception as err:
            failed = self._failed(run, err, screening)
            if raise_errors:
                raise
            return failed
        return self._complete(run, result, screening, load_s)

    def run_many(
        self,
        requests: Sequence[Request],
        *,
        sinks: Sequence[Sink | None] | None = None,
        progress: Callable[[int, Result], None] | None = None,
        cache: bool = True,
        finish: Callable[[Result], None] | Sequence[Callable[[Result], None] | None] | None = None,
        safety: str | None = None,
        concurrency: int | None = None,
        batch_size: int | None = None,
        notebook: str | None = None,
        cell_id: str | None = None,
    ) -> list[Result]:
        """Run many requests; one result per request, in their order (see :mod:`genmagic.batch_run`).

        Each request goes through what :meth:`run` does (screening, cache, output checks,
        ``finish`` (one for all, or one per request), one history row), but a blocked or failed request is that row's result
        (status ``blocked`` / ``error``), not an exception. ``progress(index, result)`` hears every
        row as it finishes. An interrupt keeps the finished rows; the rest come back with status
        ``interrupted`` (not run, no history row)."""
        from .batch_run import run_many

        with self.lock:  # one run at a time, as :meth:`run`; served rows run in worker threads inside it
            return run_many(self, requests, sinks=sinks, progress=progress, cache=cache, finish=finish, safety=safety,
                            concurrency=concurrency, batch_size=batch_size,
                            where={"notebook": notebook, "cell_id": cell_id})

    def _prepare(self, request: Request, cache: bool, safety: str | None, where: Mapping[str, Any],
                 finish: Callable[[Result], None] | None) -> _Run:
        """The phases of a run before the model: screening the request (a block is recorded), the
        cache (a hit is finished and recorded)."""
        from .safety.policy import policy_key

        started = time.perf_counter()
        level = self.level(safety)
        checks: list[Check] = [] if level == "off" else self.checks
        spec = request.spec or self.registry.resolve(request.model, request.kind)
        backend = get_backend(spec.backend)
        fingerprint = backend.fingerprint(spec)  # cheap (cached per file stamp); weights may have changed
        if fingerprint != request.fingerprint or request.spec is None:  # the checks ask where it goes
            request = dataclasses.replace(request, fingerprint=fingerprint, spec=spec)
        cacheable = cache and self.cacheable(request, spec)
        policy = policy_key(checks, level)

        # A stored run of this very request, screened by the same checks at the same level, had its
        # texts screened already: its verdicts are what screening again would give (no model to load).
        hit = self._lookup(request) if cacheable else None
        stored = _stored_verdicts(hit, "prompt", policy)
        if stored is not None:
            verdicts = stored
        else:
            verdicts, redacted = self._screen_request(checks, request, level)
            if redacted is not request:  # the model gets the redacted texts: another request, another key
                request, hit = redacted, self._lookup(redacted) if cacheable else None
        run = _Run(request, spec, backend, fingerprint, checks, level, policy, verdicts, started, dict(where),
                   finish or (lambda result: None))
        if any(v.action == "block" for v in verdicts):
            run.blocked = result_class(request.kind)(request=request, status="blocked", verdicts=verdicts)
            self.history.record(run.blocked, **run.where)
            run.reason = _blocked_text(verdicts)
        elif hit is not None:
            result = self._from_cache(request, hit, verdicts, started, checks, level)
            if result is not None:
                run.finish(result)
                self.history.record(result, **run.where)
                run.served = result
        return run

    def _load(self, run: _Run, sink: Sink) -> tuple[Loaded, float]:
        """The loaded model of a run (a live view hears ``loading`` / ``loaded`` around a cold load)."""
        t_load = time.perf_counter()
        cold = not self.models.holds(run.spec, run.request.options, run.fingerprint)
        if cold:  # a live view says so while it loads (a 7B model takes a while)
            sink.emit(Event("loading", run.spec.alias))
        loaded: Loaded = self.models.get(run.spec, run.request.options, run.fingerprint)
        load_s = time.perf_counter() - t_load
        if cold:
            sink.emit(Event("loaded", load_s))
        return loaded, load_s

    def _failed(self, run: _Run, err: Exception, screening: Any) -> Result:
        """The error row of a run whose model failed to load or run."""
        if screening is not None:
            screening.abort(run.checks)
        failed = result_class(run.request.kind)(request=run.request, status="error", error=_one_line(err),
                                                verdicts=run.verdicts)
        self.history.record(failed, **run.where)
        return failed

    def _complete(self, run: _Run, result: Result, screening: Any, load_s: float) -> Result:
        """The phases after the model: output checks, ``finish``, the history row."""
        from .safety.screen import apply_outputs, screen_outputs

        result.timings["load"] = load_s
        result.timings["total"] = time.perf_counter() - run.started
        streamed = screening.blocked if screening is not None else []
        found = streamed + screen_outputs(run.checks, result, run.request, run.level)
        # the backend's own flags (nsfw, ...) stay
        result.verdicts = run.verdicts + result.verdicts + found
        apply_outputs(run.checks, result, found, prompt_review=_review(run.verdicts))
        if screening is not None:
            screening.finish(result)
        result.info.update(safety=run.level, safety_policy=run.policy)
        run.finish(result)
        self.history.record(result, **run.where)
        return result

    def _screen_request(self, checks: list[Check], request: Request, level: str) -> tuple[list[Verdict], Request]:
        """Verdicts on every text the user sends, and the request with the redactions made."""
        from .safety.policy import off_notice
        from .safety.screen import redact_request, screen_request

        if level == "off":
            return [off_notice()], request
        verdicts = screen_request(checks, request, level)
        return verdicts, redact_request(checks, request, verdicts)

    def _lookup(self, request: Request) -> Any:
        """The newest original run of ``request`` in history, or None; a store that cannot be read
        is a miss with a warning (the cache never stops a run)."""
        try:
            return self.history.lookup(request.key())
        except Exception as err:
            print(f"genmagic: not served from the cache ({_one_line(err)}); running the model", file=sys.stderr)
            return None

    def _from_cache(self, request: Request, hit: Any, verdicts: list[Verdict], started: float, checks: list[Check],
                    level: str) -> Result | None:
        """The result of ``hit`` (the newest original run of ``request``), or None (a miss). A stored
        run that cannot be read back (a missing or altered blob, outputs of an unexpected shape) is
        a miss with a warning: the model runs instead.

        The outputs are screened as a fresh run's are, under the current policy: a check added since
        the stored run, or another level, screens them again; the same checks at the same level
        (``policy_key``) give the stored output verdicts. Stored verdicts of neither stage (a
        backend's own flags) are kept."""
        try:
            result = result_class(request.kind).from_record(request, hit.outputs, self.history.get_blob)
            kept = [Verdict(**_verdict_args(v)) for v in hit.verdicts if v.get("stage") not in ("prompt", "output")]
            timings, info = dict(hit.timings), dict(hit.info)  # a row of another shape is a miss
        except Exception as err:  # the cache is an optimisation: it never stops a run
            print(f"genmagic: not served from the cache ({_one_line(err)}); running the model", file=sys.stderr)
            return None
        from .safety.policy import policy_key
        from .safety.screen import apply_outputs, screen_outputs

        result.cached = True
        key = policy_key(checks, level)
        found = _stored_verdicts(hit, "output", key)  # the same checks at the same level: the same verdicts
        if found is None:
            found = screen_outputs(checks, result, request, level)
        result.verdicts = verdicts + kept + found
        apply_outputs(checks, result, found, prompt_review=_review(verdicts))
        result.timings = {**timings, "total": time.perf_counter() - started, "cached_from": float(hit.id)}
        result.info = {**info, "safety": level, "safety_policy": key}
        return result


def _stored_verdicts(hit: Any, stage: str, policy: str | None) -> list[Verdict] | None:
    """A stored run's verdicts of ``stage`` when it was screened under ``policy``; else (another
    policy, or a row that does not read as verdicts) None: screen again."""
    if policy is None or hit is None or not isinstance(hit.info, dict) or hit.info.get("safety_policy") != policy:
        return None
    try:
        return [Verdict(**_verdict_args(v)) for v in hit.verdicts if v.get("stage") == stage]
    except Exception:
        return None


def _review(verdicts: list[Verdict]) -> Verdict | None:
    """A prompt verdict that asks for review: the run happens, its outputs wait for a person."""
    return next((v for v in verdicts if v.action == "review"), None)


def _blocked_text(verdicts: list[Verdict]) -> str:
    from .safety.labels import category_name

    blocks = [v for v in verdicts if v.action == "block"]
    where = sorted({v.target or "prompt" for v in blocks})
    why = "; ".join(dict.fromkeys(v.reason or category_name(v.category) for v in blocks))
    return f"the {' and '.join(where)} was blocked by a safety check ({why})"


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
