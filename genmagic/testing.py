"""Tiny, seeded models built in code, for tests and benchmarks (no downloads).

Like diffusers' ``get_dummy_components``: real transformers/diffusers classes with tiny
configs, saved with ``save_pretrained`` (safetensors) so they load through the same path
as any user's model folder.
"""

from __future__ import annotations

import os
from pathlib import Path

_TEXT = """Once upon a time there was a little fox who lived in the forest.
The fox liked to read books about the stars and the sea.
Every night the fox looked at the sky and counted the stars.
Data scientists write notebooks; notebooks hold code, text and pictures.
A model reads a prompt and writes an answer, one token at a time.
The quick brown fox jumps over the lazy dog. {"key": [1, 2, 3]}
"""


def build_tiny_text_model(path: str | os.PathLike[str], *, chat_template: bool = True, context: int = 64) -> Path:
    """A 1-layer, 32-wide GPT-2 with a 300-token byte-level BPE tokenizer trained here."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_TEXT.splitlines() * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    if chat_template:
        fast.chat_template = (
            "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}<assistant>{% endif %}"
        )
    fast.save_pretrained(out)
    eos = fast.eos_token_id
    config = GPT2Config(
        vocab_size=len(fast),
        n_positions=context,
        n_embd=32,
        n_layer=1,
        n_head=2,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    model.generation_config.bos_token_id = eos
    model.generation_config.eos_token_id = eos
    model.generation_config.pad_token_id = eos
    model.save_pretrained(out, safe_serialization=True)
    return out
