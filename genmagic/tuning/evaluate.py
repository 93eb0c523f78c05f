"""Before/after evaluation of a text LoRA: held-out perplexity, and greedy samples from the base
and the tuned model side by side on a few eval prompts (the same weights, adapter off and on)."""

from __future__ import annotations

import math
from typing import Any

from .data import Encoded
from .train_text import mean_loss

SAMPLE_TOKENS = 40


def perplexity(model: Any, tokenizer: Any, encoded: Encoded, idx: list[int], device: str, batch_size: int,
               *, adapter: bool) -> float | None:
    """exp(mean token loss) over ``idx``; ``adapter=False`` measures the base (adapter off)."""
    if not idx:
        return None
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    if adapter:
        loss = mean_loss(model, encoded, idx, pad, device, batch_size)
    else:
        with model.disable_adapter():
            loss = mean_loss(model, encoded, idx, pad, device, batch_size)
    return math.exp(min(loss, 50.0))


def _greedy(model: Any, tokenizer: Any, ids: list[int], device: str) -> str:
    import torch

    ids = ids or ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else [tokenizer.eos_token_id or 0])
    inputs = torch.tensor([ids], device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=SAMPLE_TOKENS,
                             do_sample=False, pad_token_id=pad)
    return str(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True))


def samples(model: Any, tokenizer: Any, encoded: Encoded, idx: list[int], device: str, n: int) -> list[dict[str, str]]:
    """``{"prompt", "reference", "base", "tuned"}`` for the first ``n`` eval examples, each
    generated from the ids ``%%generate`` would send."""
    out = []
    model.eval()
    for i in idx[:n]:
        prompt, ids = encoded.prompts[i], encoded.prompt_ids[i]
        with model.disable_adapter():
            base = _greedy(model, tokenizer, ids, device)
        tuned = _greedy(model, tokenizer, ids, device)
        out.append({"prompt": prompt, "reference": encoded.references[i], "base": base, "tuned": tuned})
    return out
