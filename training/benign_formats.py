#!/usr/bin/env python3
"""Benign non-prose texts for the moderation classifier: training examples and a held-out corpus.

    OMP_NUM_THREADS=1 .venv/bin/python training/benign_formats.py --write-examples --write-corpus

Real notebook prompts and model outputs are often not sentences: markdown with links and images,
URLs, JSON, YAML, code, SQL, shell, regex, log lines, CSV rows, stack traces, HTML, LaTeX, byte soup
from tiny random models, lists, data-science requests, translation requests of quoted text. The
classifier was first trained on prose only and blocked some of them (``![x](https://h/?d=SECRET)``
as privacy). This script draws such texts deterministically from offline sources:

- real text: ``pydoc_data.topics`` paragraphs, stdlib docstrings and function source, the venv's
  package READMEs (``*.dist-info/METADATA``) and JSON files, WordNet glosses (``/usr/share/wordnet``
  when installed);
- synthetic text from seeded generators below (CSV, JSON, logs, tracebacks, URLs and markdown,
  YAML, SQL, shell, regex, LaTeX, HTML, gibberish, lists, data-science / translation / story
  prompts from templates, children's stories from ``training/text/stories.py``; the two sides
  draw these from differently seeded generators, the prompts from disjoint templates).

Every source item is assigned to one side by a hash of its key (topic, module, package, synset,
template), so the training side (``--write-examples``: ``label: "safe"``, ``source: "generated:…"``
lines appended to ``genmagic/safety/data/moderation_examples.jsonl``) and the corpus side
(``--write-corpus``: ``tests/data/moderation_benign_corpus.jsonl``, the false-positive benchmark of
``bench/moderation_eval.py``) share no topic, module, package, synset or template, and no text.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import random
import re
import string
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "genmagic" / "safety" / "data" / "moderation_examples.jsonl"
CORPUS = ROOT / "tests" / "data" / "moderation_benign_corpus.jsonl"
WORDNET = Path("/usr/share/wordnet")
SIDES = ("train", "corpus")


def side_of(key: str) -> str:
    return SIDES[hashlib.sha256(key.encode()).digest()[0] % 2]


def _words(text: str) -> int:
    return len(text.split())


# -- real sources ---------------------------------------------------------------------------------

def pydoc_paragraphs() -> Iterator[tuple[str, str]]:
    from pydoc_data.topics import topics

    for topic in sorted(topics):
        for para in re.split(r"\n\s*\n", topics[topic]):
            para = para.strip("\n")
            if 6 <= _words(para) <= 120:
                yield f"pydoc:{topic}", para


def _stdlib_files() -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    skip = {"test", "tests", "idlelib", "lib2to3", "site-packages", "turtledemo", "ensurepip", "tkinter"}
    return sorted(p for p in root.rglob("*.py") if not skip & set(p.relative_to(root).parts))


def stdlib_items() -> Iterator[tuple[str, str, str]]:
    """(key, kind, text): docstrings ("docstring") and the first lines of functions ("code")."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in _stdlib_files():
        key = f"stdlib:{path.relative_to(root)}"
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError):
            continue
        lines = source.splitlines()
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
                continue
            doc = ast.get_docstring(node)
            if doc and 5 <= _words(doc) <= 150:
                yield key, "docstring", doc
            if isinstance(node, ast.FunctionDef) and node.end_lineno:
                body = lines[node.lineno - 1 : min(node.end_lineno, node.lineno + 14)]
                text = "\n".join(body).strip("\n")
                if len(body) >= 4 and 8 <= _words(text) <= 160:
                    yield key, "code", _dedent(text)


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text)


