"""Definition questions and answers from WordNet 3.0 glosses (Debian `wordnet-base`; WordNet licence).

Every answer names the word it defines ("A psalm is a sacred song or hymn. It is a kind of
religious song."), because the model learns its answers' shape from these examples.
"""
from __future__ import annotations

import random
import re
from pathlib import Path

WN = Path("/usr/share/wordnet")
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def _parse_data(pos: str) -> dict[str, tuple[list[str], list[str], str]]:
    """offset -> (lemmas, hypernym offsets, gloss)."""
    out = {}
    for line in open(WN / f"data.{POS_FILES[pos]}", encoding="latin-1"):
        if line.startswith(" "):
            continue
        head, _, gloss = line.partition(" | ")
        f = head.split()
        n = int(f[3], 16)
        lemmas = [re.sub(r"\(.*\)$", "", f[4 + 2 * i]).replace("_", " ") for i in range(n)]
        k = 4 + 2 * n
        p = int(f[k])
        hyp = [f[k + 1 + 4 * j + 1] for j in range(p) if f[k + 1 + 4 * j] in ("@", "@i")]
        out[f[0]] = (lemmas, hyp, gloss.strip())
    return out


def _parse_index(pos: str) -> list[tuple[str, int, list[str]]]:
    """(lemma, tagged-sense count, synset offsets by frequency)."""
    out = []
    for line in open(WN / f"index.{POS_FILES[pos]}", encoding="latin-1"):
        if line.startswith(" "):
            continue
        f = line.split()
        n_syn, n_ptr = int(f[2]), int(f[3])
        tagged = int(f[5 + n_ptr])
        offs = f[6 + n_ptr:6 + n_ptr + n_syn]
        out.append((f[0].replace("_", " "), tagged, offs))
    return out


def _split_gloss(gloss: str) -> tuple[str, list[str]]:
    parts = gloss.split("; \"")
    d = parts[0].strip().rstrip(";").strip()
    d = re.sub(r"\s*\([^)]*\)", "", d).strip()          # "(especially ...)" asides
    ex = [p.strip().strip('"').rstrip('"') for p in parts[1:]]
    ex = [e.strip('"; ') for e in ex if 3 <= len(e.split()) <= 16]
    return d, ex


def _article(w: str) -> str:
    return "an" if w[0].lower() in "aeiou" else "a"


def _countable(d: str) -> bool:
    return bool(re.match(r"^(a|an|any|one|someone|something|a person)\b", d))


Q_WORD = ["What does {w} mean?", "What does the word \"{w}\" mean?", "Define {w}.", "Define the word {w}.",
          "define {w}", "what does {w} mean", "What is the meaning of {w}?", "What is the definition of {w}?",
          "Explain the word {w}.", "Can you define {w}?", "Tell me what {w} means.", "Give me the definition of {w}.",
          "What does {w} mean in English?", "Meaning of {w}?"]
Q_NOUN_COUNT = ["What is {a} {w}?", "what is {a} {w}", "What's {a} {w}?", "Explain what {a} {w} is.",
                "What is {a} {w}? Explain briefly.", "Tell me what {a} {w} is.", "Explain {w}.", "What is {w}?"]
Q_NOUN_MASS = ["What is {w}?", "what is {w}", "Explain {w}.", "Tell me what {w} is.", "What's {w}?"]


def _answer_spaced(rng, pos, w, d, countable):
    """First sentences in which the word keeps the token it has in most questions (" psalm":
    after a space, lower case, no quotes), which a tiny model copies far more reliably."""
    if pos == "n":
        if countable:
            return rng.choice([f"{_article(w).capitalize()} {w} is {d}.", f"{_article(w).capitalize()} {w} is {d}.",
                               f"The word {w} means {d}."])
        return rng.choice([f"The word {w} means {d}.", f"The noun {w} means {d}.", f"In English, {w} is {d}."])
    if pos == "v":
        d2 = d if d.startswith("to ") else "to " + d
        return rng.choice([f"To {w} means {d2}.", f"To {w} is {d2}.", f"The verb {w} means {d2}."])
    if pos == "a":
        return rng.choice([f"If something is {w}, it is {d}.", f"The adjective {w} means {d}.",
                           f"The word {w} means {d}."])
    return rng.choice([f"The adverb {w} means {d}.", f"The word {w} means {d}."])


