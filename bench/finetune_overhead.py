"""%%finetune's training loop vs a plain peft + torch loop: optimizer steps per second on the
same model, data, LoRA settings and batch size.

Both sides load the base model, wrap it with the same ``LoraConfig`` and time only the training
steps (no eval, no saving). genmagic's side is ``genmagic.finetune(..., eval_split=0)``, timed by
its own ``metrics["seconds"]`` (the loop alone), with the live view off; the plain side is the loop
anyone would write: tokenize, pad each micro-batch, ``model(**batch).loss.backward()``, AdamW.
Rounds alternate; the ratio is plain steps/s over genmagic's (target <= 1.10).

Cases: ``tiny`` (the embedded tiny-text) and ``big`` (a ~100M-parameter Llama with random
weights, built in code under the temp dir, tiny-text's tokenizer).

Usage: python bench/finetune_overhead.py [--case tiny|big|all] [--steps N] [--rounds N] [--batch-size N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CORPUS = [f"The support bot says: to reset a password open Settings, then Security (ticket {i})." for i in range(64)]


def big_model(folder: Path) -> Path:
    """A ~100M-parameter Llama with random weights and tiny-text's tokenizer, saved once."""
    if (folder / "model.safetensors").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tiny = ROOT / "genmagic" / "models" / "tiny-text"
    tok = AutoTokenizer.from_pretrained(tiny)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=2304, num_hidden_layers=12,
                         num_attention_heads=12, num_key_value_heads=12, max_position_embeddings=256,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(config)
    print(f"big model: {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters", file=sys.stderr)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def plain(folder: str, steps: int, batch_size: int, seed: int) -> float:
    """Steps per second of a plain peft + torch loop."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                             task_type="CAUSAL_LM"))
    encoded = [tok(t + tok.eos_token, add_special_tokens=False)["input_ids"] for t in CORPUS]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    order = torch.randperm(len(encoded), generator=torch.Generator().manual_seed(seed)).tolist()
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        idx = [order[(step * batch_size + i) % len(order)] for i in range(batch_size)]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.tensor([encoded[i] + [pad] * (width - len(encoded[i])) for i in idx])
        mask = torch.tensor([[1] * len(encoded[i]) + [0] * (width - len(encoded[i])) for i in idx])
        labels = ids.masked_fill(mask == 0, -100)
        optimizer.zero_grad(set_to_none=True)
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimizer.step()
    return steps / (time.perf_counter() - started)


def ours(folder: str, steps: int, batch_size: int, seed: int, name: str) -> float:
    import genmagic

    result = genmagic.finetune(name, CORPUS, base=folder, steps=steps, batch_size=batch_size, seed=seed, eval_split=0,
                               samples=0, retrain=True)
    return float(result.metrics["steps_per_second"])


def case(label: str, folder: str, steps: int, rounds: int, batch_size: int) -> None:
    mine, theirs = [], []
    for r in range(rounds):
        theirs.append(plain(folder, steps, batch_size, r))
        mine.append(ours(folder, steps, batch_size, r, f"bench-{label}"))
    a, b = statistics.median(mine), statistics.median(theirs)
    print(f"{label}: %%finetune {a:.2f} steps/s, plain peft+torch {b:.2f} steps/s, ratio {b / a:.3f} "
          f"(target <= 1.10; batch {batch_size}, {steps} steps, {rounds} rounds)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("tiny", "big", "all"), default="tiny")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()
    os.environ.setdefault("GENMAGIC_HOME", tempfile.mkdtemp(prefix="genmagic-bench-"))
    os.environ.setdefault("GENMAGIC_CONFIG_DIR", os.path.join(os.environ["GENMAGIC_HOME"], "config"))
    if args.case in ("tiny", "all"):
        case("tiny", str(ROOT / "genmagic" / "models" / "tiny-text"), args.steps, args.rounds, args.batch_size)
    if args.case in ("big", "all"):
        folder = big_model(Path(tempfile.gettempdir()) / "genmagic-bench-finetune-100m")
        case("big", str(folder), max(3, args.steps // 10), args.rounds, args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
