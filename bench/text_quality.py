"""What tiny-text writes with the magic's defaults: length, loops, attribution endings, definitions.

    python bench/text_quality.py [--model genmagic/models/tiny-text] [--seeds 0 1] [--json PATH] [-v]

Runs every prompt of ``PROMPTS`` (story openings, short instructions, definition questions)
through ``genmagic.generate`` exactly as ``%%generate PROMPT`` would (the model's own defaults,
the chat-template rule), once per seed, and reports:

- the share of answers with at least 8 words;
- the median length in words of stories and continuations;
- distinct 4-grams within an answer (mean, and the share of answers at 0.8 or more);
- the share of answers ending in a fortune-style "-- Author" attribution;
- the share of definition answers that name the word, and that read like a definition
  ("X is ...", "X means ...", "X: ...");
- whether ``-f code`` on ``def fibonacci(n):`` writes code (a ``return`` or an indented block);
- load time and weight size; held-out perplexity comes from ``training/text/evaluate.py``.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "genmagic" / "models" / "tiny-text"

STORIES = [
    "Once upon a time",
    "The old man walked to the",
    "It was a dark and stormy night",
    "In a small village by the sea",
    "The little dragon opened its eyes and",
    "Every morning, the baker",
    "She opened the door and saw",
    "Long ago, in a land far away,",
    "The robot looked up at the stars and",
    "Tom and his dog went to the park.",
]
INSTRUCTIONS = [
    "Write a short story about a brave mouse.",
    "Tell me a story about a lost kitten.",
    "Write a bedtime story about a sleepy bear.",
    "Describe a rainy day.",
    "Write a poem about the moon.",
    "Give me three tips for staying healthy.",
]
DEFINITIONS = [  # (prompt, the word it asks about)
    ("What is a psalm?", "psalm"),
    ("What is courage?", "courage"),
    ("Define river.", "river"),
    ("What does generous mean?", "generous"),
    ("What is a volcano?", "volcano"),
    ("Define the word harvest.", "harvest"),
    ("What does ancient mean?", "ancient"),
    ("What is a library?", "library"),
    ("What is friendship?", "friendship"),
    ("What does the word lantern mean?", "lantern"),
]
CODE_PROMPT = "def fibonacci(n):"
ATTRIBUTION = re.compile(r"(^|\n)\s*--\s*\S[^\n]*\s*$")


def words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9']+", text)


def distinct4(text: str) -> float:
    w = [x.lower() for x in words(text)]
    grams = [tuple(w[i:i + 4]) for i in range(len(w) - 3)]
    return len(set(grams)) / len(grams) if grams else 1.0


def names(answer: str, word: str) -> bool:
    stem = word.lower()[:-1] if len(word) > 4 and word.lower().endswith("e") else word.lower()
    return stem in answer.lower()


def definition_like(answer: str, word: str) -> bool:
    first = re.split(r"(?<=[.!?])\s", answer.strip(), maxsplit=1)[0].lower()
    w = re.escape(word.lower())
    return bool(re.search(rf"\b{w}\w*\b[\"']?\s*(\([a-z ]+\))?\s*(is|are|means|refers to|:)", first)) or \
        bool(re.search(rf"\bto {w}\w* (is|means)\b|\bis {w}\w*, it (is|means)\b", first))


def generate_all(model: Path, seeds: list[int], **options: object) -> dict:
    """Every prompt once per seed, as ``%%generate --seed S PROMPT`` (plus ``options``) would run it."""
    import genmagic

    def gen(prompt: str, seed: int) -> str:
        return genmagic.generate(prompt, str(model), seed=seed, cache=False, **options).text

    out: dict = {"stories": [], "instructions": [], "definitions": [], "code": []}
    for seed in seeds:
        out["stories"] += [(p, seed, gen(p, seed)) for p in STORIES]
        out["instructions"] += [(p, seed, gen(p, seed)) for p in INSTRUCTIONS]
        out["definitions"] += [(p, seed, gen(p, seed), w) for p, w in DEFINITIONS]
        out["code"].append((CODE_PROMPT, seed, gen(CODE_PROMPT, seed)))
    return out


def score(gen: dict) -> dict:
    answers = [t for k in ("stories", "instructions") for (_, _, t) in gen[k]] + [t for (_, _, t, _) in gen["definitions"]]
    narrative = [t for (_, _, t) in gen["stories"]] + [t for (p, _, t) in gen["instructions"] if "stor" in p.lower()]
    d4 = [distinct4(t) for t in answers]
    defs = gen["definitions"]
    code = [t for (_, _, t) in gen["code"]]
    return {
        "answers": len(answers),
        "at_least_8_words": sum(len(words(t)) >= 8 for t in answers) / len(answers),
        "story_median_words": statistics.median(len(words(t)) for t in narrative),
        "distinct4_mean": statistics.mean(d4),
        "distinct4_at_least_0.8": sum(x >= 0.8 for x in d4) / len(d4),
        "attribution_endings": sum(bool(ATTRIBUTION.search(t.rstrip())) for t in answers) / len(answers),
        "definitions_name_the_word": sum(names(t, w) for (_, _, t, w) in defs) / len(defs),
        "definitions_read_like_one": sum(definition_like(t, w) for (_, _, t, w) in defs) / len(defs),
        "code_like": sum(bool(re.search(r"\breturn\b|\n {4}\S", t)) for t in code) / len(code),
    }


def load_stats(model: Path) -> dict:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    AutoTokenizer.from_pretrained(str(model))  # warm the imports and the file cache
    t0 = time.perf_counter()
    AutoTokenizer.from_pretrained(str(model))
    AutoModelForCausalLM.from_pretrained(str(model), dtype=torch.float32)
    size = sum(f.stat().st_size for f in model.glob("*.safetensors"))
    return {"load_s": round(time.perf_counter() - t0, 3), "weights_mb": round(size / 1e6, 1)}


def perplexity(model: Path) -> float:
    sys.path.insert(0, str(REPO / "training" / "text"))
    from evaluate import heldout_perplexity

    return round(heldout_perplexity(str(model)), 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(MODEL))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--json", default=None)
    ap.add_argument("--no-perplexity", action="store_true")
    ap.add_argument("--raw", action="store_true", help="every prompt as plain text to continue (%%%%generate --raw)")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every answer")
    a = ap.parse_args()
    os.environ["GENMAGIC_HOME"] = tempfile.mkdtemp(prefix="genmagic-bench-")  # keep the user's history clean
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))
    model = Path(a.model).resolve()
    gen = generate_all(model, a.seeds, **({"raw": True} if a.raw else {}))
    figures = score(gen) | load_stats(model)
    if not a.no_perplexity:
        figures["heldout_perplexity"] = perplexity(model)
    if a.verbose:
        for kind, rows in gen.items():
            for row in rows:
                print(f"[{kind} seed {row[1]}] {row[0]!r} -> {row[2]!r}")
    for k, v in figures.items():
        print(f"{k:<28} {v:.3f}" if isinstance(v, float) else f"{k:<28} {v}")
    if a.json:
        Path(a.json).write_text(json.dumps({"figures": figures, "samples": gen}, indent=1))


if __name__ == "__main__":
    main()
