#!/usr/bin/env python3
"""Build the tiny-text v2 corpus: stories, definitions, instructions and code, mixed with part of v1's.

    python training/text/build_corpus.py --out training/text/data/old --sample-out ''   # v1 corpus
    python training/text/build_mix.py                                                    # -> data/mix2/

v2 adds, all generated here (see stories.py, wordnet_defs.py, pycode.py):
  * procedural stories as plain text, as chat continuations (a user turn holds the opening,
    cut anywhere in the first sentences; the answer goes on from there) and as requests
    ("Write a short story about a dragon.");
  * other short requests (describe, poem, tips, lists, jokes);
  * WordNet definition questions whose answers name the word, in the chat template and as
    plain "question\\nanswer" text;
  * short Python functions (stdlib sources and classic exercises), plain and as chat.
From v1 it keeps the KJV, pydoc, 60 % of the GCIDE documents and half of the chat examples, but
no fortunes and no "-- Author" attributions. The held-out split is v1's, unchanged, so the
held-out loss printed during training stays comparable with v1's.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from build_corpus import SYSTEMS, render_chat  # noqa: E402
from pycode import code_pairs, stdlib_functions  # noqa: E402
from stories import instruction, story  # noqa: E402
from wordnet_defs import definition_pairs  # noqa: E402

WHO_Q = ["Who are you?", "What are you?", "Hello!", "Hi", "What is your name?", "Introduce yourself.",
         "What can you do?", "Hey there", "Good morning!", "Can you help me?"]
WHO_A = ["Hello! I am tiny-text, a very small demo language model that ships with genmagic. I can write simple "
         "stories, explain words and write a little Python, but I often make mistakes. For real work, choose a "
         "larger model with -m.",
         "I am tiny-text, the default model of genmagic. I am tiny, so I know very little, but I can tell a short "
         "story or say what a word means.",
         "Hi! I am tiny-text, a small model trained on simple stories, a dictionary, the King James Bible and some "
         "Python. Ask me for a story or what a word means."]
CONT_Q = ["Continue the story: {p}", "Continue this story: {p}", "Finish this story: {p}", "{p}", "{p}", "{p}", "{p}"]
OLD_DROP = re.compile(r"tiny-text|fortune|riddle|quote|Say something wise|funny|literary|from a book", re.I)


def chat(rng, turns):
    msgs = [{"role": "system", "content": rng.choice(SYSTEMS)}] if rng.random() < 0.15 else []
    for q, a in turns:
        msgs += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return render_chat(msgs)


def cut(rng, text):
    """Split a text after 2-25 words (or after its first sentence) into (opening, rest)."""
    words = text.split(" ")
    if rng.random() < 0.25:
        k = text.find(". ") + 1
        if k > 0:
            return text[:k], text[k + 1:]
    k = rng.randint(2, min(25, len(words) - 8))
    return " ".join(words[:k]), " ".join(words[k:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default=str(HERE / "data" / "old"))
    ap.add_argument("--out", default=str(HERE / "data" / "mix2"))
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--stories", type=int, default=4000, help="plain-text stories")
    ap.add_argument("--continuations", type=int, default=4000, help="stories continued in chat")
    ap.add_argument("--instructions", type=int, default=5000)
    ap.add_argument("--definitions", type=int, default=20000)
    ap.add_argument("--plain-definitions", type=int, default=3000)
    ap.add_argument("--spaced-definitions", action="store_true",
                    help="answers name the word with the token it has in the question (\"A psalm is\", \"The word psalm means\")")
    ap.add_argument("--code-plain", type=int, default=1500)
    ap.add_argument("--code-chat", type=int, default=1500)
    ap.add_argument("--old-frac", type=float, default=0.6, help="share of v1 GCIDE documents kept")
    ap.add_argument("--old-kjv-frac", type=float, default=1.0)
    ap.add_argument("--old-chat-frac", type=float, default=0.5)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    docs: list[tuple[str, str]] = []

    for _ in range(args.stories):
        docs.append(("story", story(rng)))
    for _ in range(args.continuations):
        opening, rest = cut(rng, story(rng))
        docs.append(("story-chat", chat(rng, [(rng.choice(CONT_Q).format(p=opening), rest)])))
    for _ in range(args.instructions):
        turns = [instruction(rng) for _ in range(rng.choice([1, 1, 1, 2]))]
        docs.append(("instruct", chat(rng, turns)))
    for _ in range(300):
        docs.append(("who", chat(rng, [(rng.choice(WHO_Q), rng.choice(WHO_A))])))
    defs = definition_pairs(rng, args.definitions + args.plain_definitions, args.spaced_definitions)
    for i in range(0, args.definitions, 1):
        _, q, a = defs[i]
        turns = [(q, a)]
        if rng.random() < 0.15:
            turns.append(defs[rng.randrange(len(defs))][1:])
        docs.append(("def-chat", chat(rng, turns)))
    for _, q, a in defs[args.definitions:]:
        docs.append(("def-plain", f"{q}\n{a}"))
    print("collecting stdlib functions ...", flush=True)
    funcs = stdlib_functions()
    plain = code_pairs(rng, funcs, args.code_plain)
    docs += [("code", src) for _, src in plain]
    docs += [("code-chat", chat(rng, [qa])) for qa in code_pairs(rng, funcs, args.code_chat)]

    keep = {"gcide": args.old_frac, "kjv": args.old_kjv_frac, "pydoc": 1.0, "chat": args.old_chat_frac,
            "fortune": 0.0}
    for line in open(Path(args.old) / "train.jsonl", encoding="utf-8"):
        d = json.loads(line)
        if rng.random() >= keep.get(d["src"], 0.0):
            continue
        if d["src"] == "chat" and OLD_DROP.search(d["text"]):
            continue
        if d["src"] == "kjv" and rng.random() < 0.15:     # a Bible chapter continued in chat
            opening, rest = cut(rng, d["text"].split("\n\n", 1)[-1][:1200])
            docs.append(("kjv-chat", chat(rng, [(opening, rest)])))
            continue
        docs.append(("v1-" + d["src"], d["text"]))

    rng.shuffle(docs)
    stats: dict[str, list[int]] = {}
    with open(out / "train.jsonl", "w", encoding="utf-8") as f:
        for src, text in docs:
            f.write(json.dumps({"src": src, "text": text}) + "\n")
            st = stats.setdefault(src, [0, 0])
            st[0] += 1
            st[1] += len(text)
    shutil.copy(Path(args.old) / "heldout.jsonl", out / "heldout.jsonl")
    total = sum(v[1] for v in stats.values())
    summary = {k: {"docs": v[0], "MB": round(v[1] / 1e6, 2), "share": round(v[1] / total, 3)}
               for k, v in sorted(stats.items())}
    (out / "stats.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary, indent=1), f"total {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