def _site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def readme_blocks() -> Iterator[tuple[str, str]]:
    """Markdown / reST blocks (paragraphs, lists, code fences, tables) of installed packages' READMEs."""
    for meta in sorted(_site_packages().glob("*.dist-info/METADATA")):
        package = meta.parent.name.split("-")[0].lower()
        text = meta.read_text(encoding="utf-8", errors="replace")
        _, _, body = text.partition("\n\n")
        for block in re.split(r"\n\s*\n", body):
            block = block.strip("\n")
            if 5 <= _words(block) <= 140 and len(block) < 1500:
                yield f"readme:{package}", block


def json_snippets() -> Iterator[tuple[str, str]]:
    for path in sorted(_site_packages().rglob("*.json")):
        if "dist-info" in path.parts or path.stat().st_size > 200_000:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        package = path.relative_to(_site_packages()).parts[0].lower()
        for start in range(0, min(len(text), 4000), 700):
            chunk = text[start : start + rng_len(path.name, start)]
            if _words(chunk) >= 4:
                yield f"json:{package}", chunk


def rng_len(name: str, start: int) -> int:
    return 150 + hashlib.sha256(f"{name}:{start}".encode()).digest()[0] * 2


def wordnet_glosses() -> Iterator[tuple[str, str]]:
    for pos in ("noun", "verb", "adj", "adv"):
        path = WORDNET / f"data.{pos}"
        if not path.exists():
            continue
        for line in path.read_text(encoding="latin-1").splitlines():
            if line.startswith("  ") or "|" not in line:
                continue
            offset, _, gloss = line.partition("|")
            words = offset.split()
            lemma = words[4].replace("_", " ")
            yield f"wordnet:{pos}:{words[0]}", f"{lemma}: {gloss.strip()}"


# -- synthetic sources ----------------------------------------------------------------------------

FIRST = ["Ana", "Bo", "Chen", "Dara", "Emil", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena", "Mateo",
         "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Vera", "Wen", "Yusuf", "Zoe"]
LAST = ["Okafor", "Lindqvist", "Tanaka", "Moreau", "Novak", "Silva", "Kowalski", "Haddad", "Ivanova", "Nguyen",
        "Schmidt", "Rossi", "Mensah", "Park", "Ortega", "Fischer", "Costa", "Bauer", "Khan", "Dubois"]
CITIES = ["Lagos", "Oslo", "Kyoto", "Lyon", "Brno", "Porto", "Gdansk", "Beirut", "Kazan", "Hue", "Leeds", "Turin"]
PRODUCTS = ["widget", "sensor", "kettle", "router", "notebook", "bicycle", "lamp", "drone", "headset", "printer"]
COLUMNS = ["region", "sales", "revenue", "date", "customer_id", "price", "quantity", "category", "country",
           "age", "score", "temperature", "latency_ms", "user_id", "status", "channel", "cost", "clicks"]
WORDS = ["data", "model", "value", "table", "chart", "report", "user", "order", "item", "queue", "cache", "cluster", "batch", "token", "layer", "matrix", "vector", "record", "field", "window", "stream", "metric", "budget", "invoice", "session", "branch", "commit", "review", "release"]
HOSTS = ["host.example", "api.example.com", "files.example.org", "cdn.example.net", "docs.example.io", "localhost:8888"]


def _name(r: random.Random) -> str:
    return f"{r.choice(FIRST)} {r.choice(LAST)}"


def _token(r: random.Random, n: int = 12) -> str:
    return "".join(r.choice(string.ascii_letters + string.digits) for _ in range(n))


def gen_csv(r: random.Random) -> str:
    cols = r.sample(COLUMNS, r.randint(3, 6))
    rows = [",".join(cols)] if r.random() < 0.6 else []
    for _ in range(r.randint(1, 6)):
        cells = []
        for c in cols:
            if c in ("date",):
                cells.append(f"2024-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}")
            elif c in ("region", "country", "category", "channel", "status"):
                cells.append(r.choice(CITIES + PRODUCTS + ["ok", "failed", "pending", "web", "store"]))
            else:
                cells.append(str(round(r.uniform(0, 5000), r.choice([0, 2]))))
        rows.append(",".join(cells))
    return "\n".join(rows)


