"""Models served by an OpenAI-compatible engine (vLLM, llama.cpp's server, Ollama, TGI, LM Studio...).

A registry entry names the server and the model::

    [models.team-llama]
    backend = "openai"
    base_url = "http://gpu-box:8000/v1"
    model = "meta-llama/Llama-3.1-8B-Instruct"
    api_key_env = "TEAM_KEY"      # the *name* of the variable holding the key, never the key
    server = "vllm"               # what the server honours beyond the plain OpenAI API

The ``openai`` client does the HTTP and the SSE parsing; the retries (429 and 5xx, with backoff
honouring ``Retry-After``) are genmagic's own, so a timed-out generation is never sent again.
Nothing here touches the network before :meth:`load`:
``detect``, ``fingerprint`` and ``check`` run on every request. ``load`` opens a client and
asks the server once for the model's identity (its ``/v1/models`` entry), which the
fingerprint then includes for the rest of the process. Generation streams each sample
(sample ``i`` uses ``seed + i``, one request each) and honours ``sink.cancelled`` and
``KeyboardInterrupt`` by closing the stream: the partial text comes back with
``status="interrupted"``. A stream the server drops, or ends without a finish reason, keeps its
partial text, ``status="error"`` (an error is never served from the cache).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

from ..errors import GenmagicError, ModelNotFoundError, OptionError, command, management
from ..registry import Setting, _masked, is_env_name
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
    # how --schema is asked for: OpenAI's {"type": "json_schema", "json_schema": {...}}, or llama-cpp-python's
    # {"type": "json_object", "schema": {...}} (its server rejects the former with a validation error)
    schema_in_json_object: bool = False


SERVERS = {
    # OpenAI's own API: seeds are "best effort", no top_k / repetition penalty
    "openai": Server(),
    "llama.cpp": Server({"top_k": "top_k", "repetition_penalty": "repeat_penalty"}, seed_honoured=True, images=False,
                        schema_in_json_object=True),
    "vllm": Server({"top_k": "top_k", "repetition_penalty": "repetition_penalty"}, seed_honoured=True, images=False),
}


def _url_problem(value: Any) -> str | None:
    parts = urlsplit(str(value))
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL such as http://localhost:8000/v1"
    if parts.username or parts.password or parts.query or parts.fragment:
        # the URL is in the config, history and error messages: no key may ride in it (?api-key=...)
        return ("must not hold credentials or a query string; put the key in an environment variable and set "
                "api_key_env")
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


def _refused_schema(spec: ModelSpec, create: Any) -> Any:
    """``create`` whose 400/422 answer to a ``response_format`` of type ``json_schema`` (``--schema``)
    says the server cannot take a schema, in one line."""

    def call(**args: Any) -> Any:
        import openai

        try:
            return create(**args)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as err:
            if args.get("response_format", {}).get("type") != "json_schema":
                raise
            raise ServerError(
                f"the server at {spec.source} refused --schema (response_format json_schema, answered "
                f"{err.status_code}: {_server_message(err)}); leave --schema out and use -f json (checked after the run)"
            ) from None

    return call


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
                               flag="api-key-env", secret=True),
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
        blob = json.dumps([spec.source, str(_setting(spec, "model")), self._identity(spec) or ""])
        return "remote-" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _identity(self, spec: ModelSpec) -> str | None:
        """The identity the last load found: in this process, else the one recorded under
        GENMAGIC_HOME by an earlier process (a file read, no network)."""
        key = (spec.source, str(_setting(spec, "model")))
        return self._identities.get(key) or read_identities().get(_identity_key(*key))

    def model_key(self, spec: ModelSpec) -> tuple[Any, ...]:
        """The model a server serves at base_url: two aliases of one server are two models."""
        return (str(_setting(spec, "model")),)

    def load_key(self, spec: ModelSpec, options: Any) -> tuple[Any, ...]:
        """A loaded client is its settings (timeouts, retries, the key's variable)."""
        return tuple(_setting(spec, name) for name in _CLIENT_SETTINGS)

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
        if getattr(options, "raw", False) and (getattr(options, "chat", False) or getattr(options, "system", None)):
            # in process, --system/--chat win over --raw (the chat template); a server cannot do both either
            given = "--system" if options.system else "--chat"
            raise OptionError(f"--raw with {given}: --raw sends plain text to {spec.source}/completions, which has no "
                              f"system prompt or conversation; leave --raw out or drop {given}")
        if getattr(options, "truncate", False):
            raise OptionError(f"--truncate cannot be used with {spec.alias!r}, a served model: the server decides how "
                              "long a prompt may be; leave --truncate out")
        refused = {"device": None, "dtype": None, "top_k": 0, "repetition_penalty": 1.0,
                   "negative": None, "scheduler": None, "lora": (), "speculate": "off"}
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
        known (loaded in this process, or recorded by an earlier one)."""
        seeded = _setting(spec, "seed_honoured")
        seeded = self.server(spec).seed_honoured if seeded is None else seeded
        if request.kind == "image":  # the images API takes no seed: an image run is never the same twice
            return False
        return bool(seeded) and self._identity(spec) is not None

    # -- loading: a client, and the model's identity from the server
    def load(self, spec: ModelSpec, options: Any) -> Loaded:
        client = self._client(spec)
        model = str(_setting(spec, "model"))
        try:
            entries = self._models(spec, client)
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
        # what the server said (unset fields left out), less what changes from one request to the next
        identity = _stable(found[0].to_dict())
        text = json.dumps(identity, sort_keys=True, default=str)
        self._identities[(spec.source, model)] = text
        record_identity(spec.source, model, text)
        return Loaded(spec=spec, model=client, info={"base_url": spec.source, "model": model,
                                                     "server": _setting(spec, "server"), "identity": identity})

    def _client(self, spec: ModelSpec) -> Any:
        try:
            import openai
        except ImportError:
            raise ModelNotFoundError("served models need the openai client: pip install 'genmagic[server]'") from None
        timeout = openai.Timeout(float(_setting(spec, "read_timeout")), connect=float(_setting(spec, "connect_timeout")))
        # retries are :meth:`_call`'s own (a timed-out generation is not sent again)
        client = openai.OpenAI(base_url=spec.source, api_key=_api_key(spec), timeout=timeout, max_retries=0)
        # the client reads OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment: never sent to another server
        client.organization = client.project = None
        return client

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
            except GenmagicError as err:  # ServerError, a 404's ModelNotFoundError
                if index == 0:
                    raise  # nothing to keep: the run fails
                status, error = "error", f"sample {index + 1} of {options.num}: {err}"  # type: ignore[attr-defined]
                break  # the finished samples are kept
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
        if options.raw:  # check() refused --raw with --system/--chat; a conversation's turns ride with --chat
            if request.messages:
                raise OptionError("--raw with a conversation: /completions takes plain text only; leave --raw out")
            if json_wanted:
                raise OptionError("-f json with --raw: a server constrains JSON on the chat endpoint only; leave --raw out")
            return "completions", {**args, "prompt": request.prompt}
        messages = [{"role": "system", "content": options.system}] if options.system else []
        messages += [{"role": role, "content": content} for role, content in request.messages]
        messages.append({"role": "user", "content": request.prompt})
        schema = request.inputs.get("json_schema")
        if schema and self.server(spec).schema_in_json_object:
            args["response_format"] = {"type": "json_object", "schema": json.loads(schema)}
        elif schema:  # --schema: the server constrains to it where it can (refused: _refused_schema)
            args["response_format"] = {"type": "json_schema", "json_schema": {"name": "output", "schema": json.loads(schema)}}
        elif json_wanted:
            args["response_format"] = {"type": "json_object"}
        return "chat", {**args, "messages": messages}

    def _sample(self, loaded: Loaded, request: Request, seed: int | None, stream: bool, piece: _Sample,
                sink: Sink, index: int) -> None:
        spec, client = loaded.spec, loaded.model
        client.api_key = _api_key(spec)  # read now: a key set after the load (the 401's advice) is used
        endpoint, args = self._body(loaded, request, seed)
        create = _refused_schema(spec, client.chat.completions.create if endpoint == "chat" else client.completions.create)
        if not stream:
            answer = self._call(spec, lambda: create(**args))
            piece.add(_text(answer, endpoint, spec), sink, index)
            piece.finish = _finish(answer)
            usage = getattr(answer, "usage", None)
            piece.tokens = int(getattr(usage, "completion_tokens", 0) or piece.tokens)
            return
        chunks = self._call(spec, lambda: create(stream=True, **args))
        with closing(chunks):  # closes the HTTP response: an interrupt or Stop ends the server's work too
            response = getattr(chunks, "response", None)
            kind = response.headers.get("content-type", "") if response is not None else "text/event-stream"
            if not kind.startswith("text/event-stream"):
                raise ServerError(f"the server at {spec.source} answered a streamed request with {kind or 'no'} "
                                  "content, not an event stream; is base_url the server's OpenAI API?")
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
        if piece.finish is None and not piece.interrupted and not sink.cancelled:
            raise _Dropped(f"the server at {spec.source} ended the stream without finishing the answer after "
                           f"{piece.tokens} tokens; the partial text is kept")

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
        loaded.model.api_key = _api_key(spec)
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
        """``call()``, retried on 429 and 5xx (``max_retries`` times, waiting what ``Retry-After``
        asks, or a backoff); a timeout is not retried: the server may still be generating."""
        import openai

        retries = int(_setting(spec, "max_retries"))
        for attempt in range(retries + 1):
            try:
                return call()
            except openai.APIStatusError as err:
                if not (err.status_code == 429 or err.status_code >= 500):
                    raise self._failure(spec, err, images) from None
                wait = _retry_after(err)
                if wait is not None and wait > MAX_WAIT:
                    raise ServerError(f"the server at {spec.source} answered {err.status_code} and asks to wait "
                                      f"{wait:.0f} s (Retry-After); try again later") from None
                if attempt == retries:
                    raise self._failure(spec, err, images, retries) from None
                time.sleep(wait if wait is not None else min(0.5 * 2**attempt, 8.0))
            except Exception as err:
                raise self._failure(spec, err, images) from None
        raise AssertionError("unreachable")

    def _failure(self, spec: ModelSpec, err: Exception, images: bool, retries: int = 0) -> Exception:
        """The one-line error for ``err`` (an exception of the openai client)."""
        import openai

        if isinstance(err, openai.APITimeoutError):
            return ServerError(
                f"the server at {spec.source} did not answer in time (connect_timeout {_setting(spec, 'connect_timeout')} s, "
                f"read_timeout {_setting(spec, 'read_timeout')} s; not sent again); is it overloaded? raise "
                "read_timeout in the alias"
            )
        if isinstance(err, openai.APIConnectionError):
            return ServerError(
                f"cannot connect to {spec.source} ({_first_line(err.__cause__ or err)}): is the server running? "
                + ("check the URL" if _listing(spec) else f"check base_url of {spec.alias!r}")
            )
        if isinstance(err, (openai.AuthenticationError, openai.PermissionDeniedError)):
            env = _setting(spec, "api_key_env")
            if env:
                fix = f"set the environment variable {env} to a valid key ({_set_env(str(env))})"
            elif _listing(spec):
                fix = f"put the key in a variable ({_set_env('VAR')}) and add --api-key-env VAR to models --remote"
            else:
                fix = f"register {spec.alias!r} again with --api-key-env VAR and put the key in VAR ({_set_env('VAR')})"
            return ServerError(f"the server at {spec.source} refused access ({err.status_code}); {fix}")
        if isinstance(err, openai.NotFoundError):
            return self._not_found(spec, err, images)
        if isinstance(err, openai.RateLimitError):
            return ServerError(f"the server at {spec.source} is still rate limiting (429) after {retries} retries"
                               f"{_waited(err)}; try again later, or raise max_retries")
        if isinstance(err, openai.APIStatusError):
            tried = f" (after {retries} retries{_waited(err)})" if retries else ""
            return ServerError(f"the server at {spec.source} answered {err.status_code}{tried}: "
                               f"{self._redact(spec, _server_message(err))}")
        if isinstance(err, (openai.APIResponseValidationError, ValueError, AttributeError, TypeError)):
            return ServerError(f"the server at {spec.source} sent a malformed answer ({_first_line(err)})")
        return err

    def _models(self, spec: ModelSpec, client: Any) -> list[Any]:
        """The server's /models entries; an answer that is not a list of models (a web page, a
        proxy's login form) is a one-line error."""
        raw = self._call(spec, lambda: client.models.with_raw_response.list())
        kind = raw.headers.get("content-type", "")
        try:
            entries = list(raw.parse()) if "json" in kind else None
        except (AttributeError, TypeError, ValueError, GenmagicError):
            entries = None
        if entries is None or not all(isinstance(getattr(e, "id", None), str) for e in entries):
            raise ServerError(f"the server at {spec.source} sent a malformed answer to /models ({kind or 'no type'}, "
                              "not a list of models); is base_url the server's OpenAI API?")
        return entries

    def _not_found(self, spec: ModelSpec, err: Any, images: bool) -> Exception:
        """A 404: no OpenAI API at all, no such model, or a model the endpoint does not serve."""
        path = urlsplit(str(err.request.url)).path if getattr(err, "request", None) is not None else ""
        endpoint = "/" + path.rsplit("/v1/", 1)[-1] if "/v1/" in path else path or "the endpoint"
        if endpoint.endswith("/models"):
            return ServerError(f"no OpenAI API at {spec.source} (GET {endpoint} answered 404); does base_url end "
                               "in /v1?")
        if images:
            return ServerError(f"the server at {spec.source} has no /v1/images/generations; use a local image model")
        model = _setting(spec, "model")
        try:
            with closing(self._client(spec)) as client:
                ids = [m.id for m in client.models.list()]
        except Exception:  # the listing is a hint only
            ids = None
        if ids is not None and model in ids:  # the model is there: the endpoint is what is missing
            return ServerError(f"the server at {spec.source} has no {endpoint} for {model!r} (404: "
                               f"{self._redact(spec, _server_message(err))})"
                               + ("; leave --raw out (it uses /completions)" if endpoint == "/completions" else ""))
        offered = ("(could not list them)" if ids is None else ", ".join(ids) or "none")
        return ModelNotFoundError(f"the server at {spec.source} has no model {model!r} (alias {spec.alias!r}); "
                                  f"it offers: {offered}")

    @staticmethod
    def _redact(spec: ModelSpec, text: str) -> str:
        key = os.environ.get(str(_setting(spec, "api_key_env") or ""), "")
        return text.replace(key, "***") if len(key) >= 4 else text

    # -- listing what a server offers (%genmagic models --remote URL)
    def list_models(self, base_url: str, api_key_env: str | None = None) -> list[dict[str, Any]]:
        from ..registry import ModelSpec

        problem = _url_problem(base_url)
        if problem:
            raise OptionError(f"--remote {_masked(base_url)} {problem}")
        if api_key_env and is_env_name(api_key_env):
            raise OptionError(f"--api-key-env (the value is not repeated: it may be a key) {is_env_name(api_key_env)}")
        settings = {"model": "", **({"api_key_env": api_key_env} if api_key_env else {})}
        spec = ModelSpec(alias=base_url, kind="text", backend="openai", source=base_url, settings=settings)
        client = self._client(spec)
        with closing(client):
            entries = self._models(spec, client)
        return [{"id": e.id, "owned_by": getattr(e, "owned_by", "") or ""} for e in entries]


# -- the identities of served models, kept under GENMAGIC_HOME for the next process
IDENTITIES_FILE = "served-models.json"
_MAX_IDENTITIES = 256  # entries kept (the most recent); a bigger or unreadable file is ignored
_MAX_BYTES = 1 << 20


def _identity_key(base_url: str, model: str) -> str:
    return json.dumps([base_url, model])


def _identities_path() -> Path:
    from ..registry import home_dir

    return home_dir() / IDENTITIES_FILE


def read_identities() -> dict[str, str]:
    """``{[base_url, model] as JSON: identity}`` as recorded; a missing, oversized or malformed
    file (or a malformed entry) counts as nothing recorded."""
    path = _identities_path()
    try:
        if path.stat().st_size > _MAX_BYTES:
            return {}
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # RecursionError: "[[[[..." nested too deep
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def record_identity(base_url: str, model: str, identity: str) -> None:
    """Record what a load found (atomically: a crash leaves the old file); a home that cannot be
    written only costs the next process its first cached run."""
    known = read_identities()
    key = _identity_key(base_url, model)
    if known.get(key) == identity:
        return
    known.pop(key, None)
    known[key] = identity
    path = _identities_path()
    text = json.dumps(dict(list(known.items())[-_MAX_IDENTITIES:]))
    with suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".served-", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(text)
            os.replace(tmp, path)
        except OSError:
            os.unlink(tmp)


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
                          f"set it ({_set_env(env)}) and run again")
    return key


