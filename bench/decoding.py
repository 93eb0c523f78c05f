"""Decoding speed: grammar-constrained JSON against free decoding, and prompt-lookup decoding
against plain greedy decoding.

Two models:
  - tiny-text, the embedded model (trained; 4.6M parameters, 4096-token vocabulary);
  - a ~120M-parameter Llama with random weights built here (float32, its own dtype, on the CPU),
    with a 32,000-token byte-level BPE trained here on the Python standard library's sources:
    the size at which the per-token cost of a grammar mask matters.

What the numbers mean:
  - constrained / free: seconds per generated token under the JSON grammar (``-f json``, and a
    ``--schema``) over seconds per token decoding freely, same prompts, greedy. Target <= 1.2x.
    The grammar is built once per run (compile, ms) and is not in the per-token figure.
  - prompt-lookup / greedy: wall time of plain greedy decoding over the same with
    ``--speculate prompt-lookup`` on an extraction prompt (the answer copies from the prompt);
    the outputs must be identical token for token (float32). Goal >= 1.5x. Also a long prompt the
    answer does not copy from (open-ended), and how often bfloat16/float16 change the output. On the random-weight model
    the model never copies from its prompt on purpose, so drafts are rarely accepted: that
    figure is the cost of prompt lookup when it does not help, not its gain.
Each figure is the best of REPEATS runs (the machine is shared).

    PYTHONPATH=. OMP_NUM_THREADS=1 python bench/decoding.py
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPEATS = 3
NEW_TOKENS = 64
JSON_PROMPTS = [
    "Extract the customer and the order numbers as JSON: Dana wrote that orders 9921 and 9922 never arrived.",
    "List three fruits as a JSON array.",
    "Give a JSON object describing a cat: name, age, colours.",
]
SCHEMA = {
    "type": "object",
    "properties": {"customer": {"type": "string"}, "urgent": {"type": "boolean"},
                   "order_ids": {"type": "array", "items": {"type": "integer"}}},
    "required": ["customer", "urgent", "order_ids"],
}
PASSAGE = (
    "Support ticket 4411. From: Dana Whitfield. Product: the Aurora 3000 blender, bought on 12 March. "
    "Problem: the blender stops after ten seconds and smells of burnt plastic; the lid latch is cracked. "
    "Orders: 9921 (blender) and 9922 (spare jug). Request: a refund for order 9921 and a replacement jug. "
)
LOOKUP_PROMPT = PASSAGE + "Repeat the ticket above word for word:\n"
# a long greedy prompt whose answer does not copy from it: what prompt lookup costs when it does not help
OPEN_PROMPT = PASSAGE + "Now forget the ticket and write a short story about a dragon who learns to bake bread."


def best(fn: Any) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(REPEATS):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def chat_ids(tok: Any, prompt: str) -> torch.Tensor:
    if getattr(tok, "chat_template", None):
        text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
        return torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    return torch.tensor([tok(prompt)["input_ids"]])


def generate(model: Any, ids: torch.Tensor, eos: int, **kwargs: Any) -> torch.Tensor:
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                             repetition_penalty=1.0, pad_token_id=eos, eos_token_id=eos, **kwargs)
    return out[0, ids.shape[1]:]


def constrained_vs_free(name: str, model: Any, tok: Any, eos: int) -> None:
    from transformers import LogitsProcessorList

    from genmagic.backends._grammar import json_constraint

    for label, schema in (("-f json", None), ("--schema", SCHEMA)):
        free_s = free_n = con_s = con_n = compile_s = 0.0
        for prompt in JSON_PROMPTS:
            ids = chat_ids(tok, prompt)
            seconds, out = best(lambda ids=ids: generate(model, ids, eos, min_new_tokens=NEW_TOKENS))
            free_s, free_n = free_s + seconds, free_n + len(out)
            t = time.perf_counter()
            json_constraint(tok, schema, 1, eos, NEW_TOKENS)
            compile_s += time.perf_counter() - t
            seconds, out = best(lambda ids=ids, schema=schema: generate(
                model, ids, eos, logits_processor=LogitsProcessorList([json_constraint(tok, schema, 1, eos, NEW_TOKENS)])))
            con_s, con_n = con_s + seconds, con_n + len(out)
        free, con = free_s / free_n, con_s / con_n
        print(f"{name:>10} {label:>9}: free {free * 1e3:6.2f} ms/token, constrained {con * 1e3:6.2f} ms/token "
              f"-> {con / free:4.2f}x (target <= 1.2x); grammar per run {compile_s / len(JSON_PROMPTS) * 1e3:5.1f} ms")


def processor_cost(name: str, tok: Any, eos: int, vocab: int) -> None:
    """The grammar processor alone (no model): its time per token when replaying a JSON answer,
    the figure that does not move with the machine's load as the per-token ratios do."""
    from genmagic.backends._grammar import json_constraint

    answer = '{"customer": "Dana Whitfield", "urgent": true, "order_ids": [9921, 9922]}'
    ids = tok(answer, add_special_tokens=False)["input_ids"]
    for label, schema in (("-f json", None), ("--schema", SCHEMA)):
        json_constraint(tok, schema, 1, eos, NEW_TOKENS)  # the tokenizer's conversion, once per tokenizer
        times = []
        for _ in range(REPEATS):
            constraint = json_constraint(tok, schema, 1, eos, NEW_TOKENS)
            prompt = torch.zeros((1, 4), dtype=torch.long)
            t = time.perf_counter()
            for step in range(len(ids) + 1):
                constraint(torch.cat([prompt, torch.tensor([ids[:step]], dtype=torch.long)], dim=1), torch.zeros((1, vocab)))
            times.append((time.perf_counter() - t) / (len(ids) + 1))
        print(f"{name:>10} {label:>9}: the grammar processor alone {min(times) * 1e6:6.0f} µs/token "
              f"(vocabulary {vocab}, {len(ids)} tokens replayed)")


