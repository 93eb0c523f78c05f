"""The shipped default models load through the default aliases and do what the model cards say."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from conftest import run

import genmagic

REPO = Path(__file__).resolve().parent.parent


def test_tiny_text_is_the_default_and_deterministic(ip: Any) -> None:
    first = run(ip, "%%generate --seed 11 --max-new-tokens 40 --no-cache\nAnd God said")
    second = run(ip, "%%generate --seed 11 --max-new-tokens 40 --no-cache\nAnd God said")
    assert first.request.model == "tiny-text" and first.texts == second.texts
    words = first.text.split()
    assert len(words) >= 10
    # readable English, not byte soup: most words are plain letters
    assert sum(w.strip(".,;:!?'\"()").isalpha() for w in words) / len(words) > 0.8


def test_tiny_text_chat_template(ip: Any) -> None:
    result = run(ip, "%%generate --chat --temperature 0 --max-new-tokens 30\nWhat does river mean?")
    assert result.ok and result.text.strip()
    loaded = genmagic._magics.engine.models.is_loaded(genmagic._magics.engine.registry.resolve("tiny-text", "text"))
    assert loaded is not None and loaded.model.tokenizer.chat_template
    assert loaded.nbytes < 20 * 2**20 and loaded.info["architecture"] == "LlamaForCausalLM"


def test_tiny_text_heldout_perplexity() -> None:
    spec = importlib.util.spec_from_file_location("tiny_text_eval", REPO / "training" / "text" / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ppl = module.heldout_perplexity(str(REPO / "genmagic" / "models" / "tiny-text"))
    assert 5 < ppl < 30  # the model card reports 19.0
