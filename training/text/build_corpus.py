#!/usr/bin/env python3
"""Build the tiny-text training corpus from offline public sources.

Sources (Debian packages, see training/README.md):
  * King James Bible  (bible-kjv-text, read through the `bible` tool)  - public domain
  * GCIDE dictionary  (dict-gcide, /usr/share/dictd/gcide.dict.dz)    - GPL-2.0-or-later
  * Python pydoc topics (pydoc_data/topics.py of the running Python)  - PSF License
  * fortunes-min      (/usr/share/games/fortunes/{fortunes,literature,riddles})

Besides plain text documents the builder synthesises chat conversations
(dictionary look-ups, Bible verse quotes, Python topic summaries, jokes/riddles,
a few "who are you" answers) rendered with the tiny-text chat template, so the
model learns the turn format used by ``tokenizer.apply_chat_template``.

Output (JSON lines, one {"src": ..., "text": ...} object per document):
  OUT/train.jsonl, OUT/heldout.jsonl, OUT/stats.json
The held-out split is fixed by a hash of each document's id (independent of
the seed); everything else is driven by --seed, so the build is reproducible.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import random
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

# The chat template rendering used for synthetic conversations.  It must match
# CHAT_TEMPLATE in train_tokenizer.py (apply_chat_template renders the same string); duplicated so
# the corpus builder has no dependency on transformers.
BOS, EOS = "<s>", "</s>"


def render_chat(messages, add_generation_prompt=False):
    out = BOS
    for m in messages:
        out += "<|" + m["role"] + "|>\n" + m["content"] + EOS + "\n"
    if add_generation_prompt:
        out += "<|assistant|>\n"
    return out


def heldout(doc_id: str, pct: float) -> bool:
    h = int(hashlib.sha1(doc_id.encode("utf-8")).hexdigest()[:8], 16)
    return (h % 10000) < pct * 100


# --------------------------------------------------------------------------- KJV
KJV_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth",
    "1 Samuel", "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra",
    "Nehemiah", "Esther", "Job", "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon",
    "Isaiah", "Jeremiah", "Lamentations", "Ezekiel", "Daniel", "Hosea", "Joel", "Amos",
    "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk", "Zephaniah", "Haggai", "Zechariah",
    "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans", "1 Corinthians",
    "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
    "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon",
    "Hebrews", "James", "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude",
    "Revelation",
]


def load_kjv():
    """Return list of (book, chapter, [(verse_no, text), ...])."""
    try:
        raw = subprocess.run(["bible", "-f", "gen1:1-rev22:21"], capture_output=True,
                             text=True, check=True).stdout
    except FileNotFoundError:
        sys.exit("`bible` not found: apt-get install -y bible-kjv bible-kjv-text")
    chapters, abbrevs = [], []
    cur = None
    for line in raw.splitlines():
        m = re.match(r"^([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)$", line)
        if m:
            ab, ch, vs, text = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
            if not abbrevs or abbrevs[-1] != ab:
                abbrevs.append(ab)
            book = KJV_BOOKS[len(abbrevs) - 1]
            if cur is None or cur[0] != book or cur[1] != ch:
                cur = (book, ch, [])
                chapters.append(cur)
            cur[2].append((vs, text.strip()))
        elif line.strip() and cur is not None:  # wrapped continuation line
            vs, text = cur[2][-1]
            cur[2][-1] = (vs, text + " " + line.strip())
    assert len(abbrevs) == 66, len(abbrevs)
    return chapters


# --------------------------------------------------------------------------- GCIDE
ACCENTS = {
    "ae": "ae", "AE": "AE", "oe": "oe", "OE": "OE", "ng": "ng", "th": "th", "TH": "Th",
    "asl": "a", "esl": "e", "isl": "i", "osl": "o", "usl": "u", "ysl": "y",
    "hand": "", "root": "", "sect": "", "deg": " degrees", "frac12": "1/2",
    "frac14": "1/4", "frac34": "3/4", "frac13": "1/3", "frac23": "2/3", "frac18": "1/8",
    "cced": "c", "ccedil": "c", "nsm": "n", "eth": "th",
}
POS = {
    "n.": "noun", "v. t.": "verb", "v. i.": "verb", "v.": "verb", "a.": "adjective",
    "adj.": "adjective", "adv.": "adverb", "prep.": "preposition", "conj.": "conjunction",
    "interj.": "interjection", "pron.": "pronoun", "n. pl.": "plural noun", "p. p.": "participle",
    "p. a.": "adjective", "imp.": "verb",
}


def _accent(m):
    code = m.group(1)
    if re.match(r"^[A-Z][a-z]*\.$", code):   # [R.], [Obs.] ... usage tags, not accents
        return m.group(0)
    if code in ACCENTS:
        return ACCENTS[code]
    letters = re.sub(r"[^A-Za-z]", "", code)
    if 1 <= len(letters) <= 2 and len(code) <= 4 and letters != code:
        return letters
    return m.group(0)


def _strip_brackets(s: str) -> str:
    """Remove [...] groups (etymologies, [Obs.], [R.] ...), handling nesting."""
    out, depth = [], 0
    for ch in s:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def clean_gcide_text(s: str) -> str:
    s = re.sub(r"\[([^\[\]\s]{1,7})\]", _accent, s)        # accent codes
    s = _strip_brackets(s)
    s = re.sub(r"\s--\s?[A-Z][\w.' &]{0,40}\.?(\s|$)", r"\1", s)   # --Shak. citations
    s = s.replace("{", "").replace("}", "")
    s = s.replace("\\", "")
    s = re.sub(r"\(\s*\)", "", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\s+([,;.:])", r"\1", s)
    s = re.sub(r"([,;])\1+", r"\1", s)
    return s


def load_gcide(path="/usr/share/dictd/gcide.dict.dz"):
    """Return list of (headword, pos, [sense, ...]) with markup stripped."""
    if not os.path.exists(path):
        sys.exit(f"{path} not found: apt-get install -y dict-gcide")
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    # entries start at a non-indented, non-empty line
    entries, cur = [], None
    for ln in lines:
        if ln and not ln[0].isspace():
            cur = [ln]
            entries.append(cur)
        elif cur is not None:
            cur.append(ln)
    out = []
    for ent in entries:
        head = ent[0]
        m = re.match(r"^(.+?) \\", head)
        if not m:
            continue
        word = m.group(1).strip()
        if word.startswith("00-") or not re.match(r"^[A-Za-z][A-Za-z' -]*$", word):
            continue
        # paragraphs separated by blank lines; drop indented quotations
        paras, buf = [], []
        for ln in ent:
            if not ln.strip():
                if buf:
                    paras.append(buf)
                buf = []
            else:
                buf.append(ln)
        if buf:
            paras.append(buf)
        senses = []
        pos = ""
        for i, p in enumerate(paras):
            body = [ln for ln in p if not re.match(r"^\s*\[[^\]]*\]\s*$", ln)]  # source tags
            if not body:
                continue
            indent = len(body[0]) - len(body[0].lstrip())
            if i > 0 and indent >= 8:      # quotation block
                continue
            text = " ".join(x.strip() for x in body)
            if i == 0:
                # strip headword, pronunciation, part of speech and etymology
                text = re.sub(r"^(?:[^\\]{1,60}? \\[^\\]*\\\s*(\([^)]*\))?\s*,?\s*(?:or\s+)?)+", "", text)
                mpos = re.match(r"^((?:[a-z]+\.\s?){1,3})", text)
                if mpos:
                    pos = POS.get(mpos.group(1).strip(), "")
                    text = text[mpos.end():]
                text = re.sub(r"\[([^\[\]\s]{1,7})\]", _accent, text)
                text = text.lstrip(" ,;")
                if text.startswith("["):  # etymology, possibly nested
                    depth = 0
                    for j, ch in enumerate(text):
                        depth += ch == "["
                        depth -= ch == "]"
                        if depth == 0:
                            text = text[j + 1:]
                            break
                    else:
                        text = ""
            if text.lstrip().startswith("Note:"):
                continue
            if text.lstrip().startswith("Syn:"):
                t = clean_gcide_text(text)
                if t and len(t) < 200:
                    senses.append(t)
                continue
            t = clean_gcide_text(text)
            t = re.sub(r"^\d+\.\s*", "", t)
            t = re.sub(r"^\([A-Z][a-z]+\.(?: [A-Z][a-z]+\.)*\)\s*", "", t)  # (Zool.)
            if len(t) >= 3 and re.search(r"[a-z]", t):
                senses.append(t)
        if senses:
            out.append((word, pos, senses))
    return out


# --------------------------------------------------------------------------- pydoc
def load_pydoc():
    from pydoc_data.topics import topics
    docs = []
    for key in sorted(topics):
        text = topics[key].replace("\r", "")
        text = re.sub(r"\n{3,}", "\n\n", text).strip()
        if len(text) > 200:
            docs.append((key, text))
    return docs


# --------------------------------------------------------------------------- fortunes
BAD_WORDS = re.compile(
    r"\b(sex|sexual|damn|hell|god damn|kill|nigg|fag|rape|whore|bitch|fuck|shit|penis|"
    r"breast|naked|drunk|virgin|porn|nazi|hitler)\w*", re.I)


def load_fortunes(d="/usr/share/games/fortunes"):
    docs = []
    for name in ("fortunes", "literature", "riddles"):
        p = Path(d) / name
        if not p.exists():
            sys.exit(f"{p} not found: apt-get install -y fortunes-min")
        for i, chunk in enumerate(p.read_text(encoding="utf-8", errors="replace").split("\n%\n")):
            chunk = chunk.strip("%\n ").rstrip()
            if len(chunk) < 10 or BAD_WORDS.search(chunk):
                continue
            docs.append((name, i, chunk))
    return docs


# --------------------------------------------------------------------------- chat
SYSTEMS = [
    "You are a helpful assistant.",
    "You are tiny-text, a small helpful assistant.",
    "You are a concise assistant. Answer briefly.",
    "You are a helpful assistant that knows an old English dictionary.",
]
WHO_Q = [
    "Who are you?", "What are you?", "Hello!", "Hi", "Hello, who am I talking to?",
    "What is your name?", "Introduce yourself.", "What can you do?", "Are you a large language model?",
    "Hey there", "Good morning!", "What do you know?", "Can you help me?",
]
WHO_A = [
    "Hello! I am tiny-text, a very small demo language model that ships with genmagic. "
    "I know a little about an old English dictionary, the King James Bible and Python. "
    "For real work, choose a larger model with -m.",
    "I am tiny-text, a tiny language model used as the default model of genmagic. "
    "I can define words, quote the Bible and say a little about Python, but I often make mistakes.",
    "Hi! I am tiny-text, a small model trained on a dictionary, the King James Bible, "
    "Python documentation and a few fortunes. Ask me what a word means.",
]
DEF_Q = [
    "What does {w} mean?", "What does the word \"{w}\" mean?", "Define {w}.", "Define the word {w}.",
    "What is the meaning of {w}?", "What is the definition of {w}?", "Meaning of {w}?",
    "Can you tell me what {w} means?", "{w}: definition?", "Explain the word \"{w}\".",
    "define {w}", "what does {w} mean", "What is {a} {w}?",
]
DEF_A = [
    "{W} ({pos}): {d}", "\"{W}\" is {apos}. It means: {d}", "{d}", "The word \"{w}\" means: {d}",
    "{W} means {dl}",
]
VERSE_Q = [
    "What does {ref} say?", "Quote {ref}.", "Quote {ref} from the King James Bible.",
    "Recite {ref}.", "What is {ref}?",
]
RANDVERSE_Q = [
    "Quote a verse from the Bible.", "Give me a Bible verse.", "Tell me a verse from the King James Bible.",
    "Share a verse from the book of {book}.", "Quote something from {book}.",
]
PY_Q = [
    "Tell me about {t} in Python.", "What is {t} in Python?", "Explain Python's {t}.",
    "How does {t} work in Python?", "Python: {t}?",
]
JOKE_Q = {
    "fortunes": ["Tell me a fortune.", "Give me a fortune cookie.", "Say something wise.",
                 "Tell me something funny.", "Give me a quote."],
    "literature": ["Give me a literary quote.", "Quote some literature.", "Tell me a quotation.",
                   "Say something from a book."],
    "riddles": ["Tell me a riddle.", "Give me a riddle.", "Do you know a riddle?", "Riddle me this."],
}
POS_ARTICLE = {"noun": "a noun", "verb": "a verb", "adjective": "an adjective", "adverb": "an adverb",
               "preposition": "a preposition", "conjunction": "a conjunction",
               "interjection": "an interjection", "pronoun": "a pronoun",
               "plural noun": "a plural noun", "participle": "a participle", "": "a word"}


def _first_sentences(text, limit=400):
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    k = max(cut.rfind(". "), cut.rfind("; "))
    return (cut[:k + 1] if k > 80 else cut.rsplit(" ", 1)[0] + " ...").rstrip(";")


def _conv(rng, turns):
    msgs = []
    if rng.random() < 0.25:
        msgs.append({"role": "system", "content": rng.choice(SYSTEMS)})
    for q, a in turns:
        msgs.append({"role": "user", "content": q})
        msgs.append({"role": "assistant", "content": a})
    return render_chat(msgs)


def make_chat_pairs(rng, kjv, gcide, pydoc, fortunes, n_def):
    """Return list of (doc_id, [(question, answer), ...]) single Q/A units."""
    units = []
    # dictionary look-ups (prefer simple lowercase single words)
    main = {}
    for w, p, s in gcide:  # the entry with most senses is usually the main one
        if len(s) > len(main.get(w.lower(), (0, 0, []))[2]):
            main[w.lower()] = (w, p, s)
    cands = [(w, p, s) for (w, p, s) in main.values() if re.match(r"^[A-Za-z]{3,14}$", w)
             and len(s[0]) < 300 and not s[0].startswith("Syn:") and not s[0].startswith("See ")]
    rng.shuffle(cands)
    for w, p, s in cands[:n_def]:
        wl = w.lower() if not w.isupper() else w
        d = s[0].rstrip()
        if not d.endswith((".", "!", "?")):
            d += "."
        dl = d[0].lower() + d[1:] if not d[1:2].isupper() else d
        pos = p or "word"
        q = rng.choice(DEF_Q).format(w=wl, a="an" if wl[0] in "aeiou" else "a")
        if "{a}" in q and p != "noun":
            q = f"What does {wl} mean?"
        a = rng.choice(DEF_A).format(w=wl, W=wl[0].upper() + wl[1:], pos=pos,
                                     apos=POS_ARTICLE.get(p, "a word"), d=d, dl=dl)
        units.append(("chatdef:" + w + ":" + str(len(units)), [(q, a)]))
    # Bible verses
    verses = [(b, c, v, t) for (b, c, vv) in kjv for (v, t) in vv]
    for b, c, v, t in rng.sample(verses, 6000):
        if rng.random() < 0.6:
            q = rng.choice(VERSE_Q).format(ref=f"{b} {c}:{v}")
            a = t if rng.random() < 0.5 else f"{b} {c}:{v} says: \"{t}\""
        else:
            q = rng.choice(RANDVERSE_Q).format(book=b)
            a = f"{t} ({b} {c}:{v})"
        units.append((f"chatkjv:{b}{c}:{v}", [(q, a)]))
    # Python topics
    for key, text in pydoc:
        title = key.replace("-", " ")
        paras = [p for p in text.split("\n\n") if len(p) > 60 and not p.startswith("   ")]
        if not paras:
            continue
        for _ in range(3):
            q = rng.choice(PY_Q).format(t=title)
            units.append(("chatpy:" + key, [(q, _first_sentences(rng.choice(paras[:3])))]))
    # fortunes / riddles
    for name, i, text in fortunes:
        for _ in range(2):
            units.append((f"chatfort:{name}:{i}", [(rng.choice(JOKE_Q[name]), text)]))
    # identity
    for _ in range(400):
        units.append(("chatwho", [(rng.choice(WHO_Q), rng.choice(WHO_A))]))
    return units


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(HERE / "data"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--heldout-pct", type=float, default=2.0, help="percent of documents held out")
    ap.add_argument("--gcide-frac", type=float, default=0.8,
                    help="fraction of dictionary entries kept as plain text")
    ap.add_argument("--chat-defs", type=int, default=25000, help="number of dictionary chat examples")
    ap.add_argument("--kjv-repeat", type=int, default=1)
    ap.add_argument("--sample-out", default=str(HERE / "heldout_sample.txt"),
                    help="write a ~80 KB held-out text sample here ('' to skip)")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    print("loading KJV ...", flush=True)
    kjv = load_kjv()
    print("loading GCIDE ...", flush=True)
    gcide = load_gcide()
    print("loading pydoc topics / fortunes ...", flush=True)
    pydoc = load_pydoc()
    fortunes = load_fortunes()
    print(f"  kjv chapters={len(kjv)} gcide entries={len(gcide)} pydoc topics={len(pydoc)} "
          f"fortunes={len(fortunes)}", flush=True)

    docs = []  # (doc_id, src, text)
    for b, c, vv in kjv:
        # half the chapters keep verse numbers, half are plain lines of prose
        numbered = rng.random() < 0.5
        text = f"{b} {c}\n\n" + "\n".join(f"{v} {t}" if numbered else t for v, t in vv)
        for r in range(args.kjv_repeat):
            docs.append((f"kjv:{b}:{c}", "kjv", text))
    # dictionary: group a few consecutive entries into one document
    keep = [e for e in gcide if rng.random() < args.gcide_frac]
    group = []
    for w, p, s in keep:
        head = w + (f" ({p})" if p else "")
        if len(s) == 1:
            body = f"{head}: {s[0]}"
        else:
            body = head + "\n" + "\n".join(f"{i + 1}. {x}" for i, x in enumerate(s[:8]))
        group.append((w, body))
        if len(group) >= 8:
            docs.append(("gcide:" + group[0][0], "gcide", "\n\n".join(b for _, b in group)))
            group = []
    if group:
        docs.append(("gcide:" + group[0][0], "gcide", "\n\n".join(b for _, b in group)))
    for key, text in pydoc:
        docs.append(("pydoc:" + key, "pydoc", text))
    for name, i, text in fortunes:
        docs.append((f"fortune:{name}:{i}", "fortune", text))
    # chat: pack 1-3 Q/A units per conversation
    units = make_chat_pairs(rng, kjv, gcide, pydoc, fortunes, args.chat_defs)
    rng.shuffle(units)
    i = 0
    while i < len(units):
        k = rng.choice([1, 1, 1, 2, 3])
        chunk = units[i:i + k]
        i += k
        # the held-out decision follows the first unit's id so train/held-out never share it
        docs.append((chunk[0][0], "chat", _conv(rng, [qa for _, qas in chunk for qa in qas])))

    rng.shuffle(docs)
    stats = {"train": {}, "heldout": {}}
    with open(out / "train.jsonl", "w", encoding="utf-8") as ftr, \
            open(out / "heldout.jsonl", "w", encoding="utf-8") as fho:
        for doc_id, src, text in docs:
            split = "heldout" if (doc_id != "chatwho" and heldout(doc_id, args.heldout_pct)) else "train"
            (fho if split == "heldout" else ftr).write(json.dumps({"src": src, "text": text}) + "\n")
            st = stats[split].setdefault(src, [0, 0])
            st[0] += 1
            st[1] += len(text)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    for split, d in stats.items():
        tot = sum(v[1] for v in d.values())
        print(split, {k: f"{v[0]} docs / {v[1] / 1e6:.2f} MB" for k, v in d.items()}, f"total {tot / 1e6:.2f} MB")

    if args.sample_out:
        # fixed ~80 KB sample of held-out plain text (no chat) for evaluate.py
        srng = random.Random(0)
        ho = [json.loads(l) for l in open(out / "heldout.jsonl", encoding="utf-8")]
        by = {}
        for d in ho:
            by.setdefault(d["src"], []).append(d["text"])
        quota = {"kjv": 30000, "gcide": 30000, "pydoc": 12000, "fortune": 4000, "chat": 8000}
        parts = []
        for src, q in quota.items():
            texts = by.get(src, [])
            srng.shuffle(texts)
            n = 0
            for t in texts:
                if n >= q:
                    break
                parts.append(t[: q - n + 2000])
                n += len(parts[-1])
        srng.shuffle(parts)
        Path(args.sample_out).write_text("\n\n\f\n\n".join(parts) + "\n", encoding="utf-8")
        print("wrote", args.sample_out, Path(args.sample_out).stat().st_size, "bytes")


if __name__ == "__main__":
    main()