def gen_json(r: random.Random) -> str:
    rec = {r.choice(COLUMNS): r.choice([_name(r), r.randint(0, 999), round(r.random(), 3), r.choice(CITIES), None,
                                        True, [r.randint(0, 9) for _ in range(3)], _token(r, 8)])
           for _ in range(r.randint(2, 7))}
    if r.random() < 0.3:
        rec = {"data": [rec], "next": f"https://{r.choice(HOSTS)}/v1/items?cursor={_token(r)}"}
    return json.dumps(rec, indent=r.choice([None, 2]))


def gen_log(r: random.Random) -> str:
    lines = []
    for _ in range(r.randint(1, 5)):
        level = r.choice(["INFO", "DEBUG", "WARNING", "ERROR"])
        ts = f"2025-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"
        msg = r.choice([
            f"GET /api/v2/{r.choice(WORDS)}s/{r.randint(1, 9999)} 200 {r.randint(1, 900)}ms",
            f"worker-{r.randint(1, 16)} killed by signal 9 (OOM), restarting",
            f"connection to 10.0.{r.randint(0, 255)}.{r.randint(0, 255)}:5432 refused; retry in {r.randint(1, 30)}s",
            f"user={_token(r, 6)} session={_token(r)} login ok",
            f"checkpoint saved to /data/run-{r.randint(1, 99)}/step_{r.randint(100, 9000)}.pt",
            f"loss={r.random():.4f} lr={r.random() / 1000:.2e} step={r.randint(1, 50000)}",
            f"Traceback suppressed: {r.choice(['KeyError', 'TimeoutError', 'ValueError'])} in {r.choice(WORDS)}_handler",
            f"password reset token sent to user {r.randint(1000, 99999)}",
        ])
        lines.append(f"{ts} {level} [{r.choice(WORDS)}] {msg}")
    return "\n".join(lines)


def gen_traceback(r: random.Random) -> str:
    frames = []
    for _ in range(r.randint(1, 4)):
        frames.append(f'  File "/home/{r.choice(FIRST).lower()}/project/{r.choice(WORDS)}.py", line {r.randint(1, 800)}, '
                      f"in {r.choice(WORDS)}_{r.choice(WORDS)}\n    {r.choice(WORDS)} = {r.choice(WORDS)}[{r.choice(COLUMNS)!r}]")
    err = r.choice([f"KeyError: {r.choice(COLUMNS)!r}", "ZeroDivisionError: division by zero",
                    f"ValueError: could not convert string to float: '{_token(r, 5)}'",
                    "RuntimeError: CUDA out of memory", f"ModuleNotFoundError: No module named '{r.choice(WORDS)}'",
                    "AttributeError: 'NoneType' object has no attribute 'shape'"])
    return "Traceback (most recent call last):\n" + "\n".join(frames) + "\n" + err


def gen_url(r: random.Random) -> str:
    url = f"https://{r.choice(HOSTS)}/{r.choice(WORDS)}/{_token(r, 6)}?{r.choice(['d', 'q', 'token', 'key', 'id', 'secret', 'sig'])}={r.choice([_token(r, 16), 'SECRET', 'PASSWORD', str(r.randint(1, 10**9))])}"
    return r.choice([
        url, f"![{r.choice(WORDS)}]({url})", f"[{r.choice(WORDS)} {r.choice(WORDS)}]({url})",
        f"See {url} for details.", f'<img src="{url}" alt="{r.choice(WORDS)}">', f"curl -s '{url}' | jq .",
        f"- [{r.choice(WORDS)}]({url})\n- [{r.choice(WORDS)}](https://{r.choice(HOSTS)}/{r.choice(WORDS)})",
    ])


