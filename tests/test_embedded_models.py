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


def _checker() -> Any:
    import sys

    sys.path.insert(0, str(REPO / "training" / "image"))
    try:
        import checker
    finally:
        sys.path.pop(0)
    return checker


def test_tiny_image_is_the_default_deterministic_and_on_colour(ip: Any) -> None:
    prompts = [
        ("a red circle on a white background", "red", "white"),
        ("a blue square on a yellow background", "blue", "yellow"),
        ("a green circle on a black background", "green", "black"),
        ("a yellow circle on a blue background", "yellow", "blue"),
        ("an orange square on a cyan background", "orange", "cyan"),
        ("a purple circle on a white background", "purple", "white"),
    ]
    checker = _checker()
    hits = 0
    for i, (prompt, colour, background) in enumerate(prompts):
        result = run(ip, f"%%imagine --seed {i} --steps 20 --no-cache --preview 0\n{prompt}")
        assert result.request.model == "tiny-image" and result.images[0].size == (64, 64)
        found = checker.analyze(result.images[0])
        hits += checker.score(found, {"color": colour, "background": background}) == {"color": True, "background": True}
    again = run(ip, "%%imagine --seed 0 --steps 20 --no-cache --preview 0\na red circle on a white background")
    assert again.images[0].tobytes() == run(
        ip, "%%imagine --seed 0 --steps 20 --no-cache --preview 0\na red circle on a white background"
    ).images[0].tobytes()
    print("tiny-image colour+background hits:", hits)
    assert hits >= 4, f"colour and background right in only {hits} of {len(prompts)} images"
