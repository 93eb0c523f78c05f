"""Grammar-constrained JSON for transformers' ``generate``: a logits processor over llguidance.

:func:`json_constraint` builds a :class:`JsonConstraint` for a batch of rows (one llguidance
matcher per row): before each token it masks every token the JSON grammar (any JSON, or a JSON
Schema) does not allow next, so the output always parses. The grammar is llguidance's own JSON
Schema compiler (no grammar is written here); separators are ``", "`` and ``": "`` and no other
whitespace is allowed, so a model cannot pad forever. In the last :data:`RESERVE` tokens before
``max_new_tokens`` runs out, tokens that only close (``"``, ``]``, ``}``, end of text) are
preferred whenever the grammar allows one, so a long answer still ends as JSON; a row that is
still open at the limit is reported by :meth:`JsonConstraint.incomplete` (the run fails with a
clear reason instead of returning cut-off JSON).

The processor follows ``input_ids`` rather than counting calls (it rolls its matchers back when a
row's tokens differ from what it consumed), so it stays right whatever calls it. Rows that have
ended (padding after the end-of-text token) are left alone. Imported only inside a run.
"""

from __future__ import annotations

import weakref
from typing import Any

import torch

RESERVE = 12  # the last tokens before --max-new-tokens in which closing tokens are preferred (more with a schema)
_CLOSERS = frozenset(b'"]}')
_SEPARATORS = _CLOSERS | frozenset(b",: ")

_tokenizers: weakref.WeakKeyDictionary[Any, tuple[Any, torch.Tensor]] = weakref.WeakKeyDictionary()


def _engine_tokenizer(tokenizer: Any, eos: list[int]) -> tuple[Any, torch.Tensor]:
    """llguidance's view of a transformers tokenizer (kept per tokenizer: up to a second for a
    large vocabulary) and the closing preference of each token: 2 for the end of text and tokens
    made of ``"]}`` only, 1 for tokens of those and ``,: `` (a separator towards a required key)."""
    cached = _tokenizers.get(tokenizer)
    if cached is not None:
        return cached
    try:
        import llguidance.hf
    except ImportError:
        from ..errors import OptionError

        raise OptionError("-f json / --schema on an in-process model needs llguidance: pip install llguidance") from None
    engine = llguidance.hf.from_tokenizer(tokenizer, eos_token=eos)
    closers = torch.zeros(engine.vocab_size, dtype=torch.int8)
    for token in range(engine.vocab_size):
        piece = set(engine.decode_bytes([token]))
        if piece and piece <= _SEPARATORS:
            closers[token] = 2 if piece <= _CLOSERS else 1
    closers[[e for e in eos if e < engine.vocab_size]] = 2
    _tokenizers[tokenizer] = (engine, closers)
    return engine, closers


def grammar(schema: dict[str, Any] | None) -> str:
    """llguidance's grammar for ``schema`` (any JSON value when None), compact separators; an
    object schema that lists its properties gets no others (``additionalProperties: false`` unless
    it says otherwise), so the model fills the fields asked for."""
    from llguidance import LLMatcher

    overrides = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
    return str(LLMatcher.grammar_from_json_schema(_closed(schema) if schema is not None else {}, overrides=overrides))  # type: ignore[arg-type]