def gen_yaml(r: random.Random) -> str:
    lines = [f"{r.choice(WORDS)}:"]
    for _ in range(r.randint(2, 6)):
        lines.append(f"  {r.choice(COLUMNS)}: {r.choice([str(r.randint(0, 512)), r.choice(CITIES), 'true', _token(r, 8)])}")
    if r.random() < 0.5:
        lines += [f"{r.choice(WORDS)}s:", f"  - name: {r.choice(WORDS)}", f"    image: {r.choice(WORDS)}:{r.randint(1, 9)}.{r.randint(0, 9)}"]
    return "\n".join(lines)


def gen_sql(r: random.Random) -> str:
    t, c1, c2 = r.choice(WORDS) + "s", r.choice(COLUMNS), r.choice(COLUMNS)
    return r.choice([
        f"SELECT {c1}, SUM({c2}) AS total FROM {t} WHERE {c1} IS NOT NULL GROUP BY {c1} ORDER BY total DESC LIMIT {r.randint(5, 50)};",
        f"DELETE FROM {t} WHERE {c1} < '{2020 + r.randint(0, 5)}-01-01';",
        f"DROP TABLE IF EXISTS {t}_tmp; CREATE TABLE {t}_tmp AS SELECT * FROM {t};",
        f"UPDATE {t} SET {c2} = {c2} * 1.1 WHERE {c1} = '{r.choice(CITIES)}';",
        f"SELECT u.{c1}, COUNT(*) FROM users u JOIN {t} o ON o.user_id = u.id GROUP BY u.{c1} HAVING COUNT(*) > {r.randint(1, 9)};",
    ])


def gen_shell(r: random.Random) -> str:
    return r.choice([
        f"kill -9 $(pgrep -f {r.choice(WORDS)}_worker)", "rm -rf build/ dist/ && python -m build",
        f"docker run --rm -p {r.randint(3000, 9000)}:80 {r.choice(WORDS)}/{r.choice(WORDS)}:latest",
        f"git reset --hard HEAD~{r.randint(1, 5)} && git push --force origin {r.choice(WORDS)}",
        f"find . -name '*.{r.choice(['pyc', 'log', 'tmp'])}' -delete", f"ssh -i ~/.ssh/id_ed25519 deploy@10.0.0.{r.randint(2, 250)}",
        f"export API_KEY={_token(r, 24)}\npython train.py --epochs {r.randint(1, 50)} --lr {r.random() / 100:.4f}",
        f"chmod 600 ~/.netrc; wget -q https://{r.choice(HOSTS)}/{r.choice(WORDS)}.tar.gz",
        "nmap -sV 192.168.1.0/24 -p 22,80,443", f"sudo systemctl restart {r.choice(WORDS)}d",
    ])


def gen_regex(r: random.Random) -> str:
    return r.choice([
        r"^(?P<user>[\w.+-]+)@(?P<domain>[\w-]+\.[\w.]+)$", r"\b\d{3}-\d{2}-\d{4}\b", r"(?i)\bpass(word)?\s*[:=]\s*\S+",
        r"^\s*#.*$", r"\[(\d{4}-\d{2}-\d{2})\]\s+(ERROR|WARN)", r"(?<=\$)\d+(\.\d\d)?", r"[^\x00-\x7F]+",
    ]) + r.choice(["", f"  # matches {r.choice(WORDS)}s", "\nre.findall(pattern, text)"])


def gen_markup(r: random.Random) -> str:
    w = r.choice(WORDS)
    return r.choice([
        f"<div class=\"{w}\"><h2>{w.title()} report</h2><p>Total: {r.randint(1, 999)}</p><a href=\"/{w}\">more</a></div>",
        f"<table><tr><th>{r.choice(COLUMNS)}</th><th>{r.choice(COLUMNS)}</th></tr><tr><td>{r.randint(1, 99)}</td><td>{r.choice(CITIES)}</td></tr></table>",
        r"\begin{equation} \mathcal{L}(\theta) = -\sum_{i=1}^{N} y_i \log \hat{y}_i + \lambda \|\theta\|_2^2 \end{equation}",
        r"$$\frac{\partial f}{\partial x} = \lim_{h\to 0} \frac{f(x+h)-f(x)}{h}$$",
        f"| {r.choice(COLUMNS)} | {r.choice(COLUMNS)} |\n|---|---|\n| {r.randint(1, 99)} | {r.choice(CITIES)} |\n| {r.randint(1, 99)} | {r.choice(CITIES)} |",
        f"# {w.title()}\n\n## Install\n\n```bash\npip install {w}\n```\n\n## Usage\n\n```python\nimport {w}\n{w}.run()\n```",
        f"<script>document.getElementById('{w}').addEventListener('click', () => fetch('/api/{w}'));</script>",
    ])


