"""Safety quality on the project's labelled sets, through the public path users call
(``genmagic.safety.check_texts``: PII, the rule layer and the semantic layer, at one level).

    OMP_NUM_THREADS=1 python bench/safety_eval.py [--level standard|strict]

- PII (tests/data/pii_eval.jsonl): precision and recall per type and overall, a found value
  counting when it has the labelled type and overlaps the labelled span. Target >= 0.95 both.
- Unsafe prompts (tests/data/moderation_eval.jsonl): the share of unsafe texts not allowed
  (blocked or held for review) and of benign texts blocked, per part of the set ("dev" was used
  to tune, the holdout parts were written later and never tuned on). Targets at standard:
  >= 0.9 caught, <= 0.05 benign blocked.

bench/pii_eval.py and bench/moderation_eval.py give the details (misses, false alarms, per
category, latency).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def unsafe_prompts(level: str) -> dict[str, dict[str, float]]:
    from genmagic.safety import check_texts

    rows = [json.loads(line) for line in (ROOT / "tests" / "data" / "moderation_eval.jsonl").read_text().splitlines()
            if line.strip()]
    checked = check_texts([r["text"] for r in rows], level)
    parts: dict[str, dict[str, list[int]]] = defaultdict(lambda: {"caught": [0, 0], "blocked": [0, 0]})
    for row, found in zip(rows, checked, strict=True):
        for part in (row.get("part", "all"), "all"):
            if row["unsafe"]:
                parts[part]["caught"][0] += not found.allowed
                parts[part]["caught"][1] += 1
            else:
                parts[part]["blocked"][0] += found.action == "block"
                parts[part]["blocked"][1] += 1
    return {part: {"caught": c["caught"][0] / max(c["caught"][1], 1), "unsafe": c["caught"][1],
                   "benign_blocked": c["blocked"][0] / max(c["blocked"][1], 1), "benign": c["blocked"][1]}
            for part, c in parts.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", default="standard", choices=("standard", "strict"))
    args = parser.parse_args()

    from pii_eval import evaluate as pii_evaluate

    pii = pii_evaluate()
    print("PII (tests/data/pii_eval.jsonl)")
    print(f"  {'type':12} {'precision':>9} {'recall':>7} {'labelled':>8}")
    for name, s in [*pii["types"].items(), ("overall", pii["overall"])]:
        print(f"  {name:12} {s['precision']:9.3f} {s['recall']:7.3f} {s['labelled']:8d}")
    print(f"\nUnsafe prompts at {args.level} (tests/data/moderation_eval.jsonl)")
    print(f"  {'part':10} {'caught':>7} {'of':>4} {'benign blocked':>15} {'of':>4}")
    result = unsafe_prompts(args.level)
    for part in sorted(result, key=lambda p: (p == "all", p)):
        r = result[part]
        print(f"  {part:10} {r['caught']:7.3f} {r['unsafe']:4d} {r['benign_blocked']:15.3f} {r['benign']:4d}")


if __name__ == "__main__":
    main()