def _answer(rng, pos, w, d, hyper, syns, ex, countable, spaced=False):
    d = d[0].lower() + d[1:] if d[:2] != d[:2].upper() else d
    W = w[0].upper() + w[1:]
    if pos == "n":
        if countable:
            first = rng.choice([f"{_article(w).capitalize()} {w} is {d}.", f"{_article(w).capitalize()} {w} is {d}.",
                                f"The word \"{w}\" means {d}.", f"{W} is {d}."])
        elif d.startswith("the "):
            first = rng.choice([f"{W} is {d}.", f"{W} is {d}.", f"The word \"{w}\" means {d}.", f"{W} means {d}."])
        else:
            first = rng.choice([f"The word \"{w}\" means {d}.", f"{W} means {d}.", f"{W} (noun): {d}."])
    elif pos == "v":
        d2 = d if d.startswith("to ") else "to " + d
        first = rng.choice([f"To {w} means {d2}.", f"To {w} is {d2}.", f"The verb \"{w}\" means {d2}.",
                            f"{W} (verb): {d}."])
    else:
        kind = "adjective" if pos == "a" else "adverb"
        first = rng.choice([f"{W} means {d}.", f"The {kind} \"{w}\" means {d}.", f"{W} ({kind}): {d}.",
                            f"If something is {w}, it is {d}." if pos == "a" else f"{W} means {d}."])
    if spaced:
        first = _answer_spaced(rng, pos, w, d, countable)
    extra = []
    if hyper and pos == "n" and rng.random() < 0.6:
        extra.append(rng.choice([f"It is a kind of {hyper}.", f"It is a type of {hyper}."]))
    if hyper and pos == "v" and rng.random() < 0.4:
        extra.append(f"It is a way to {hyper}.")
    if syns and rng.random() < 0.5:
        s = syns[:3]
        extra.append(f"A similar word is \"{s[0]}\"." if len(s) == 1 else
                     "Similar words are " + ", ".join(f"\"{x}\"" for x in s[:-1]) + f" and \"{s[-1]}\".")
    if ex and rng.random() < 0.7:
        extra.append(rng.choice(["For example: \"{e}\".", "Example: \"{e}\".", "You can say: \"{e}\"."])
                     .format(e=ex[0][0].upper() + ex[0][1:]))
    rng.shuffle(extra)
    return " ".join([first] + extra)


def definition_pairs(rng: random.Random, n: int, spaced: bool = False) -> list[tuple[str, str, str]]:
    """n (word, question, answer) triples; common words (tagged senses) are preferred.
    ``spaced``: only first sentences that keep the word's question token (see _answer_spaced)."""
    items = []
    for pos in ("n", "v", "a", "r"):
        data = _parse_data(pos)
        for lemma, tagged, offs in _parse_index(pos):
            if not re.match(r"^[a-z][a-z -]{1,24}$", lemma):
                continue
            weight = (8 if tagged > 0 else 1) if " " not in lemma else 1
            items.append((weight, pos, lemma, offs, data))
    pool = [it for it in items for _ in range(it[0])]
    out = []
    for _ in range(n):
        _, pos, w, offs, data = rng.choice(pool)
        off = offs[0] if rng.random() < 0.8 else rng.choice(offs)
        lemmas, hyp, gloss = data[off]
        d, ex = _split_gloss(gloss)
        if len(d.split()) < 2:
            continue
        hyper = data[hyp[0]][0][0] if hyp and hyp[0] in data else ""
        syns = [x for x in lemmas if x.lower() != w and re.match(r"^[a-z][a-z -]+$", x)]
        countable = pos == "n" and _countable(d)
        if pos == "n" and rng.random() < 0.6:
            q = rng.choice(Q_NOUN_COUNT if countable else Q_NOUN_MASS)
            if "{a}" not in q:
                countable = False
        else:
            q = rng.choice(Q_WORD)
        q = q.format(w=w, a=_article(w))
        out.append((w, q, _answer(rng, pos, w, d, hyper, syns, ex, countable, spaced)))
    return out


if __name__ == "__main__":
    for t in definition_pairs(random.Random(0), 12):
        print(t)