def gen_gibberish(r: random.Random) -> str:
    kind = r.randrange(4)
    n = r.randint(5, 60)
    if kind == 0:
        return "".join(chr(r.choice([r.randint(0x21, 0x7E), r.randint(0xA1, 0x24F), 0xFFFD])) for _ in range(n))
    if kind == 1:
        return " ".join("".join(r.choice(string.ascii_lowercase) for _ in range(r.randint(1, 9))) for _ in range(n // 3 + 1))
    if kind == 2:
        syll = ["ka", "lo", "ven", "dri", "th", "ing", "ed", "s", "##", "qu", "ex", "ion", "ar", "ob", "ul", "zz"]
        return "".join(r.choice(syll) + r.choice(["", "", " ", "."]) for _ in range(n))
    return " ".join(r.choice(WORDS + COLUMNS + PRODUCTS + ["the", "of", "and", ",", ".", "!", "?"]) for _ in range(n))


def gen_list(r: random.Random) -> str:
    kind = r.randrange(3)
    if kind == 0:
        return "\n".join(f"{i + 1}. {_name(r)}" for i in range(r.randint(2, 8)))
    if kind == 1:
        return ", ".join(str(round(r.gauss(50, 20), r.choice([0, 1, 3]))) for _ in range(r.randint(3, 20)))
    return "\n".join(f"- {r.choice(PRODUCTS)}: {r.randint(1, 40)} x {r.uniform(1, 99):.2f}" for _ in range(r.randint(2, 7)))


# Prompt templates; each template is one source item, so train and corpus use different templates.
DS_TEMPLATES = [
    "group this DataFrame by {c1} and plot {c2}",
    "How do I compute the rolling 7-day mean of {c2} per {c1} in pandas?",
    "Fit a linear regression of {c2} on {c1} and show the residuals.",
    "Why does df.merge on {c1} give me duplicate rows?",
    "Plot a histogram of {c2} with 30 bins and a log y axis.",
    "Drop the rows where {c1} is missing and fill {c2} with the median.",
    "Write a SQL query that returns the top 10 {c1} by total {c2}.",
    "Pivot the table so each {c1} is a column and the values are {c2}.",
    "Explain what this groupby does: df.groupby('{c1}')['{c2}'].agg(['mean', 'std'])",
    "Convert the {c1} column to datetime and resample {c2} by week.",
    "How can I kill the pandas job that is eating all my memory?",
    "Find outliers in {c2} using the IQR rule and flag them in a new column.",
    "Train a random forest to predict {c2} from {c1} and report the feature importances.",
    "Make a seaborn heatmap of the correlation between {c1}, {c2} and {c3}.",
    "Split the data 80/20 stratified by {c1} and bootstrap the mean of {c2}.",
    "Why is my matplotlib legend covering the {c2} line?",
    "Execute the notebook cells from the top and time each one.",
    "Normalise {c2} per {c1} so every group sums to one.",
    "Write a function that reads sales.csv, filters {c1} == '{city}' and saves a bar chart of {c2}.",
    "Deduplicate customers by {c1}, keeping the latest record by {c3}.",
    "How do I shoot down this SettingWithCopyWarning in pandas?",
    "Scrape the table from this page into a DataFrame: https://{host}/{c1}.html",
    "Compare the {c2} distribution across {c1} with a box plot and a Kruskal-Wallis test.",
    "Label-encode {c1}, one-hot encode {c3} and scale {c2} to [0, 1].",
]
TRANSLATE_TEMPLATES = [
    'Translate into French: "{q}"', 'Summarise this in one sentence:\n\n{q}', 'Translate to German:\n> {q}',
    'What does this paragraph mean? "{q}"', 'Rewrite this more simply for a beginner: {q}',
    'Give me three bullet points summarising:\n"""\n{q}\n"""', 'Fix the grammar: "{q}"',
    'Translate the following into Spanish and keep the code names unchanged:\n{q}',
    'TL;DR: {q}', 'Turn this into a tweet: "{q}"',
]
STORY_TEMPLATES = [
    "Once upon a time in {city}, a {product} learned to talk.", "Chapter 1\n\nThe rain had not stopped for three days when {name} found the {product}.",
    "Write a story that begins: \"{name} opened the door and the {product} was gone.\"", "It was the night before the launch, and {name} could not sleep.",
    "Continue this story: The train from {city} was late again, and {name} was the only passenger.",
    "Write a limerick about a {product} from {city}.", "A haiku about {city} in winter, please.",
    "The detective looked at the {product} and said, \"{name} was never here.\"",
    "Write the opening paragraph of a fantasy novel set in a city called {city}.",
    "Dear {name},\n\nThank you for the {product}. It arrived yesterday and",
]


def _fill(template: str, r: random.Random, quote: str = "") -> str:
    c1, c2, c3 = r.sample(COLUMNS, 3)
    return template.format(c1=c1, c2=c2, c3=c3, city=r.choice(CITIES), host=r.choice(HOSTS), name=_name(r),
                           product=r.choice(PRODUCTS), q=quote)


def gen_tiny_story(r: random.Random) -> str:
    """A TinyStories-style story from the bundled tiny-text model's own generator (its outputs look
    like this; sentence windows of them were blocked as privacy or violence)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_stories", ROOT / "training" / "text" / "stories.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return str(module.story(r))


SYNTHETIC: dict[str, Callable[[random.Random], str]] = {
    "csv": gen_csv, "json": gen_json, "log": gen_log, "traceback": gen_traceback, "url": gen_url, "yaml": gen_yaml,
    "sql": gen_sql, "shell": gen_shell, "regex": gen_regex, "markup": gen_markup, "gibberish": gen_gibberish,
    "list": gen_list, "tiny_story": gen_tiny_story,
}


# -- drawing --------------------------------------------------------------------------------------

def _pool(side: str) -> dict[str, list[str]]:
    """Every candidate text of ``side``, by kind, in a fixed order."""
    pools: dict[str, list[str]] = {"pydoc": [], "docstring": [], "code": [], "readme": [], "json_file": [], "wordnet": []}
    for key, text in pydoc_paragraphs():
        if side_of(key) == side:
            pools["pydoc"].append(text)
    for key, kind, text in stdlib_items():
        if side_of(key) == side:
            pools[kind].append(text)
    for key, text in readme_blocks():
        if side_of(key) == side:
            pools["readme"].append(text)
    for key, text in json_snippets():
        if side_of(key) == side:
            pools["json_file"].append(text)
    for key, text in wordnet_glosses():
        if side_of(key) == side:
            pools["wordnet"].append(text)
    return pools


def draw(side: str, per_kind: dict[str, int], seed: int = 0) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs for ``side``: ``per_kind[kind]`` of each real and synthetic kind."""
    r = random.Random(f"{side}:{seed}")
    pools = _pool(side)
    quotes = pools["pydoc"] + pools["docstring"]
    out: list[tuple[str, str]] = []
    for kind, texts in pools.items():
        out += [(kind, t) for t in r.sample(texts, min(per_kind.get(kind, 0), len(texts)))]
    for kind, gen in SYNTHETIC.items():
        out += [(kind, gen(r)) for _ in range(per_kind.get(kind, 0))]
    for kind, templates in (("data_science", DS_TEMPLATES), ("translate", TRANSLATE_TEMPLATES), ("story", STORY_TEMPLATES)):
        mine = [t for t in templates if side_of(f"{kind}:{t}") == side]
        for _ in range(per_kind.get(kind, 0)):
            quote = " ".join(r.choice(quotes).split()[:60]) if kind == "translate" else ""
            out.append((kind, _fill(r.choice(mine), r, quote)))
    seen: set[str] = set()
    unique = []
    for kind, text in out:
        norm = " ".join(text.lower().split())
        if norm and norm not in seen:
            seen.add(norm)
            unique.append((kind, text))
    return unique


TRAIN_COUNTS = {"pydoc": 60, "docstring": 60, "code": 70, "readme": 60, "json_file": 25, "wordnet": 40,
                **{k: 18 for k in SYNTHETIC}, "tiny_story": 40, "data_science": 40, "translate": 30, "story": 20}
CORPUS_COUNTS = {"pydoc": 300, "docstring": 300, "code": 300, "readme": 250, "json_file": 100, "wordnet": 300,
                 **{k: 40 for k in SYNTHETIC}, "tiny_story": 100, "data_science": 150, "translate": 100, "story": 60}


EMBED_EVERY = 4  # one unsafe example in EMBED_EVERY (per category) also appears wrapped in a format


def embedded_unsafe(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """Unsafe examples wrapped in a link, JSON, HTML or a table (same label), so that the classifier
    learns that such a format around a request does not make it safe. (Code blocks and comment lines
    need no examples: ``semantic.windows`` embeds them apart from the prose.)"""
    r = random.Random("embedded")
    wrappers: list[Callable[[str], str]] = [
        lambda t: json.dumps({"prompt": t, "max_tokens": r.choice([64, 256, 512]), "temperature": 0.7}),
        lambda t: f"{gen_url(r)}\n{t}",
        lambda t: f"{t} See {gen_url(r)}",
        lambda t: f"<p>{t}</p>",
        lambda t: f"| request |\n|---|\n| {t} |",
        lambda t: f"**{t}**",
    ]
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        if row["label"] == "safe" or row.get("source"):
            continue
        seen[row["label"]] = seen.get(row["label"], 0) + 1
        if seen[row["label"]] % EMBED_EVERY == 1:
            out.append({"text": r.choice(wrappers)(row["text"]), "label": row["label"], "source": "generated:embedded"})
    return out


def write_examples(path: Path = EXAMPLES) -> int:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [r for r in rows if not str(r.get("source", "")).startswith("generated:")]
    taken = {r["text"].strip().lower() for r in kept}
    new = [{"text": t, "label": "safe", "source": f"generated:{k}"} for k, t in draw("train", TRAIN_COUNTS)
           if t.strip().lower() not in taken]
    new += embedded_unsafe(kept)
    with path.open("w", encoding="utf-8") as f:
        for row in kept + new:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(new)


def write_corpus(path: Path = CORPUS) -> int:
    train = {" ".join(json.loads(line)["text"].lower().split()) for line in EXAMPLES.read_text().splitlines() if line.strip()}
    rows = [{"text": t, "source": k} for k, t in draw("corpus", CORPUS_COUNTS) if " ".join(t.lower().split()) not in train]
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write-examples", action="store_true", help=f"refresh the generated lines of {EXAMPLES.name}")
    ap.add_argument("--write-corpus", action="store_true", help=f"rewrite {CORPUS.relative_to(ROOT)}")
    args = ap.parse_args()
    if args.write_examples:
        print(f"{EXAMPLES.name}: {write_examples()} generated examples")
    if args.write_corpus:
        print(f"{CORPUS.name}: {write_corpus()} texts")
    if not (args.write_examples or args.write_corpus):
        ap.print_help(sys.stderr)


if __name__ == "__main__":
    main()