def lookup_vs_greedy(name: str, model: Any, tok: Any, eos: int) -> None:
    for label, prompt in (("extraction", LOOKUP_PROMPT), ("open-ended", OPEN_PROMPT)):
        lookup_once(f"{name} {label}", model, tok, eos, prompt)


def lookup_once(name: str, model: Any, tok: Any, eos: int, prompt: str) -> None:
    from genmagic.backends.transformers_text import PROMPT_LOOKUP_TOKENS

    ids = chat_ids(tok, prompt)
    plain_s, plain = best(lambda: generate(model, ids, eos))
    look_s, look = best(lambda: generate(model, ids, eos, prompt_lookup_num_tokens=PROMPT_LOOKUP_TOKENS))
    same = plain.tolist() == look.tolist()
    print(f"{name:>21} prompt-lookup: greedy {plain_s:5.2f} s, prompt-lookup {look_s:5.2f} s for {len(plain)} tokens "
          f"({ids.shape[1]}-token prompt) -> {plain_s / look_s:4.2f}x faster (goal >= 1.5x); identical output: {same}")
    if not same:
        sys.exit("prompt-lookup changed the greedy output")


def lookup_in_low_precision(folder: Path, tok: Any) -> None:
    """Is greedy output still identical in bfloat16 / float16? (It is exact in float32.)"""
    from transformers import AutoModelForCausalLM

    prompts = (LOOKUP_PROMPT, OPEN_PROMPT, PASSAGE + " Summarise the ticket in one line.")
    for dtype in (torch.bfloat16, torch.float16):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
        differ = sum(generate(model, chat_ids(tok, p), 2).tolist()
                     != generate(model, chat_ids(tok, p), 2, prompt_lookup_num_tokens=10).tolist() for p in prompts)
        print(f"{'tiny-text':>10} {str(dtype).removeprefix('torch.')}: prompt lookup changed the greedy output of "
              f"{differ} of {len(prompts)} prompts")


def realistic_model(folder: Path) -> tuple[Any, Any]:
    """A ~120M-parameter Llama (random weights, float32) and a 32k byte-level BPE trained here."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    files = sorted(glob.glob(os.path.join(sysconfig.get_paths()["stdlib"], "**", "*.py"), recursive=True))
    lines: list[str] = []
    for path in files:
        with open(path, encoding="utf-8", errors="ignore") as fh:
            lines.extend(fh.read().splitlines())
        if len(lines) > 300_000:
            break
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=32_000, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(lines + JSON_PROMPTS + [LOOKUP_PROMPT], trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                         num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=2048,
                         tie_word_embeddings=True, bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"realistic: Llama, {params / 1e6:.0f}M parameters (random weights, {next(model.parameters()).dtype}), "
          f"vocabulary {len(tok)} (byte-level BPE trained on {len(lines)} lines of Python)")
    return model, tok


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genmagic.registry import PACKAGE_MODELS

    torch.set_num_threads(1)
    folder = Path(PACKAGE_MODELS) / "tiny-text"
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    processor_cost("tiny-text", tok, 2, model.config.vocab_size)
    constrained_vs_free("tiny-text", model, tok, 2)
    lookup_vs_greedy("tiny-text", model, tok, 2)
    lookup_in_low_precision(folder, tok)
    with tempfile.TemporaryDirectory() as tmp:
        big, big_tok = realistic_model(Path(tmp))
        processor_cost("realistic", big_tok, int(big_tok.eos_token_id), big.config.vocab_size)
        constrained_vs_free("realistic", big, big_tok, int(big_tok.eos_token_id))
        lookup_vs_greedy("realistic", big, big_tok, int(big_tok.eos_token_id))


if __name__ == "__main__":
    main()