def _listing(spec: ModelSpec) -> bool:
    """``spec`` stands for ``models --remote URL`` (no alias: errors name the command's flags)."""
    return spec.alias == spec.source


def _set_env(name: str) -> str:
    """How to set an environment variable where the user is: ``%env`` in a notebook, ``export`` in a shell."""
    return f"export {name}=..." if management() == "genmagic" else f"%env {name}=..."


def _text(answer: Any, endpoint: str, spec: ModelSpec, delta: bool = False) -> str:
    """The text of an answer or a stream chunk; a missing piece is a malformed answer."""
    try:
        choices = answer.choices
        if delta and not choices:
            return ""  # a usage-only or keep-alive chunk
        choice = choices[0]
        if endpoint == "completions":
            text = choice.text
        elif delta:
            text = getattr(choice.delta, "content", None)  # a final chunk may have no delta at all
        else:
            text = choice.message.content
        if text is not None and not isinstance(text, str):
            raise TypeError(f"text is {type(text).__name__}")
        return text or ""
    except (AttributeError, IndexError, TypeError) as err:
        raise ServerError(f"the server at {spec.source} sent a malformed answer ({_first_line(err)})") from None


_CLIENT_SETTINGS = ("api_key_env", "connect_timeout", "read_timeout", "max_retries", "stream")
MAX_WAIT = 120.0  # seconds: a longer Retry-After is an error saying how long, not a frozen cell
_UNSTABLE = frozenset({"created", "permission", "permissions"})  # vLLM: a fresh uuid and time on each request


def _stable(value: Any) -> Any:
    """A /models entry less the fields that change from one request to the next, at every level."""
    if isinstance(value, Mapping):
        return {k: _stable(v) for k, v in value.items() if k not in _UNSTABLE}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _retry_after(err: Any) -> float | None:
    """The seconds a 429/5xx answer's ``Retry-After`` (or ``retry-after-ms``) asks for, if any."""
    headers = getattr(getattr(err, "response", None), "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        value = headers.get("retry-after")
        if not value:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            from email.utils import parsedate_to_datetime

            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, OverflowError):
        return None


def _waited(err: Any) -> str:
    wait = _retry_after(err)
    return f"; it asks to wait {wait:g} s (Retry-After)" if wait is not None else ""


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
