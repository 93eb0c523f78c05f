"""Text generation with a local transformers causal LM (a folder or a cached hub id).

Streaming goes through a ``BaseStreamer`` that emits ``token`` events; generation runs in
the calling thread, so a kernel interrupt lands inside ``generate`` within one token, and
cancellation (``sink.cancelled``) is a stopping criterion checked after every token.
Either way the partial text comes back with ``status="interrupted"`` and the model stays
loaded. Sample ``i`` of ``--num`` uses ``seed + i``, so any sample can be reproduced alone.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFoundError, OptionError, PromptError
from ..options import TextOptions
from ..registry import split_scale
from ..request import Event, Request, Sink
from ..results import TextResult
from . import (
    DTYPE_BYTES,
    Loaded,
    check_device,
    default_device,
    quiet_progress_bars,
    seeded,
    torch_threads,
    weight_bytes,
)
from ._hub import fingerprint, local_folder, read_json, require_folder
from .batching import RowStreamer, auto_batch_size, left_pad, plan, repetition_penalty, row_sampler, rows_cancelled

if TYPE_CHECKING:
    from ..registry import ModelSpec

_MARKER = "config.json"


@dataclass
class _TextModel:
    model: Any
    tokenizer: Any
    context: int


def _weights(folder: str) -> tuple[list[str], list[str]]:
    safe = glob.glob(os.path.join(folder, "*.safetensors"))
    pickled = [p for p in glob.glob(os.path.join(folder, "*.bin")) + glob.glob(os.path.join(folder, "*.pt"))
               if not os.path.basename(p).startswith("training_args")]
    return safe, pickled


_SAFETENSORS_FLOATS = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64"}


def own_dtype(folder: str | None) -> str:
    """The dtype ``from_pretrained`` gives by default (``dtype="auto"``): the config's ``dtype``
    (formerly ``torch_dtype``, or its ``text_config``'s), else the dtype of the first floating
    tensor of the (first) safetensors checkpoint, read from its JSON header; float32 when neither."""
    config = read_json(os.path.join(folder or "", _MARKER))
    text = config.get("text_config")
    text = text if isinstance(text, dict) else {}
    for found in (config.get("dtype"), config.get("torch_dtype"), text.get("dtype"), text.get("torch_dtype")):
        if found in DTYPE_BYTES:
            return str(found)
    return _checkpoint_dtype(folder or "") or "float32"


def _checkpoint_dtype(folder: str) -> str | None:
    """The first floating tensor's dtype (by name, as ``safe_open`` lists them) in the first
    safetensors file, from its header alone (no torch import, no weights read)."""
    files = sorted(glob.glob(os.path.join(folder, "*.safetensors")))
    if not files:
        return None
    try:
        with open(files[0], "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size)) if 0 < size < 100 << 20 else {}
    except (OSError, ValueError):
        return None
    for name in sorted(header) if isinstance(header, dict) else ():
        entry = header[name]
        if name != "__metadata__" and isinstance(entry, dict) and entry.get("dtype") in _SAFETENSORS_FLOATS:
            return _SAFETENSORS_FLOATS[entry["dtype"]]
    return None


def generation_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """``generation_config.json`` → ``%%generate`` option defaults.

    ``do_sample: false`` means greedy (temperature 0). Without ``do_sample`` the sampling
    values are taken as meant to be used; a config with none of them changes nothing.
    Values are checked by the engine (an out-of-range one is skipped).
    """
    greedy = config.get("do_sample") is False
    names = ("max_new_tokens", "repetition_penalty") + (() if greedy else ("temperature", "top_p", "top_k"))
    out = {name: config[name] for name in names if config.get(name) is not None}
    if greedy:
        out["temperature"] = 0.0
    return out


def transcript(messages: list[dict[str, str]]) -> str:
    """A plain chat transcript for tokenizers without a chat template."""
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines) + "\nAssistant:"


class _Cancelled(Exception):
    """Raised from the streamer to stop ``generate`` when the sink is cancelled."""


class _Streamer:
    """Receives token ids from ``generate`` and emits text deltas.

    Decoding is incremental (each step decodes only the last few tokens, as TGI does), and
    text that may still become a stop string or is an incomplete UTF-8 character is held
    back. The final text is one full decode of all new tokens, cut at the first stop string.
    """

    def __init__(self, tokenizer: Any, sink: Sink, index: int, stops: tuple[str, ...]) -> None:
        self.tokenizer = tokenizer
        # The Rust tokenizer's own decode skips the Python wrapper (half the cost per token).
        backend = getattr(tokenizer, "_tokenizer", None)
        self._decode = (
            (lambda ids: backend.decode(ids, skip_special_tokens=True))
            if backend is not None and hasattr(backend, "decode")
            else (lambda ids: tokenizer.decode(ids, skip_special_tokens=True))
        )
        self.sink = sink
        self.index = index
        self.stops = stops
        self.hold = max((len(s) for s in stops), default=1) - 1
        self.ids: list[int] = []
        self.text = ""  # decoded so far (incrementally)
        self.prefix = 0  # ids[prefix:read] were decoded into the end of self.text
        self.read = 0
        self.emitted = 0
        self.stopped = False
        self.prompt_seen = False
        self.first_token_at: float | None = None

    def put(self, value: Any) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self.sink.cancelled:  # checked once per token; generate() unwinds without a side effect
            raise _Cancelled
        self.ids.extend(int(t) for t in value.reshape(-1).tolist())
        before = self._decode(self.ids[self.prefix:self.read])
        after = self._decode(self.ids[self.prefix:])
        if len(after) > len(before) and not after.endswith("\ufffd"):
            self.text += after[len(before):]
            self.prefix, self.read = self.read, len(self.ids)
        self._emit(final=False)

    def _cut(self, text: str) -> str:
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            return text[:cut]
        return text

    def _emit(self, final: bool) -> None:
        if self.stopped:
            return
        start = max(0, self.emitted - self.hold)
        text = self.text[:start] + self._cut(self.text[start:])
        safe = len(text) if (final or self.stopped) else len(text) - self.hold
        if safe > self.emitted:
            self.sink.emit(Event("token", text[self.emitted:safe], self.index))
            self.emitted = safe

    def end(self) -> None:
        self.flush()

    def flush(self) -> str:
        """The final text (a full decode, cut at the first stop); emits what is still unsent."""
        text = self._cut(self.tokenizer.decode(self.ids, skip_special_tokens=True))
        if len(text) > self.emitted:
            self.sink.emit(Event("token", text[self.emitted:], self.index))
            self.emitted = len(text)
        return text


def json_processor(tokenizer: Any, request: Request, rows: int, eos: Any) -> Any:
    """The grammar constraint of a ``-f json`` / ``--schema`` run for ``rows`` rows decoded
    together (a logits processor; ``backends/_grammar.py``), or None for other runs."""
    if request.inputs.get("response_format") != "json":
        return None
    from ._grammar import json_constraint

    schema = request.inputs.get("json_schema")
    options: TextOptions = request.options  # type: ignore[assignment]
    return json_constraint(tokenizer, json.loads(schema) if schema else None, rows, eos, options.max_new_tokens)


def cut_off(constraint: Any, row: int, ids: list[int], options: TextOptions) -> str | None:
    """Why row ``row`` (new tokens ``ids``) of a constrained run failed (its JSON still open when
    --max-new-tokens ran out), or None."""
    if constraint is None or not constraint.incomplete(row, ids):
        return None
    return f"JSON cut off at --max-new-tokens {options.max_new_tokens}; raise it"


PROMPT_LOOKUP_TOKENS = 10  # tokens drafted per step by --speculate prompt-lookup (transformers' suggestion)
LONG_PROMPT = 64  # --speculate auto: prompt lookup for greedy runs with prompts this long (bench/decoding.py)


def speculation(options: TextOptions, rows: int = 1, prompt_tokens: int = 0, dtype: str = "float32") -> dict[str, Any]:
    """``GenerationConfig`` arguments for ``--speculate`` (transformers' prompt-lookup decoding:
    draft tokens copied from the prompt, verified in one forward pass; greedy output unchanged in
    float32). ``auto``: prompt lookup for one greedy float32 row whose prompt has ``LONG_PROMPT``
    tokens or more (in bfloat16 the verifying pass rounds differently and can change a greedy
    token: bench/decoding.py). Transformers drafts for one row at a time: an explicit
    prompt-lookup over several rows is refused."""
    if options.speculate == "auto":
        wanted = rows == 1 and options.deterministic() and prompt_tokens >= LONG_PROMPT and dtype == "float32"
        return {"prompt_lookup_num_tokens": PROMPT_LOOKUP_TOKENS} if wanted else {}
    if options.speculate != "prompt-lookup":
        return {}
    if rows > 1:
        raise OptionError(f"--speculate prompt-lookup decodes one row at a time; with {rows} rows in a batch use "
                          "--batch-size 1 or leave --speculate out")
    return {"prompt_lookup_num_tokens": PROMPT_LOOKUP_TOKENS}


class TransformersTextBackend:
    kinds = ("text",)
    constrained_formats = ("json",)  # -f json and --schema decode under a JSON grammar (llguidance)

    # -- discovery
    def detect(self, source: str) -> str | None:
        folder = local_folder(source, _MARKER)
        if folder is None or os.path.isfile(os.path.join(folder, "model_index.json")):
            return None
        return "text"

    def fingerprint(self, spec: ModelSpec) -> str:
        return fingerprint(spec.source, _MARKER, spec.adapters, spec.hub_revision)

    def placement(self, spec: ModelSpec, options: Any) -> tuple[str, str]:
        """(device, dtype) of a run: ``--device`` or the best device here; ``--dtype`` or
        the model's own (``auto``), never a forced float32/float16."""
        device = getattr(options, "device", None) or default_device()
        dtype = getattr(options, "dtype", None)
        if not dtype or dtype == "auto":
            dtype = own_dtype(local_folder(spec.source, _MARKER, spec.hub_revision))
        return device, dtype

    load_key = placement  # a loaded model is one device and dtype

    def estimate_bytes(self, spec: ModelSpec, options: Any) -> int:
        """The weight files' size, scaled from the saved dtype to the one loaded."""
        folder = local_folder(spec.source, _MARKER, spec.hub_revision)
        if folder is None:
            return 0
        dtype = self.placement(spec, options)[1]
        return weight_bytes(folder) * DTYPE_BYTES[dtype] // DTYPE_BYTES[own_dtype(folder)]

    def defaults(self, spec: ModelSpec) -> dict[str, Any]:
        """Sampling defaults from the model's ``generation_config.json`` (read as JSON,
        without loading anything): what its authors recommend for the options left out;
        then ``genmagic.json``, option defaults written for genmagic (e.g. ``{"raw": true}``
        for a base model whose tokenizer has a chat template it was not tuned on)."""
        folder = local_folder(spec.source, _MARKER, spec.hub_revision)
        config = read_json(os.path.join(folder, "generation_config.json")) if folder else {}
        own = read_json(os.path.join(folder, "genmagic.json")) if folder else {}
        return {**generation_defaults(config), **own}

    # -- loading
    def load(self, spec: ModelSpec, options: Any) -> Loaded:
        folder = require_folder(spec.source, _MARKER, spec.hub_revision)
        safe, pickled = _weights(folder)
        if not safe:
            if pickled and not spec.allow_pickle:
                raise ModelNotFoundError(
                    f"{spec.alias!r} has only pickle weights ({os.path.basename(pickled[0])}), which can run code; "
                    "convert them to safetensors, or register the model with allow_pickle = true if you trust it"
                )
            if not pickled:
                raise ModelNotFoundError(
                    f"{spec.alias!r} ({folder}) has no model weights (*.safetensors); "
                    "point -m at a folder written by save_pretrained"
                )
        import torch
        from safetensors import SafetensorError
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device, dtype_name = self.placement(spec, options)
        check_device(device)
        try:
            with quiet_progress_bars("transformers"):
                tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=spec.trust_remote_code)
                model = AutoModelForCausalLM.from_pretrained(
                    folder,
                    dtype=getattr(torch, dtype_name),
                    # transformers 5 always loads with low CPU memory (meta init, mmapped safetensors);
                    # on an accelerator the weights go straight to it, without a CPU copy first
                    device_map=None if device == "cpu" else device,
                    use_safetensors=bool(safe),
                    trust_remote_code=spec.trust_remote_code,
                )
        except (OSError, ValueError, RuntimeError, SafetensorError) as err:  # a corrupt or partial file
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelNotFoundError(f"cannot load {spec.alias!r} from {folder}: {first}") from None
        if spec.adapters:
            model = self._add_adapters(model, spec.adapters)
            model.to(device)
        model.eval()
        config = model.config
        context = int(
            getattr(config, "max_position_embeddings", 0)
            or getattr(config, "n_positions", 0)
            or min(int(getattr(tokenizer, "model_max_length", 2048)), 1 << 20)
        )
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters())
        nbytes += sum(b.numel() * b.element_size() for b in model.buffers())
        return Loaded(
            spec=spec,
            model=_TextModel(model, tokenizer, context),
            nbytes=nbytes,
            device=device,
            dtype=dtype_name,
            info={"folder": folder, "context": context, "architecture": type(model).__name__},
        )

    @staticmethod
    def _add_adapters(model: Any, adapters: tuple[str, ...]) -> Any:
        """Wrap ``model`` with every LoRA adapter of the spec, all active at once, each at its
        scale (``PATH:SCALE``). Adapters are named by a hash of their absolute path, so two
        folders with the same basename do not collide."""
        try:
            from peft import PeftModel
            from peft.tuners.lora import LoraLayer
        except ImportError:
            raise ModelNotFoundError("adapters need peft: pip install 'genmagic[finetune]'") from None
        scales: dict[str, float] = {}
        for entry in adapters:
            path, scale = split_scale(entry)
            if not os.path.isfile(os.path.join(path, "adapter_config.json")):
                raise ModelNotFoundError(
                    f"adapter {path!r} has no adapter_config.json; point --adapter at a saved LoRA folder"
                )
            name = "adapter_" + hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:12]
            with warnings.catch_warnings():  # peft asks transformers a deprecated question (is_gradient_checkpointing)
                warnings.filterwarnings("ignore", category=FutureWarning)
                if isinstance(model, PeftModel):
                    model.load_adapter(path, adapter_name=name)  # loaded, not yet active
                else:
                    model = PeftModel.from_pretrained(model, path, adapter_name=name)
            scales[name] = scale
        model.base_model.set_adapter(list(scales), inference_mode=True)  # all of them active
        for module in model.modules():
            if isinstance(module, LoraLayer):
                for name, scale in scales.items():
                    if scale != 1.0:
                        module.set_scale(name, scale)
        return model

    def unload(self, loaded: Loaded) -> None:
        loaded.model = None

    # -- generation
    def encode(self, tm: _TextModel, request: Request) -> list[int]:
        """The prompt's token ids: a user turn of the chat template when the tokenizer has one
        (unless ``--raw``), a transcript when chatting without one, else the plain text."""
        options: TextOptions = request.options  # type: ignore[assignment]
        tok = tm.tokenizer
        templated = bool(getattr(tok, "chat_template", None)) and not options.raw
        if options.chat or options.system or request.messages or templated:
            messages = []
            if options.system:
                messages.append({"role": "system", "content": options.system})
            messages += [{"role": role, "content": content} for role, content in request.messages]
            messages.append({"role": "user", "content": request.prompt})
            if getattr(tok, "chat_template", None):
                text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            else:
                text = transcript(messages)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            if tok.bos_token_id is not None and (not ids or ids[0] != tok.bos_token_id) and not getattr(tok, "chat_template", None):
                ids = [tok.bos_token_id, *ids]
        else:
            ids = tok(request.prompt)["input_ids"]
        return list(ids)

    def check_length(self, tm: _TextModel, ids: list[int], options: TextOptions, alias: str) -> list[int]:
        limit = tm.context
        if options.max_new_tokens >= limit:
            raise PromptError(
                f"--max-new-tokens {options.max_new_tokens} does not fit {alias}'s context of {limit} tokens; "
                f"use --max-new-tokens {max(1, limit // 2)} or less"
            )
        room = limit - options.max_new_tokens
        if len(ids) > room:
            if not options.truncate:
                raise PromptError(
                    f"the prompt is {len(ids)} tokens but {alias} has room for {room} "
                    f"(context {limit} - --max-new-tokens {options.max_new_tokens}); "
                    "shorten it, lower --max-new-tokens, or pass --truncate to keep its end"
                )
            ids = ids[-room:]
        return ids

    @staticmethod
    def generation_config(tm: _TextModel, options: TextOptions, speculate: Mapping[str, Any] | None = None) -> Any:
        """The ``GenerationConfig`` of a run. Sampling is done by :func:`row_sampler` (each row
        with its own generator), so transformers itself always decodes greedily, over logits the
        sampler has narrowed to the token it drew."""
        from transformers import GenerationConfig

        tok, model = tm.tokenizer, tm.model
        gen_cfg = model.generation_config
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else tok.eos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else (eos[0] if isinstance(eos, list) else eos)
        config = GenerationConfig(
            max_new_tokens=options.max_new_tokens,
            do_sample=False,
            repetition_penalty=1.0,  # applied by batching.repetition_penalty: without the rows' padding
            eos_token_id=eos,
            pad_token_id=pad,
            bos_token_id=gen_cfg.bos_token_id,
            # neutral values, or the model's own sampling defaults would be merged in (and warned about)
            temperature=1.0, top_p=1.0, top_k=50,
            **(speculate or {}),  # --speculate (see speculation)
        )
        if options.stop:
            config.stop_strings = list(options.stop)
        return config

    def generate(self, loaded: Loaded, request: Request, sink: Sink) -> TextResult:
        import torch

        tm: _TextModel = loaded.model
        options: TextOptions = request.options  # type: ignore[assignment]
        ids = self.check_length(tm, self.encode(tm, request), options, request.model)
        tok, model = tm.tokenizer, tm.model
        speculate = speculation(options, 1, len(ids), loaded.dtype)
        generation_config = self.generation_config(tm, options, speculate)

        input_ids = torch.tensor([ids], device=loaded.device)
        attention = torch.ones_like(input_ids)
        texts: list[str] = []
        counts: list[int] = []
        status = "ok"
        error: str | None = None
        started = time.perf_counter()
        first_token: float | None = None
        for index in range(options.num):
            streamer = _Streamer(tok, sink, index, options.stop)
            seed = options.seed + index if options.seed is not None else None
            constraint = json_processor(tok, request, 1, generation_config.eos_token_id)
            try:
                with seeded(seed, loaded.device), torch.inference_mode(), torch_threads(loaded.nbytes if loaded.device == "cpu" else 1 << 40):
                    model.generate(
                        input_ids=input_ids,
                        attention_mask=attention,
                        generation_config=generation_config,
                        streamer=streamer,
                        tokenizer=tok if options.stop else None,
                        logits_processor=_processors(options, [0], constraint, [seed], loaded.device),
                    )
            except (KeyboardInterrupt, _Cancelled):
                status = "interrupted"
            if first_token is None and streamer.first_token_at is not None:
                first_token = streamer.first_token_at - started
            texts.append(streamer.flush())
            counts.append(len(streamer.ids))
            if status == "ok" and sink.cancelled:
                status = "interrupted"
            error = cut_off(constraint, 0, streamer.ids, options) if status == "ok" else None
            if error:
                status, error = "error", (f"sample {index + 1}: " if options.num > 1 else "") + error
            if status != "ok":
                break
        return _text_result(request, loaded, status, texts, counts, started, first_token, len(ids), error=error,
                            info={"speculation": "prompt-lookup" if speculate else "off"})


    # -- batches (Engine.run_many)
    def plan_batches(self, loaded: Loaded, requests: list[Request], batch_size: int | None) -> list[list[int]]:
        """Batches for :meth:`generate_batch`: rows whose options match apart from the seed, sorted by
        prompt length (less padding), ``batch_size`` rows each (default: :func:`~.batching.auto_batch_size`).
        A row of several samples (``-n``) runs alone."""
        tm: _TextModel = loaded.model
        lengths = [len(self.encode(tm, r)) for r in requests]
        # rows batch together when only the seed differs; several samples or an explicit
        # --speculate prompt-lookup (one row at a time in transformers) run alone
        alone = [r.options.num > 1 or r.options.speculate == "prompt-lookup" for r in requests]  # type: ignore[attr-defined]
        keys = [(r.options.replace(seed=None), str(r.to_dict()["inputs"]), i if alone[i] else -1)  # type: ignore[attr-defined]
                for i, r in enumerate(requests)]
        if batch_size is None:
            longest = max(lengths, default=1) + max(r.options.max_new_tokens for r in requests)  # type: ignore[attr-defined]
            batch_size = auto_batch_size(tm.model, loaded.device, DTYPE_BYTES[loaded.dtype], longest)
        return plan(keys, lengths, batch_size)

    def generate_batch(self, loaded: Loaded, requests: list[Request], sinks: list[Sink]) -> list[TextResult]:
        """Requests whose options match apart from the seed, as one left-padded batch; row ``i``
        samples with its own seed (:func:`~.batching.row_sampler`) and stops on its own (end token,
        ``--stop``, its sink cancelled), so each row is the text the request gives alone.

        Padding is masked out of attention and positions count from each row's first real token,
        but the padded shapes change how the matrix products round. Measured (bench/batch.py,
        next-token logits, batch vs alone): float32 differs by at most ~2e-6, and greedy rows are
        the single run's tokens (tested); bfloat16 by up to ~4e-2, so a greedy row can take
        another token where its top two candidates are that close (random-weight 189M
        Llama: 40 of 64 rows identical over 16 tokens; trained models have far fewer near-ties).
        Ctrl-C returns every row as far as it got: rows that had ended are ``ok``."""
        import torch

        if len(requests) == 1 or any(r.options.num > 1 or r.options.speculate == "prompt-lookup"  # type: ignore[attr-defined]
                                     for r in requests):
            return [self.generate(loaded, r, s) for r, s in zip(requests, sinks, strict=True)]
        tm: _TextModel = loaded.model
        options: TextOptions = requests[0].options  # type: ignore[assignment]
        rows = [self.check_length(tm, self.encode(tm, r), options, r.model) for r in requests]
        tok, model = tm.tokenizer, tm.model
        generation_config = self.generation_config(tm, options)
        eos = generation_config.eos_token_id
        ends = {int(e) for e in (eos if isinstance(eos, list) else [eos]) if e is not None}
        ends.add(int(generation_config.pad_token_id))
        input_ids, attention = left_pad(rows, generation_config.pad_token_id, loaded.device)
        constraint = json_processor(tok, requests[0], len(rows), generation_config.eos_token_id)  # -f json / --schema
        streamers = [_Streamer(tok, sink, 0, options.stop) for sink in sinks]
        row_streamer = RowStreamer(streamers, ends)
        status = "ok"
        started = time.perf_counter()
        try:
            with torch.inference_mode(), torch_threads(loaded.nbytes if loaded.device == "cpu" else 1 << 40):
                model.generate(
                    input_ids=input_ids,
                    attention_mask=attention,
                    generation_config=generation_config,
                    streamer=row_streamer,
                    tokenizer=tok if options.stop else None,
                    logits_processor=_processors(options, [input_ids.shape[1] - len(r) for r in rows], constraint,
                                                 [r.seed for r in requests], loaded.device),
                    stopping_criteria=rows_cancelled(sinks),
                )
        except KeyboardInterrupt:
            status = "interrupted"
        done = time.perf_counter()
        results = []
        for i, (request, streamer, sink, ids) in enumerate(zip(requests, streamers, sinks, rows, strict=True)):
            text = streamer.flush()
            ended = streamer.stopped or len(streamer.ids) >= options.max_new_tokens or row_streamer.finished[i]
            row_status = "interrupted" if sink.cancelled or (status != "ok" and not ended) else "ok"
            error = cut_off(constraint, i, streamer.ids, options) if row_status == "ok" else None
            first = streamer.first_token_at - started if streamer.first_token_at is not None else None
            results.append(_text_result(request, loaded, "error" if error else row_status, [text], [len(streamer.ids)],
                                        started, first, len(ids), done, error=error, info={"speculation": "off"}))
        return results