def _closed(node: Any) -> Any:
    if isinstance(node, list):
        return [_closed(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: (value if key in ("enum", "const", "default", "examples") else _closed(value)) for key, value in node.items()}
    if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def _reserve(schema: dict[str, Any] | None) -> int:
    """How many tokens before the limit to start closing: room for the property names still to
    write, one token per character at worst (a byte-level vocabulary), and their punctuation."""
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            props = node.get("properties")
            names.extend(props if isinstance(props, dict) else ())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return RESERVE + sum(len(name) + 6 for name in names)


class JsonConstraint:
    """A logits processor (``model.generate(logits_processor=[...])``) for ``rows`` rows."""

    def __init__(self, tokenizer: Any, schema: dict[str, Any] | None, rows: int, eos: list[int],
                 max_new_tokens: int) -> None:
        from llguidance import LLMatcher

        self.engine, self.closers = _engine_tokenizer(tokenizer, eos)
        text = grammar(schema)
        self.grammar = text
        self.matchers = [LLMatcher(self.engine, text, log_level=0) for _ in range(rows)]
        error = self.matchers[0].get_error() if self.matchers[0].is_error() else ""
        if error:
            from ..errors import OptionError

            raise OptionError(f"--schema: not supported for constrained decoding: {' '.join(error.split())}")
        self.consumed: list[list[int]] = [[] for _ in range(rows)]
        self.max_new_tokens = max_new_tokens
        self.reserve = min(_reserve(schema), max_new_tokens // 2)
        self.start: int | None = None
        words = (self.engine.vocab_size + 31) // 32
        self.bitmask = torch.zeros((rows, words), dtype=torch.int32)
        self._shifts = torch.arange(32, dtype=torch.int32)

    def _sync(self, row: int, ids: list[int]) -> None:
        """Make row ``row``'s matcher have consumed exactly ``ids`` (rolling back what differs)."""
        matcher, done = self.matchers[row], self.consumed[row]
        same = 0
        for a, b in zip(done, ids):
            if a != b:
                break
            same += 1
        if same < len(done):
            if matcher.is_error():  # a rollback does not clear an error: start again from what stays
                from llguidance import LLMatcher

                matcher = self.matchers[row] = LLMatcher(self.engine, self.grammar, log_level=0)
                kept = done[:same]
                done.clear()
                if kept and matcher.consume_tokens(kept):
                    done.extend(kept)
            else:
                matcher.rollback(len(done) - same)
                del done[same:]
        rest = ids[same:]
        if not rest or matcher.is_stopped() or matcher.is_error():
            return  # nothing new, or the row has ended: what follows is padding
        # Only the tokens the grammar allows: a draft (prompt lookup) may hold others, which the
        # verifying pass rejects; consuming one would leave the matcher in error, the row unconstrained.
        valid = matcher.validate_tokens(rest)
        if valid and matcher.consume_tokens(rest[:valid]):
            done.extend(rest[:valid])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = input_ids.shape[1]
        rows, vocab = scores.shape
        generated = input_ids.shape[1] - self.start
        closing = self.max_new_tokens - generated <= self.reserve
        self.bitmask.fill_(-1)
        for row in range(rows):
            self._sync(row, input_ids[row, self.start:].tolist())
            matcher = self.matchers[row]
            if not matcher.is_error():
                target = self.bitmask[row]
                matcher.unsafe_compute_mask_ptr(target.data_ptr(), target.numel() * 4)
        allowed = ((self.bitmask.unsqueeze(-1) >> self._shifts) & 1).bool().reshape(rows, -1)[:, : self.engine.vocab_size]
        if closing:  # the most closing tokens allowed, if any
            for level in (1, 2):
                closes = allowed & (self.closers >= level)
                allowed = torch.where(closes.any(dim=1, keepdim=True), closes, allowed)
        allowed[~allowed.any(dim=1)] = True  # a row that has ended (its padding): nothing to constrain
        mask = torch.zeros((rows, vocab), dtype=torch.bool)
        width = min(vocab, allowed.shape[1])
        mask[:, :width] = allowed[:, :width]
        return scores.masked_fill(~mask.to(scores.device), float("-inf"))

    def incomplete(self, row: int, ids: list[int]) -> bool:
        """Row ``row``, whose new tokens are ``ids``, ended without a complete JSON value
        (``max_new_tokens`` ran out). ``ids`` matter: the last token is never shown to the processor."""
        self._sync(row, list(ids))
        matcher = self.matchers[row]
        return not (matcher.is_stopped() or matcher.is_accepting())


def json_constraint(tokenizer: Any, schema: dict[str, Any] | None, rows: int, eos: int | list[int] | None,
                    max_new_tokens: int) -> JsonConstraint:
    """The processor for ``rows`` rows of one run (the end-of-text tokens: the model's)."""
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    if not ids and getattr(tokenizer, "eos_token_id", None) is not None:
        ids = [int(tokenizer.eos_token_id)]
    return JsonConstraint(tokenizer, schema, rows, ids, max_new_tokens)
