"""Moderation quality and speed on the labelled evaluation set (tests/data/moderation_eval.jsonl).

    OMP_NUM_THREADS=1 python bench/moderation_eval.py [--level standard|strict] [--path FILE]

Each line is ``{"text", "unsafe": bool, "category": id|null, "part": "dev"|"holdout"}``; "dev"
lines were written before the labelled examples (genmagic/safety/data/moderation_examples.jsonl)
were frozen and used to tune the thresholds, "holdout" lines after, and never used to tune. The
set shares no line with the examples. A text is *caught* when a finding blocks it, *flagged*
when any finding (warn, review or block) is returned; the issue's targets at the standard level:
caught >= 0.9 of unsafe texts, <= 0.05 of benign texts blocked.
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


def evaluate(level: str = "standard", path: Path = EVAL_PATH, moderator: Moderator | None = None,
             part: str | None = None) -> dict[str, Any]:
    """Quality at ``level`` for both layers and for the rules alone; ``part``: only "dev" or
    "holdout" lines."""
    rows = [r for r in load(path) if part is None or r.get("part") == part]
    moderator = moderator or Moderator()
    texts = [r["text"] for r in rows]
    out = {"level": level, "part": part or "all",
           "rules": score(rows, [moderator.screen(t, level, semantic=False) for t in texts])}
    if moderator.semantic_available:
        out["both"] = score(rows, moderator.screen_many(texts, level))
    return out


def latency(rounds: int = 30) -> dict[str, float]:
    """Milliseconds on one thread: loading the semantic layer in a fresh Moderator (torch already
    imported), one typical prompt (both layers), a ~2000-token text (both layers); microseconds:
    the rules alone on that prompt and on a streamed chunk."""
    import torch

    from genmagic.safety import semantic

    torch.set_num_threads(1)
    moderator = Moderator()
    t0 = time.perf_counter()
    moderator.load()
    load_ms = (time.perf_counter() - t0) * 1000
    prompt = ("Write a short story about a lighthouse keeper who finds a message in a bottle. "
              "Keep it under 300 words and end on a hopeful note.")
    long_text = " ".join(["The committee reviewed the quarterly figures and agreed to revisit the budget next spring."] * 125)

    def median_ms(fn: Any, n: int) -> float:
        fn()
        times = []
        for _ in range(n):
            t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)  # noqa: E702
        return statistics.median(times)

    encoder = moderator._ensure_loaded()[0]
    count = lambda text: sum(len(e.ids) for e in encoder.tokenizer.encode_batch(  # noqa: E731
        [text[a:b] for a, b in semantic.windows(text)]))
    return {
        "load_ms": load_ms,
        "prompt_ms": median_ms(lambda: moderator.screen(prompt), rounds),
        "prompt_tokens": count(prompt),
        "prompt_rules_us": median_ms(lambda: moderator.screen(prompt, semantic=False), rounds * 10) * 1000,
        "chunk_rules_us": median_ms(lambda: moderator.screen(" the answer is 42 ", semantic=False), rounds * 10) * 1000,
        "long_ms": median_ms(lambda: moderator.screen(long_text), 3),
        "long_tokens": count(long_text),
    }


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
    for part in (None, "dev", "holdout", "holdout2", "holdout3"):
        result = evaluate(args.level, args.path, moderator, part)
        if not result["rules"]["unsafe"] and not result["rules"]["benign"]:
            continue
        print(_table(result), end="\n\n")
        if args.verbose and part is None:
            final = result.get("both", result["rules"])
            print("missed:", *final["missed"], sep="\n  ")
            print("false blocks:", *final["false_blocks"], sep="\n  ")
            print()
    if moderator.semantic_available:
        lat = latency()
        print(f"latency (1 thread): load {lat['load_ms']:.0f} ms; {lat['prompt_tokens']}-token prompt "
              f"{lat['prompt_ms']:.1f} ms (rules only {lat['prompt_rules_us']:.0f} us); {lat['long_tokens']}-token text "
              f"{lat['long_ms']:.0f} ms; rules on a stream chunk {lat['chunk_rules_us']:.1f} us")


if __name__ == "__main__":
    main()