def _processors(options: TextOptions, pads: list[int], constraint: Any, seeds: list[int | None], device: str) -> Any:
    """The logits processors of a run, in order: the repetition penalty over each row's own tokens
    (``pads``: its left padding), the JSON constraint (-f json / --schema), then each row's sampler."""
    from transformers import LogitsProcessorList

    return LogitsProcessorList([*repetition_penalty(options.repetition_penalty, pads),
                                *([constraint] if constraint is not None else []),
                                *row_sampler(options, seeds, device)])


def _text_result(request: Request, loaded: Loaded, status: str, texts: list[str], counts: list[int], started: float,
                 first_token: float | None, prompt_tokens: int, finished: float | None = None, *,
                 error: str | None = None, info: Mapping[str, Any] | None = None) -> TextResult:
    elapsed = (finished or time.perf_counter()) - started
    total = sum(counts)
    return TextResult(
        request=request,
        status=status,
        error=error,
        texts=texts,
        tokens=counts,
        timings={
            "generate": elapsed,
            "first_token": first_token if first_token is not None else elapsed,
            "tokens": float(total),
            "tokens_per_s": total / elapsed if elapsed > 0 else 0.0,
            "prompt_tokens": float(prompt_tokens),
        },
        info={"device": loaded.device, "dtype": loaded.dtype, **loaded.info, **(info or {})},
    )
