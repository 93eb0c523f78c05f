#!/usr/bin/env python3
"""Held-out perplexity and fixed-seed samples for a tiny-text model folder.

    python training/text/evaluate.py                      # the shipped genmagic/models/tiny-text
    python training/text/evaluate.py --model DIR --text FILE --no-samples

``heldout_perplexity(model_dir, text_path=None)`` scores text_path (default:
training/text/heldout_sample.txt, ~75 KB of held-out documents from the corpus,
separated by a form-feed line) in non-overlapping windows of the model's
context length and returns exp(mean token negative log-likelihood).
"""
from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_MODEL = REPO / "genmagic" / "models" / "tiny-text"
DEFAULT_TEXT = HERE / "heldout_sample.txt"
DOC_SEP = "\n\n\f\n\n"

SAMPLE_PROMPTS = [
    "In the beginning",
    "The Python interpreter",
    "Happiness (noun):",
]
CHAT_PROMPTS = [
    "What does courage mean?",
    "Who are you?",
    "Quote a verse from the Bible.",
]
SAMPLE_SETTINGS = dict(do_sample=True, temperature=0.7, top_p=0.9, repetition_penalty=1.15, max_new_tokens=60)


def _load(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    model.eval()
    return tok, model


def source_of(doc: str) -> str:
    """Which part of the v1 corpus a held-out document comes from (heldout_sample.txt is unlabelled)."""
    if doc.startswith("<s>"):
        return "chat"
    if re.match(r"^(?:[1-3] )?[A-Z][a-z]+(?: of [A-Z][a-z]+)? \d+\n\n", doc):
        return "kjv"
    if "\n*****" in doc:
        return "pydoc"
    if re.match(r"^[A-Za-z][\w' -]*(?: \([a-z ]+\))?(?::|\n1\. )", doc):
        return "gcide"
    return "fortune"


def heldout_perplexity(model_dir=DEFAULT_MODEL, text_path=None, _loaded=None, source=None) -> float:
    """Perplexity of the model in `model_dir` on `text_path` (default: heldout_sample.txt);
    with `source` ("kjv", "gcide", "pydoc", "fortune", "chat") only on that part's documents."""
    import torch
    tok, model = _loaded or _load(model_dir)
    text = Path(text_path or DEFAULT_TEXT).read_text(encoding="utf-8")
    tok.model_max_length = 10 ** 9  # we cut windows ourselves; silence the length warning
    ids = []
    for doc in text.split(DOC_SEP):
        doc = doc.strip("\n")
        if not doc or (source and source_of(doc) != source):
            continue
        if doc.startswith(tok.bos_token):          # chat conversation, has its own <s> ... </s>
            ids += tok(doc, add_special_tokens=False)["input_ids"]
        else:
            ids += [tok.bos_token_id] + tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ctx = int(getattr(model.config, "max_position_embeddings", 256))
    total_nll, total_n = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(ids) - 1, ctx):
            x = torch.tensor([ids[i:i + ctx]])
            if x.shape[1] < 2:
                break
            logits = model(input_ids=x).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
            total_nll += nll.item()
            total_n += x.shape[1] - 1
    return math.exp(total_nll / total_n)


def samples(model_dir=DEFAULT_MODEL, seed=0, _loaded=None, **settings):
    import torch
    tok, model = _loaded or _load(model_dir)
    kw = dict(SAMPLE_SETTINGS, **settings)
    out = []
    for p in SAMPLE_PROMPTS:
        torch.manual_seed(seed)
        enc = tok(p, return_tensors="pt")
        g = model.generate(**enc, **kw, pad_token_id=tok.pad_token_id)
        out.append(("text", p, tok.decode(g[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)))
    for q in CHAT_PROMPTS:
        torch.manual_seed(seed)
        enc = tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True,
                                      return_tensors="pt", return_dict=True)
        g = model.generate(**enc, **kw, pad_token_id=tok.pad_token_id)
        out.append(("chat", q, tok.decode(g[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--text", default=None, help="text file to score (default: heldout_sample.txt)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    ap.add_argument("--no-samples", action="store_true")
    ap.add_argument("--by-source", action="store_true", help="also the perplexity of each part of the sample")
    args = ap.parse_args()
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    t = time.time()
    loaded = _load(args.model)
    print(f"loaded {args.model} in {time.time() - t:.2f}s "
          f"({sum(p.numel() for p in loaded[1].parameters()):,} params)")
    t = time.time()
    ppl = heldout_perplexity(args.model, args.text, _loaded=loaded)
    print(f"held-out perplexity: {ppl:.2f}  (loss {math.log(ppl):.4f}, {time.time() - t:.1f}s)")
    if args.by_source:
        for src in ("kjv", "gcide", "pydoc", "fortune", "chat"):
            print(f"  {src:<8} {heldout_perplexity(args.model, args.text, _loaded=loaded, source=src):.2f}")
    if not args.no_samples:
        print(f"samples (seed {args.seed}, {SAMPLE_SETTINGS}):")
        for kind, prompt, text in samples(args.model, args.seed, _loaded=loaded):
            print(f"--- [{kind}] {prompt!r}\n{text}\n")


if __name__ == "__main__":
    main()
