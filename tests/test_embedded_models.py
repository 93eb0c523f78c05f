"""The shipped default models load through the default aliases and do what the model cards say."""

from __future__ import annotations

import importlib.util
import re
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


STORY_OPENINGS = ["Once upon a time", "The old man walked to the", "Write a short story about a dragon."]
QUESTIONS = [("What is a psalm?", "psalm"), ("Define river.", "river"), ("What does generous mean?", "generous")]
ATTRIBUTION = re.compile(r"(^|\n)\s*--\s*\S[^\n]*$")  # a fortune file's "\t\t-- Mark Twain" ending


def test_tiny_text_role_tokens_are_listed_as_special_for_converters() -> None:
    """llama.cpp's convert_hf_to_gguf.py takes special tokens from ``added_tokens_decoder``; without
    it the role tokens became plain text in the GGUF and chat prompts differed from transformers'."""
    import json

    from transformers import AutoTokenizer

    folder = Path(genmagic.__file__).parent / "models" / "tiny-text"
    listed = json.loads((folder / "tokenizer_config.json").read_text())["added_tokens_decoder"]
    tok = AutoTokenizer.from_pretrained(folder)
    for role in ("<|system|>", "<|user|>", "<|assistant|>"):
        entry = listed[str(tok.convert_tokens_to_ids(role))]
        assert entry["content"] == role and entry["special"] is True and entry["normalized"] is False
        assert tok("x" + role, add_special_tokens=False)["input_ids"][-1] == tok.convert_tokens_to_ids(role)


def test_tiny_text_writes_with_the_magic_defaults(ip: Any) -> None:
    """Issue 9: plain prompts (through the chat template by default) give stories that go on,
    definitions that name their word, and no fortune-style attribution endings."""
    stories, answers, named = [], [], 0
    for seed in (1, 2):
        for prompt in STORY_OPENINGS:
            stories.append(run(ip, f"%%generate --seed {seed} --no-cache\n{prompt}").text)
        for prompt, word in QUESTIONS:
            text = run(ip, f"%%generate --seed {seed} --no-cache\n{prompt}").text
            answers.append(text)
            named += word in text.lower()
    assert all(t.strip() for t in stories + answers), stories + answers
    # v1 (issue 9): 2 of these 6 story answers reached 20 words
    assert sum(len(t.split()) >= 20 for t in stories) >= 5, stories
    assert not [t for t in stories + answers if ATTRIBUTION.search(t.rstrip())], stories + answers
    assert named >= 3, (named, answers)


def test_tiny_text_raw_continues_and_code_prompt_writes_code(ip: Any) -> None:
    raw = run(ip, "%%generate --raw --seed 3 --no-cache\nOnce upon a time")
    assert raw.request.options.raw and len(raw.text.split()) >= 10, raw.text
    code = [run(ip, f"%%generate -f code --seed {seed} --no-cache\ndef fibonacci(n):").text for seed in (1, 2)]
    assert any("return" in t or "\n    " in t for t in code), code


def test_tiny_text_heldout_perplexity() -> None:
    spec = importlib.util.spec_from_file_location("tiny_text_eval", REPO / "training" / "text" / "evaluate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ppl = module.heldout_perplexity(str(REPO / "genmagic" / "models" / "tiny-text"))
    assert 5 < ppl < 21  # the model card reports 20.1 (v1: 19.0)


def _checker() -> Any:
    import sys

    sys.path.insert(0, str(REPO / "training" / "image"))
    try:
        import checker
    finally:
        sys.path.pop(0)
    return checker


SHIPPED_IMAGE_PROMPTS = [
    ("a red circle on a white background", {"color": "red", "shape": "circle", "background": "white"}),
    ("a large blue square on a yellow background", {"color": "blue", "shape": "square", "background": "yellow"}),
    ("a green triangle in the top left on a black background",
     {"color": "green", "shape": "triangle", "background": "black", "position": "top left"}),
    ("a yellow circle at the bottom on a blue background",
     {"color": "yellow", "shape": "circle", "background": "blue", "position": "bottom"}),
    ("an orange square on the right, cyan background",
     {"color": "orange", "shape": "square", "background": "cyan", "position": "right"}),
    ("a purple triangle on a white background", {"color": "purple", "shape": "triangle", "background": "white"}),
]


def test_tiny_image_is_the_default_deterministic_and_follows_the_prompt(ip: Any) -> None:
    checker = _checker()
    hits = {"color": 0, "shape": 0, "background": 0, "position": 0}
    for i, (prompt, expected) in enumerate(SHIPPED_IMAGE_PROMPTS):
        result = run(ip, f"%%imagine --seed {i} --no-cache --preview 0\n{prompt}")
        assert result.request.model == "tiny-image" and result.images[0].size == (64, 64)
        for key, ok in checker.score(checker.analyze(result.images[0]), expected).items():
            hits[key] += ok
    again = run(ip, "%%imagine --seed 0 --no-cache --preview 0\na red circle on a white background")
    assert again.images[0].tobytes() == run(
        ip, "%%imagine --seed 0 --no-cache --preview 0\na red circle on a white background"
    ).images[0].tobytes()
    print("tiny-image hits of 6 (position of 3):", hits)
    assert hits["color"] >= 5 and hits["background"] >= 5, hits
    assert hits["shape"] >= 4 and hits["position"] >= 2, hits
