"""Which JSON-grammar engine for constrained decoding: llguidance against outlines-core.

For each tokenizer (the embedded tiny-text, and the 300-token byte-level BPE of the tests), each
engine constrains greedy decoding of the embedded model to a JSON Schema on a few prompts:
  - compile: building the engine's index of the schema for this vocabulary (ms),
  - mask: the engine's time per token to compute the allowed-token bitmask (µs),
  - valid: how many outputs parse and validate.
Both engines' masks go through the same bit unpacking, so only the engine differs.

lm-format-enforcer 0.11.3 is not measured: its transformers integration does not import under
transformers 5 (``transformers.tokenization_utils`` is gone). xgrammar 0.2.9 is not installed: on
PyPI it pulls triton and apache-tvm-ffi, a GPU compiler stack the CPU torch does not need.

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/grammar_engines.py
"""

from __future__ import annotations

import json
import tempfile
import time
from typing import Any

import torch

SCHEMA = {
    "type": "object",
    "properties": {"customer": {"type": "string"}, "urgent": {"type": "boolean"},
                   "order_ids": {"type": "array", "items": {"type": "integer"}}},
    "required": ["customer", "urgent", "order_ids"],
    "additionalProperties": False,
}
VERBOSE = False
PROMPTS = ["Ticket from Dana: refund order 9921.", "Who?", "Extract: Bob, urgent, orders 1 and 2.", "{", ""]


class Masker:
    """A logits processor around a per-token ``fill(bitmask)`` and ``advance(token)``."""

    def __init__(self, engine: Any, vocab: int) -> None:
        self.engine, self.vocab = engine, vocab
        self.bitmask = torch.zeros((1, (vocab + 31) // 32), dtype=torch.int32)
        self.start: int | None = None
        self.mask_s = 0.0
        self.steps = 0

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.start is None:
            self.start = input_ids.shape[1]
        else:
            self.engine.advance(int(input_ids[0, -1]))
        t = time.perf_counter()
        self.bitmask.fill_(-1)
        self.engine.fill(self.bitmask)
        self.mask_s += time.perf_counter() - t
        self.steps += 1
        bits = ((self.bitmask.unsqueeze(-1) >> torch.arange(32, dtype=torch.int32)) & 1).bool().reshape(1, -1)
        allowed = torch.zeros_like(scores, dtype=torch.bool)
        width = min(scores.shape[1], self.vocab)
        allowed[:, :width] = bits[:, :width]
        return scores.masked_fill(~allowed, float("-inf"))


class LLGuidance:
    def __init__(self, tokenizer: Any, eos: int) -> None:
        import llguidance.hf
        from llguidance import LLMatcher

        self.tok = llguidance.hf.from_tokenizer(tokenizer, eos_token=eos)
        self.grammar = LLMatcher.grammar_from_json_schema(
            SCHEMA, overrides={"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "})
        self.vocab = self.tok.vocab_size

    def new(self) -> Any:
        from llguidance import LLMatcher

        matcher = LLMatcher(self.tok, self.grammar, log_level=0)

        class Engine:
            def fill(self, bitmask: torch.Tensor) -> None:
                matcher.unsafe_compute_mask_ptr(bitmask.data_ptr(), bitmask.numel() * 4)

            def advance(self, token: int) -> None:
                if not matcher.is_stopped():
                    matcher.consume_token(token)

        return Engine()


class OutlinesCore:
    def __init__(self, tokenizer: Any, eos: int) -> None:
        import llguidance.hf
        import outlines_core as oc

        bytes_of = llguidance.hf.from_tokenizer(tokenizer, eos_token=eos)  # each token's bytes
        self.vocab = bytes_of.vocab_size
        table: dict[bytes, list[int]] = {}
        for token in range(self.vocab):
            piece = bytes_of.decode_bytes([token])
            if token != eos and piece and not bytes_of.is_special_token(token):
                table.setdefault(piece, []).append(token)
        regex = oc.json_schema.build_regex_from_schema(json.dumps(SCHEMA), r"[ ]?")
        self.index = oc.Index(regex, oc.Vocabulary(eos, table))

    def new(self) -> Any:
        import outlines_core as oc

        guide = oc.Guide(self.index)

        class Engine:
            def fill(self, bitmask: torch.Tensor) -> None:
                guide.write_mask_into(bitmask.data_ptr(), bitmask.numel(), bitmask.element_size())

            def advance(self, token: int) -> None:
                if not guide.is_finished():
                    guide.advance(token)

        return Engine()


def measure(folder: str, name: str) -> None:
    import jsonschema
    from transformers import AutoModelForCausalLM, AutoTokenizer, LogitsProcessorList

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    eos = int(model.generation_config.eos_token_id or tok.eos_token_id)
    for engine_cls in (LLGuidance, OutlinesCore):
        t = time.perf_counter()
        engine = engine_cls(tok, eos)
        compiled = time.perf_counter() - t
        valid, mask_s, steps = 0, 0.0, 0
        for prompt in PROMPTS:
            ids = tok(prompt or " ", return_tensors="pt")["input_ids"]
            masker = Masker(engine.new(), engine.vocab)
            with torch.inference_mode():
                out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=48, do_sample=False,
                                     logits_processor=LogitsProcessorList([masker]), pad_token_id=eos, eos_token_id=eos)
            text = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
            if VERBOSE:
                print(repr(text))
            try:
                jsonschema.validate(json.loads(text), SCHEMA)
                valid += 1
            except (ValueError, jsonschema.ValidationError):
                pass
            mask_s += masker.mask_s
            steps += masker.steps
        print(f"{name:>12} {engine_cls.__name__:>12}: compile {compiled * 1e3:7.1f} ms, mask {mask_s / steps * 1e6:7.1f} µs/token, "
              f"valid {valid}/{len(PROMPTS)} (cut off at 48 tokens counts as invalid)")


def main() -> None:
    from pathlib import Path

    from genmagic.registry import PACKAGE_MODELS
    from genmagic.testing import build_tiny_text_model

    torch.set_num_threads(1)
    measure(str(Path(PACKAGE_MODELS) / "tiny-text"), "tiny-text")
    with tempfile.TemporaryDirectory() as tmp:
        measure(str(build_tiny_text_model(Path(tmp) / "gpt2", context=128)), "byte-BPE-300")


if __name__ == "__main__":
    main()
