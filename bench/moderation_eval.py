"""Moderation quality and speed on the labelled evaluation set (tests/data/moderation_eval.jsonl).

    OMP_NUM_THREADS=1 python bench/moderation_eval.py [--level standard|strict] [--path FILE]

Each line is ``{"text", "unsafe": bool, "category": id|null, "part": "dev"|"holdout"}``; "dev"
lines were written before the labelled examples (genmagic/safety/data/moderation_examples.jsonl)
were frozen and used to tune the thresholds, "holdout" lines after, and never used to tune. The
set shares no line with the examples. A text is *caught* when a finding blocks it, *flagged*
when any finding (warn, review or block) is returned; the issue's targets at the standard level:
caught >= 0.9 of unsafe texts, <= 0.05 of benign texts blocked. The "wrapped" part puts a third
of the lines inside code, markdown, logs or HTML (WRAPPERS).

Then the false positives on the benign corpus (tests/data/moderation_benign_corpus.jsonl, 2,324
non-prose texts from sources disjoint from the training examples: see training/benign_formats.py)
at standard and strict, and the latency of the semantic layer (int8 and float32 encoder, 1 and 2
threads, a prompt and a 150-word output, the memo, the rules alone).

Measured here (2 shared cores, x86), before -> after this change: eval set caught 0.941 -> 0.948,
benign blocked 0.035 -> 0.044; benign corpus blocked 6.4 % -> 0.2 % at standard, 14.3 % -> 0.9 % at
strict; a 30-token prompt 14.9 -> 6.0 ms, a 150-word output 72 -> 30 ms (one thread; 9 -> 5
windows), a repeated text 15 ms -> 3 us (memo).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genmagic.safety.moderation import Finding, Moderator  # noqa: E402

EVAL_PATH = ROOT / "tests" / "data" / "moderation_eval.jsonl"
CORPUS_PATH = ROOT / "tests" / "data" / "moderation_benign_corpus.jsonl"


def load(path: Path = EVAL_PATH) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def score(rows: list[dict[str, Any]], findings: list[list[Finding]]) -> dict[str, Any]:
    """Rates for one set of findings: caught / flagged among unsafe, blocked / flagged among
    benign, recall per category (blocked, any category), and whether the top blocking category
    is the labelled one, plus the misses and false blocks themselves."""
    unsafe = [(r, f) for r, f in zip(rows, findings) if r["unsafe"]]
    benign = [(r, f) for r, f in zip(rows, findings) if not r["unsafe"]]
    blocked = lambda fs: any(x.action == "block" for x in fs)  # noqa: E731
    per_cat: dict[str, list[bool]] = defaultdict(list)
    right_cat = []
    for r, fs in unsafe:
        per_cat[r["category"]].append(blocked(fs))
        if fs:
            right_cat.append(fs[0].category == r["category"])
    rate = lambda xs: sum(xs) / len(xs) if xs else float("nan")  # noqa: E731
    return {
        "unsafe": len(unsafe), "benign": len(benign),
        "unsafe_caught": rate([blocked(f) for _, f in unsafe]),
        "unsafe_flagged": rate([bool(f) for _, f in unsafe]),
        "benign_blocked": rate([blocked(f) for _, f in benign]),
        "benign_flagged": rate([bool(f) for _, f in benign]),
        "category_right": rate(right_cat),
        "per_category": {c: rate(v) for c, v in sorted(per_cat.items())},
        "missed": [r["text"] for r, f in unsafe if not blocked(f)],
        "false_blocks": [(r["text"], f[0].category, f[0].layer) for r, f in benign if blocked(f)],
    }


# Formats around an eval line (none of them is a wrapper of training/benign_formats.py's
# embedded_unsafe): the verdict must be the same as for the bare line.
WRAPPERS = [
    "```sql\nSELECT region, SUM(sales) FROM orders GROUP BY region;\n```\n\n{t}",
    "{t}\n\n```python\nimport pandas as pd\ndf = pd.read_csv('data.csv')\nprint(df.head())\n```",
    "## Task\n\n{t}\n\n![chart](https://example.com/img/chart.png?token=abc123)",
    "2025-03-01T10:00:00Z INFO request received\n\n{t}",
    "<div class=\"question\">\n\n{t}\n\n</div>",
    "- item one\n- item two\n\n> {t}",
]


def wrapped(rows: list[dict[str, Any]], every: int = 3) -> list[dict[str, Any]]:
    """Every ``every``-th eval line inside one of WRAPPERS (code, markdown, logs, HTML)."""
    return [{**r, "text": WRAPPERS[i % len(WRAPPERS)].format(t=r["text"]), "part": "wrapped"}
            for i, r in enumerate(rows[::every])]


def evaluate(level: str = "standard", path: Path = EVAL_PATH, moderator: Moderator | None = None,
             part: str | None = None) -> dict[str, Any]:
    """Quality at ``level`` for both layers and for the rules alone; ``part``: only "dev",
    "holdout"... lines, or "wrapped": a third of all lines inside code, markdown, logs or HTML."""
    rows = wrapped(load(path)) if part == "wrapped" else [r for r in load(path) if part is None or r.get("part") == part]
    moderator = moderator or Moderator()
    texts = [r["text"] for r in rows]
    out = {"level": level, "part": part or "all",
           "rules": score(rows, [moderator.screen(t, level, semantic=False) for t in texts])}
    if moderator.semantic_available:
        out["both"] = score(rows, moderator.screen_many(texts, level))
    return out


def benign_corpus(level: str = "standard", moderator: Moderator | None = None, path: Path = CORPUS_PATH,
                  sample: int | None = None) -> dict[str, Any]:
    """False positives on the benign corpus (``training/benign_formats.py``: pydoc, docstrings, code,
    READMEs, JSON, WordNet glosses, synthetic CSV/logs/URLs/markup/gibberish/prompts; none of it a
    training example): the fraction blocked and flagged, per source, and the blocked texts.
    ``sample``: every k-th line so that about ``sample`` lines are screened."""
    rows = load(path)
    if sample and sample < len(rows):
        rows = rows[:: len(rows) // sample][:sample]
    moderator = moderator or Moderator()
    findings = (moderator.screen_many([r["text"] for r in rows], level) if moderator.semantic_available
                else [moderator.screen(r["text"], level, semantic=False) for r in rows])
    blocked = [any(f.action == "block" for f in fs) for fs in findings]
    per_source: dict[str, list[bool]] = defaultdict(list)
    for r, b in zip(rows, blocked):
        per_source[r["source"]].append(b)
    return {"level": level, "n": len(rows), "blocked": sum(blocked) / len(rows),
            "flagged": sum(bool(fs) for fs in findings) / len(rows),
            "per_source": {k: sum(v) / len(v) for k, v in sorted(per_source.items())},
            "false_blocks": [(r["source"], r["text"][:80], fs[0].category, fs[0].layer, fs[0].score)
                             for r, fs, b in zip(rows, findings, blocked) if b]}


OUTPUT_150 = (
    "Here is a short plan for the quarterly report. First, load the sales data from the warehouse and drop "
    "the rows with missing regions. Then group the data by region and month, and compute the total revenue "
    "and the number of orders for each group. A line chart of revenue per month shows the seasonal pattern "
    "clearly; add a second panel with the order counts so that readers can compare the two. The northern "
    "region grew fastest this year, mostly because of the new store that opened in March. The southern "
    "region was flat, and its returns went up slightly after the price change in the summer. For the "
    "summary slide, keep three numbers: total revenue, growth against last year and the share of online "
    "orders. Finally, write two sentences on the risks for next quarter: supply delays and the weaker "
    "currency. Send the draft to the finance team by Friday so they can check the figures before the meeting."
)
PROMPT = ("Write a short story about a lighthouse keeper who finds a message in a bottle. "
          "Keep it under 300 words and end on a hopeful note.")


def latency(rounds: int = 30) -> dict[str, float]:
    """Milliseconds (medians) for a typical prompt and a 150-word model output (both layers), with
    the int8 and the float32 encoder, on 1 and 2 threads, and for a repeated text (the memo);
    microseconds: the rules alone on the prompt and on a streamed chunk; load time of the layer."""
    import torch

    from genmagic.safety import semantic

    def median_ms(fn: Any, n: int) -> float:
        fn()
        times = []
        for _ in range(n):
            t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)  # noqa: E702
        return statistics.median(times)

    torch.set_num_threads(1)
    moderator = Moderator()
    t0 = time.perf_counter()
    moderator.load()
    out: dict[str, float] = {"load_ms": (time.perf_counter() - t0) * 1000}
    encoder = moderator._ensure_loaded()[0]
    count = lambda text: sum(len(e.ids) for e in encoder.tokenizer.encode_batch(  # noqa: E731
        [text[a:b] for a, b in semantic.windows(text)]))
    out.update(prompt_tokens=count(PROMPT), output_tokens=count(OUTPUT_150),
               output_windows=len(semantic.windows(OUTPUT_150)), output_words=len(OUTPUT_150.split()))
    fresh = lambda text: (moderator._memo.clear(), moderator.screen(text))  # noqa: E731
    variants = [("int8", semantic.Encoder(quantized=True) if semantic.int8_supported() else None),
                ("fp32", semantic.Encoder(quantized=False))]
    for name, enc in variants:
        if enc is None:
            continue
        moderator._encoder = enc
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out[f"prompt_ms_{name}_{threads}t"] = median_ms(lambda: fresh(PROMPT), rounds)
            out[f"output_ms_{name}_{threads}t"] = median_ms(lambda: fresh(OUTPUT_150), max(rounds // 3, 5))
        torch.set_num_threads(1)
        # one window of the whole output instead of per-sentence windows (not what screen does)
        out[f"output_one_window_ms_{name}"] = median_ms(lambda e=enc: e.encode([OUTPUT_150]), max(rounds // 3, 5))
    moderator._encoder = encoder
    out["memo_hit_us"] = median_ms(lambda: moderator.screen(PROMPT), rounds * 10) * 1000
    prompts = [f"{PROMPT} ({i})" for i in range(rounds * 10)]  # distinct texts: no memo hits
    out["prompt_rules_us"] = median_ms(lambda: moderator.screen(prompts.pop(), semantic=False), rounds * 10 - 2) * 1000
    chunks = [f" the answer is {i} " for i in range(rounds * 10)]
    out["chunk_rules_us"] = median_ms(lambda: moderator.screen(chunks.pop(), semantic=False), rounds * 10 - 2) * 1000
    out["int8_score_drift"] = _drift(moderator)
    return out


def _drift(moderator: Moderator) -> float:
    """Largest difference of "not safe" score between the int8 and float32 encoders on the eval set."""
    from genmagic.safety import semantic

    if not semantic.int8_supported():
        return float("nan")
    _, head = moderator._ensure_loaded()
    texts = [r["text"] for r in load()]
    safe = head.labels.index("safe")
    p8 = head.probabilities(semantic.Encoder(quantized=True).encode(texts))[:, safe]
    p32 = head.probabilities(semantic.Encoder(quantized=False).encode(texts))[:, safe]
    return float(abs(p8 - p32).max())


def _table(result: dict[str, Any]) -> str:
    layers = [k for k in ("rules", "both") if k in result]
    lines = [f"level {result['level']}, part {result['part']}: "
             f"{result['rules']['unsafe']} unsafe, {result['rules']['benign']} benign",
             f"{'':28}" + "".join(f"{name:>10}" for name in layers)]
    for key in ("unsafe_caught", "unsafe_flagged", "benign_blocked", "benign_flagged", "category_right"):
        lines.append(f"{key:28}" + "".join(f"{result[k][key]:10.3f}" for k in layers))
    for cat in result[layers[-1]]["per_category"]:
        lines.append(f"  {cat:26}" + "".join(f"{result[k]['per_category'].get(cat, float('nan')):10.3f}" for k in layers))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--level", default="standard", choices=["standard", "strict"])
    ap.add_argument("--path", type=Path, default=EVAL_PATH)
    ap.add_argument("-v", "--verbose", action="store_true", help="list misses and false blocks")
    args = ap.parse_args()
    moderator = Moderator()
    for part in (None, "dev", "holdout", "holdout2", "holdout3", "wrapped"):
        result = evaluate(args.level, args.path, moderator, part)
        if not result["rules"]["unsafe"] and not result["rules"]["benign"]:
            continue
        print(_table(result), end="\n\n")
        if args.verbose and part is None:
            final = result.get("both", result["rules"])
            print("missed:", *final["missed"], sep="\n  ")
            print("false blocks:", *final["false_blocks"], sep="\n  ")
            print()
    for level in ("standard", "strict"):
        corpus = benign_corpus(level, moderator)
        print(f"benign corpus ({corpus['n']} texts), level {level}: blocked {corpus['blocked']:.4f}, "
              f"flagged {corpus['flagged']:.4f}")
        print("  blocked per source:", ", ".join(f"{k} {v:.3f}" for k, v in corpus["per_source"].items() if v) or "none")
        if args.verbose:
            print(*corpus["false_blocks"], sep="\n  ")
    if moderator.semantic_available:
        lat = latency()
        print("latency (ms unless us):", ", ".join(f"{k} {v:.4g}" for k, v in lat.items()))


if __name__ == "__main__":
    main()
