"""PII detection: precision and recall on a labelled set, and scanning throughput.

A found span counts as correct when a labelled span of the same type overlaps it; a labelled span
counts as found when a found span of the same type overlaps it.
Usage: python bench/pii_eval.py [path.jsonl] [--split dev|heldout]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

from genmagic.safety.pii import PII_TYPES, find_pii

DEFAULT_SET = Path(__file__).resolve().parent.parent / "tests" / "data" / "pii_eval.jsonl"


def _overlaps(a: dict, b: dict) -> bool:
    return a["type"] == b["type"] and a["start"] < b["end"] and b["start"] < a["end"]


def evaluate(path: str | Path = DEFAULT_SET, split: str | None = None) -> dict:
    """Per type and overall: precision, recall, counts, and the rows that went wrong.

    Returns ``{"types": {type: {"precision", "recall", "found", "labelled"}}, "overall": {...},
    "errors": [{"text", "missed", "extra"}]}``; a type with nothing found has precision 1.0.
    """
    counts = {t: {"found": 0, "correct": 0, "labelled": 0, "recalled": 0} for t in PII_TYPES}
    errors = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if split is not None and row.get("split") != split:
            continue
        gold = row["pii"]
        found = [{"type": m.type, "start": m.start, "end": m.end} for m in find_pii(row["text"])]
        extra = [f for f in found if not any(_overlaps(f, g) for g in gold)]
        missed = [g for g in gold if not any(_overlaps(g, f) for f in found)]
        for f in found:
            counts[f["type"]]["found"] += 1
            counts[f["type"]]["correct"] += f not in extra
        for g in gold:
            counts[g["type"]]["labelled"] += 1
            counts[g["type"]]["recalled"] += g not in missed
        if extra or missed:
            errors.append({"text": row["text"], "missed": missed, "extra": extra})
    total = {k: sum(c[k] for c in counts.values()) for k in ("found", "correct", "labelled", "recalled")}
    return {"types": {t: _scores(c) for t, c in counts.items()}, "overall": _scores(total), "errors": errors}


def _scores(c: dict) -> dict:
    return {
        "precision": c["correct"] / c["found"] if c["found"] else 1.0,
        "recall": c["recalled"] / c["labelled"] if c["labelled"] else 1.0,
        "found": c["found"],
        "labelled": c["labelled"],
    }


def _corpus(megabytes: float, seed: int = 0) -> str:
    """Python's own documentation text (``pydoc_data.topics``), repeated to ``megabytes``, with an
    e-mail address, a phone number, a card, an IBAN and an IP address sprinkled in every ~4 KB."""
    from pydoc_data.topics import topics

    prose = "\n\n".join(topics[k] for k in sorted(topics))
    rng = random.Random(seed)
    sprinkles = ["jane.doe@example.com", "+44 20 7946 0958", "4111 1111 1111 1111",
                 "DE89 3704 0044 0532 0130 00", "192.168.10.24", "123-45-6789"]
    pieces, size = [], 0
    target = int(megabytes * 1_000_000)
    while size < target:
        start = rng.randrange(0, len(prose) - 4096)
        piece = prose[start : start + 4096] + " " + rng.choice(sprinkles) + " "
        pieces.append(piece)
        size += len(piece.encode("utf-8"))
    return "".join(pieces)


def throughput_mb_s(megabytes: float = 4.0, text: str | None = None) -> float:
    """``find_pii`` over several MB of documentation prose with PII in it, in MB (10^6 bytes) per second."""
    text = _corpus(megabytes) if text is None else text
    t0 = time.perf_counter()
    find_pii(text)
    elapsed = time.perf_counter() - t0
    return len(text.encode("utf-8")) / 1_000_000 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default=str(DEFAULT_SET))
    parser.add_argument("--split", choices=["dev", "heldout"], default=None)
    parser.add_argument("--errors", action="store_true", help="print the rows that went wrong")
    args = parser.parse_args()
    result = evaluate(args.path, args.split)
    print(f"{'type':<12} {'precision':>9} {'recall':>7} {'found':>6} {'labelled':>8}")
    for name, s in [*result["types"].items(), ("overall", result["overall"])]:
        print(f"{name:<12} {s['precision']:>9.3f} {s['recall']:>7.3f} {s['found']:>6} {s['labelled']:>8}")
    if args.errors:
        for e in result["errors"]:
            print(json.dumps(e, ensure_ascii=False))
    print(f"throughput: {throughput_mb_s():.1f} MB/s (documentation prose with PII every ~4 KB)")


if __name__ == "__main__":
    main()
