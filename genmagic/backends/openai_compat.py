"""Models served by an OpenAI-compatible engine (vLLM, llama.cpp's server, Ollama, TGI, LM Studio...).

A registry entry names the server and the model::

    [models.team-llama]
    backend = "openai"
    base_url = "http://gpu-box:8000/v1"
    model = "meta-llama/Llama-3.1-8B-Instruct"
    api_key_env = "TEAM_KEY"      # the *name* of the variable holding the key, never the key
    server = "vllm"               # what the server honours beyond the plain OpenAI API

The ``openai`` client does the HTTP, the SSE parsing and the retries (429 and 5xx with
backoff, honouring ``Retry-After``). Nothing here touches the network before :meth:`load`:
``detect``, ``fingerprint`` and ``check`` run on every request. ``load`` opens a client and
asks the server once for the model's identity (its ``/v1/models`` entry), which the
fingerprint then includes for the rest of the process. Generation streams each sample
(sample ``i`` uses ``seed + i``, one request each) and honours ``sink.cancelled`` and
``KeyboardInterrupt`` by closing the stream: the partial text comes back with
``status="interrupted"``. A stream the server drops keeps its partial text, ``status="error"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from ..errors import GenmagicError, ModelNotFoundError, OptionError, command
from ..registry import Setting, is_env_name
from ..request import Event, Request, Sink
from ..results import ImageResult, Result, TextResult
from . import Loaded

if TYPE_CHECKING:
    from ..registry import ModelSpec


class ServerError(GenmagicError):
    """A served model could not be reached or answered in a way genmagic cannot use."""


@dataclass(frozen=True)
class Server:
    """What a kind of server honours beyond the plain OpenAI API."""

    extras: Mapping[str, str] = field(default_factory=dict)  # genmagic option -> the server's request field
    seed_honoured: bool = False  # the same seed gives the same text (so a seeded run may be cached)
    images: bool = True  # may serve /v1/images/generations


SERVERS = {
    # OpenAI's own API: seeds are "best effort", no top_k / repetition penalty
    "openai": Server(),
    "llama.cpp": Server({"top_k": "top_k", "repetition_penalty": "repeat_penalty"}, seed_honoured=True, images=False),
    "vllm": Server({"top_k": "top_k", "repetition_penalty": "repetition_penalty"}, seed_honoured=True, images=False),
}


def _url_problem(value: Any) -> str | None:
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL such as http://localhost:8000/v1"
    if parts.username or parts.password:
        return "must not hold credentials; put the key in an environment variable and set api_key_env"
    return None


def _positive(value: Any) -> str | None:
    return None if value > 0 else "must be above 0"


def _count(value: Any) -> str | None:
    return None if isinstance(value, int) and 0 <= value <= 20 else "must be a whole number from 0 to 20"


def _server_name(value: Any) -> str | None:
    return None if value in SERVERS else f"must be one of {', '.join(SERVERS)}"


_NUMBER = (int, float)


def _setting(spec: ModelSpec, name: str) -> Any:
    return spec.settings.get(name, DEFAULTS.get(name))


DEFAULTS: dict[str, Any] = {"server": "openai", "connect_timeout": 5.0, "read_timeout": 120.0, "max_retries": 2,
                            "stream": True}


class OpenAICompatBackend:
    """Text (and, where the server has it, images) from an OpenAI-compatible HTTP server."""

    kinds = ("text", "image")
    remote = True  # prompts leave this machine (the safety layer redacts PII first)
    constrained_formats = ("json",)  # -f json asks the server for JSON (response_format)
    source_setting = "base_url"
    settings: ClassVar[dict[str, Setting]] = {
        "base_url": Setting("the server's OpenAI API root, e.g. http://localhost:8000/v1", check=_url_problem),
        "model": Setting("the model name the server knows (see %genmagic models --remote URL)", required=True,
                         flag="model"),
        "api_key_env": Setting("the environment variable that holds the API key", check=is_env_name,
                               flag="api-key-env"),
        "server": Setting(f"what the server honours beyond the OpenAI API: {', '.join(SERVERS)} (default openai)",
                          check=_server_name, flag="server"),
        "seed_honoured": Setting("the server gives the same text for the same seed (seeded runs are cached)",
                                 types=(bool,)),
        "connect_timeout": Setting("seconds to wait for a connection (default 5)", types=_NUMBER, check=_positive),
        "read_timeout": Setting("seconds to wait for the next piece of an answer (default 120)", types=_NUMBER,
                                check=_positive),
        "max_retries": Setting("retries on 429 and 5xx, with backoff honouring Retry-After (default 2)",
                               types=(int,), check=_count),
        "stream": Setting("stream answers over SSE (default true)", types=(bool,)),
    }

    def __init__(self) -> None:
        # the identity each (base_url, model) had at its last load in this process: the fingerprint
        # includes it, without a network call per request
        self._identities: dict[tuple[str, str], str] = {}

    # -- discovery (no network: these run on every request)
    def detect(self, source: str) -> str | None:
        return None  # a served model is always named by a registry entry (it needs `model`)

    def fingerprint(self, spec: ModelSpec) -> str:
        key = (spec.source, str(_setting(spec, "model")))
        blob = json.dumps([*key, self._identities.get(key, "")])
        return "remote-" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def load_key(self, spec: ModelSpec, options: Any) -> tuple[Any, ...]:
        return ()

    def server(self, spec: ModelSpec) -> Server:
        return SERVERS[_setting(spec, "server")]

    def defaults(self, spec: ModelSpec) -> dict[str, Any]:
        """Options the server cannot honour default to their neutral value, so only a value the
        user gives is refused (see :meth:`check`)."""
        extras = self.server(spec).extras
        return {name: value for name, value in (("top_k", 0), ("repetition_penalty", 1.0)) if name not in extras}

    def check(self, spec: ModelSpec, options: Any) -> None:
        """Refuse what the server cannot honour, before any request: never silently dropped."""
        server = _setting(spec, "server")
        extras = self.server(spec).extras
        refused = {"device": None, "dtype": None, "truncate": False, "top_k": 0, "repetition_penalty": 1.0,
                   "negative": None, "scheduler": None, "lora": ()}
        for name, neutral in refused.items():
            value = getattr(options, name, neutral)
            if value in (neutral, "auto") or name in extras:
                continue
            flag = "--" + name.replace("_", "-")
            why = (f"the {server!r} server API has no such parameter" if name in ("top_k", "repetition_penalty")
                   else "the server decides it")
            hint = " (set server = \"llama.cpp\" or \"vllm\" in its registry entry if it is one)" if server == "openai" \
                and name in ("top_k", "repetition_penalty") else ""
            raise OptionError(f"{flag} {value} cannot be sent to {spec.alias!r}: {why}{hint}; leave {flag} out")
        if getattr(options, "kind", "") == "image":  # the images API takes a prompt, a size and a count
            for f in dataclasses.fields(options):
                if f.name in ("steps", "guidance", "strength") and getattr(options, f.name) != f.default:
                    flag = "--" + f.name
                    raise OptionError(f"{flag} {getattr(options, f.name)} cannot be sent to {spec.alias!r}: the "
                                      f"images API has no such parameter; leave {flag} out")

    def cacheable(self, spec: ModelSpec, request: Request) -> bool:
        """A seeded run is cached only when the server honours seeds and its model's identity is
        known (it was loaded in this process)."""
        seeded = _setting(spec, "seed_honoured")
        seeded = self.server(spec).seed_honoured if seeded is None else seeded
        return bool(seeded) and (spec.source, str(_setting(spec, "model"))) in self._identities

    # -- loading: a client, and the model's identity from the server
    def load(self, spec: ModelSpec, options: Any) -> Loaded:
        client = self._client(spec)
        model = str(_setting(spec, "model"))
        try:
            entries = self._call(spec, lambda: list(client.models.list()))
        except BaseException:
            client.close()
            raise
        found = [e for e in entries if getattr(e, "id", None) == model]
        if not found:
            client.close()
            offered = ", ".join(str(getattr(e, "id", e)) for e in entries) or "none"
            raise ModelNotFoundError(
                f"the server at {spec.source} has no model {model!r} (alias {spec.alias!r}); it offers: {offered}; "
                f"fix `model` in the alias, see {command('models --remote ' + spec.source)}"
            )
        # what the server said (unset fields left out); `created` is the time of the request on some servers
        identity = {k: v for k, v in found[0].to_dict().items() if k != "created"}
        text = json.dumps(identity, sort_keys=True, default=str)
        self._identities[(spec.source, model)] = text
        return Loaded(spec=spec, model=client, info={"base_url": spec.source, "model": model,
                                                     "server": _setting(spec, "server"), "identity": identity})

    def _client(self, spec: ModelSpec) -> Any:
        try:
            import openai
        except ImportError:
            raise ModelNotFoundError("served models need the openai client: pip install 'genmagic[server]'") from None
        timeout = openai.Timeout(float(_setting(spec, "read_timeout")), connect=float(_setting(spec, "connect_timeout")))
        return openai.OpenAI(base_url=spec.source, api_key=_api_key(spec), timeout=timeout,
                             max_retries=int(_setting(spec, "max_retries")))

    def unload(self, loaded: Loaded) -> None:
        client, loaded.model = loaded.model, None
        if client is not None:
            client.close()

    # -- generation
    def generate(self, loaded: Loaded, request: Request, sink: Sink) -> Result:
        spec = loaded.spec
        ran = replace(request, fingerprint=self.fingerprint(spec))  # the identity the load found
        if request.kind == "image":
            return self._imagine(loaded, ran)
        options = request.options
        stream = bool(_setting(spec, "stream"))
        texts: list[str] = []
        counts: list[int] = []
        finish: list[str | None] = []
        status, error = "ok", None
        started = time.perf_counter()
        first_token: float | None = None
        for index in range(options.num):  # type: ignore[attr-defined]
            seed = options.seed + index if options.seed is not None else None  # type: ignore[attr-defined]
            piece = _Sample()
            try:
                self._sample(loaded, request, seed, stream, piece, sink, index)
            except KeyboardInterrupt:
                piece.interrupted = True
            except _Dropped as err:
                status, error = "error", self._redact(spec, str(err))
            if first_token is None and piece.first_at is not None:
                first_token = piece.first_at - started
            texts.append(piece.text)
            counts.append(piece.tokens)
            finish.append(piece.finish)
            if piece.interrupted or (status == "ok" and sink.cancelled):
                status = "interrupted"
            if status != "ok":
                break
        elapsed = time.perf_counter() - started
        total = sum(counts)
        return TextResult(
            request=ran, status=status, error=error, texts=texts, tokens=counts,
            timings={"generate": elapsed, "first_token": first_token if first_token is not None else elapsed,
                     "tokens": float(total), "tokens_per_s": total / elapsed if elapsed > 0 else 0.0},
            info={**loaded.info, "finish_reason": finish},
        )

    def _body(self, loaded: Loaded, request: Request, seed: int | None) -> tuple[str, dict[str, Any]]:
        """The endpoint ("chat" or "completions") and the request's arguments."""
        options: Any = request.options
        spec = loaded.spec
        args: dict[str, Any] = {"model": loaded.info["model"], "max_tokens": options.max_new_tokens,
                                "temperature": options.temperature, "top_p": options.top_p}
        if options.stop:
            args["stop"] = list(options.stop)
        if seed is not None:
            args["seed"] = seed
        extra = {field_name: getattr(options, name) for name, field_name in self.server(spec).extras.items()}
        if extra:
            args["extra_body"] = extra
        json_wanted = request.inputs.get("response_format") == "json"
        if options.raw and not (options.chat or options.system or request.messages):
            if json_wanted:
                raise OptionError("-f json with --raw: a server constrains JSON on the chat endpoint only; leave --raw out")
            return "completions", {**args, "prompt": request.prompt}
        messages = [{"role": "system", "content": options.system}] if options.system else []
        messages += [{"role": role, "content": content} for role, content in request.messages]
        messages.append({"role": "user", "content": request.prompt})
        if json_wanted:
            args["response_format"] = {"type": "json_object"}
        return "chat", {**args, "messages": messages}

    def _sample(self, loaded: Loaded, request: Request, seed: int | None, stream: bool, piece: _Sample,
                sink: Sink, index: int) -> None:
        spec, client = loaded.spec, loaded.model
        endpoint, args = self._body(loaded, request, seed)
        create = client.chat.completions.create if endpoint == "chat" else client.completions.create
        if not stream:
            answer = self._call(spec, lambda: create(**args))
            piece.add(_text(answer, endpoint, spec), sink, index)
            piece.finish = _finish(answer)
            usage = getattr(answer, "usage", None)
            piece.tokens = int(getattr(usage, "completion_tokens", 0) or piece.tokens)
            return
        chunks = self._call(spec, lambda: create(stream=True, **args))
        with closing(chunks):  # closes the HTTP response: an interrupt or Stop ends the server's work too
            for chunk in self._guarded(spec, chunks, piece):
                if sink.cancelled:
                    piece.interrupted = True
                    return
                try:
                    delta = _text(chunk, endpoint, spec, delta=True)
                except ServerError as err:
                    raise _Dropped(f"{err} after {piece.tokens} tokens; the partial text is kept") from None
                piece.add(delta, sink, index)
                piece.finish = _finish(chunk) or piece.finish

    def _guarded(self, spec: ModelSpec, chunks: Any, piece: _Sample) -> Iterator[Any]:
        """The stream's chunks; a connection lost or garbled mid-stream becomes :class:`_Dropped`."""
        import openai

        dropped: tuple[type[Exception], ...] = (*_transport_errors(), openai.APIConnectionError)
        iterator = iter(chunks)
        while True:
            try:
                chunk = next(iterator)
            except StopIteration:
                return
            except dropped as err:
                raise _Dropped(f"the server at {spec.source} dropped the stream after {piece.tokens} tokens "
                               f"({_first_line(err)}); the partial text is kept") from None
            except openai.APIError as err:  # an `error` event in the stream
                raise _Dropped(f"the server at {spec.source} reported an error after {piece.tokens} tokens "
                               f"({_first_line(err)}); the partial text is kept") from None
            except ValueError as err:
                raise _Dropped(f"the server at {spec.source} sent a malformed stream after {piece.tokens} tokens "
                               f"({_first_line(err)}); the partial text is kept") from None
            yield chunk

    def _imagine(self, loaded: Loaded, request: Request) -> ImageResult:
        spec = loaded.spec
        if not self.server(spec).images:
            raise ServerError(
                f"{spec.alias!r} is served by {_setting(spec, 'server')} at {spec.source}, which has no "
                "/v1/images/generations; use a local image model (%%imagine -m tiny-image)"
            )
        import base64
        import io

        from PIL import Image

        if request.inputs:
            raise OptionError(f"--init/--mask cannot be sent to {spec.alias!r}: its images API makes new images only")
        options: Any = request.options
        args: dict[str, Any] = {"model": loaded.info["model"], "prompt": request.prompt, "n": options.num,
                                "response_format": "b64_json"}
        if options.width or options.height:
            args["size"] = f"{options.width or options.height}x{options.height or options.width}"
        started = time.perf_counter()
        answer = self._call(spec, lambda: loaded.model.images.generate(**args), images=True)
        try:
            images = [Image.open(io.BytesIO(base64.b64decode(item.b64_json))).convert("RGB") for item in answer.data]
        except (TypeError, ValueError, OSError, AttributeError) as err:
            raise ServerError(f"the server at {spec.source} sent no readable images ({_first_line(err)})") from None
        seeds = [options.seed + i if options.seed is not None else 0 for i in range(len(images))]
        # the images API takes no seed: the seeds are recorded as asked, and `seed_sent` says they were not sent
        return ImageResult(request=request, images=images, seeds=seeds,
                           timings={"generate": time.perf_counter() - started},
                           info={**loaded.info, "seed_sent": False})

    # -- errors: one line, naming the URL, the variable to set or the models on offer; never the key
    def _call(self, spec: ModelSpec, call: Any, images: bool = False) -> Any:
        import openai

        try:
            return call()
        except openai.APITimeoutError:
            raise ServerError(
                f"the server at {spec.source} did not answer in time (connect_timeout {_setting(spec, 'connect_timeout')} s, "
                f"read_timeout {_setting(spec, 'read_timeout')} s); is it overloaded? raise read_timeout in the alias"
            ) from None
        except openai.APIConnectionError as err:
            raise ServerError(
                f"cannot connect to {spec.source} ({_first_line(err.__cause__ or err)}): is the server running? "
                f"check base_url of {spec.alias!r}"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as err:
            env = _setting(spec, "api_key_env")
            fix = (f"set the environment variable {env} to a valid key" if env else
                   f"register {spec.alias!r} with --api-key-env VAR and put the key in VAR")
            raise ServerError(f"the server at {spec.source} refused access ({err.status_code}); {fix}") from None
        except openai.NotFoundError as err:
            if images:
                raise ServerError(f"the server at {spec.source} has no /v1/images/generations; use a local image "
                                  "model") from None
            raise ModelNotFoundError(self._not_found(spec, err)) from None
        except openai.RateLimitError:
            raise ServerError(f"the server at {spec.source} is still rate limiting (429) after "
                              f"{_setting(spec, 'max_retries')} retries; try again later, or raise max_retries") from None
        except openai.APIStatusError as err:
            raise ServerError(f"the server at {spec.source} answered {err.status_code}: "
                              f"{self._redact(spec, _server_message(err))}") from None
        except (openai.APIResponseValidationError, ValueError) as err:
            raise ServerError(f"the server at {spec.source} sent a malformed answer ({_first_line(err)})") from None

    def _not_found(self, spec: ModelSpec, err: Exception) -> str:
        model = _setting(spec, "model")
        try:
            with closing(self._client(spec)) as client:
                offered = ", ".join(m.id for m in client.models.list()) or "none"
        except Exception:  # the listing is a hint only
            offered = "(could not list them)"
        return f"the server at {spec.source} has no model {model!r} (alias {spec.alias!r}); it offers: {offered}"

    @staticmethod
    def _redact(spec: ModelSpec, text: str) -> str:
        key = os.environ.get(str(_setting(spec, "api_key_env") or ""), "")
        return text.replace(key, "***") if len(key) >= 4 else text

    # -- listing what a server offers (%genmagic models --remote URL)
    def list_models(self, base_url: str, api_key_env: str | None = None) -> list[dict[str, Any]]:
        from ..registry import ModelSpec

        problem = _url_problem(base_url)
        if problem:
            raise OptionError(f"--remote {base_url} {problem}")
        settings = {"model": "", **({"api_key_env": api_key_env} if api_key_env else {})}
        spec = ModelSpec(alias=base_url, kind="text", backend="openai", source=base_url, settings=settings)
        client = self._client(spec)
        with closing(client):
            entries = self._call(spec, lambda: list(client.models.list()))
        return [{"id": e.id, "owned_by": getattr(e, "owned_by", "") or ""} for e in entries]


class _Dropped(Exception):
    """The server's stream broke off mid-answer (the partial text is kept)."""


@dataclass
class _Sample:
    text: str = ""
    tokens: int = 0  # streamed pieces (one token each on llama.cpp and vLLM); the usage count when not streamed
    finish: str | None = None
    first_at: float | None = None
    interrupted: bool = False

    def add(self, delta: str, sink: Sink, index: int) -> None:
        if not delta:
            return
        if self.first_at is None:
            self.first_at = time.perf_counter()
        self.text += delta
        self.tokens += 1
        sink.emit(Event("token", delta, index))


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's connection errors (openai 1.x-2.x use httpx, 3.x its fork httpx2)."""
    import importlib

    found = []
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except ImportError:
            continue
    return tuple(found)


def _api_key(spec: ModelSpec) -> str:
    env = _setting(spec, "api_key_env")
    if not env:
        return "none"  # servers without authentication ignore it; the client insists on one
    key = os.environ.get(str(env), "")
    if not key:
        raise ServerError(f"{spec.alias!r} reads its API key from the environment variable {env}, which is not set; "
                          f"set it (e.g. %env {env}=...) and run again")
    return key


def _text(answer: Any, endpoint: str, spec: ModelSpec, delta: bool = False) -> str:
    """The text of an answer or a stream chunk; a missing piece is a malformed answer."""
    try:
        choices = answer.choices
        if delta and not choices:
            return ""  # a usage-only or keep-alive chunk
        choice = choices[0]
        if endpoint == "completions":
            text = choice.text
        else:
            text = (choice.delta if delta else choice.message).content
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}")
        return text or ""
    except (AttributeError, IndexError, TypeError) as err:
        raise ServerError(f"the server at {spec.source} sent a malformed answer ({_first_line(err)})") from None


def _finish(answer: Any) -> str | None:
    choices = getattr(answer, "choices", None) or []
    return getattr(choices[0], "finish_reason", None) if choices else None


def _server_message(err: Any) -> str:
    body = getattr(err, "body", None)
    if isinstance(body, Mapping):
        detail = body.get("message") or body.get("detail") or body.get("error")
        if isinstance(detail, Mapping):
            detail = detail.get("message")
        if detail:
            return _first_line(str(detail))
    return _first_line(err)


def _first_line(err: Any) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__
