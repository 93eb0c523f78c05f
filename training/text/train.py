#!/usr/bin/env python3
"""Train tiny-text, a small LlamaForCausalLM, on CPU (bf16 autocast) and export it.

    python training/text/train.py --run main --max-steps 6000          # train (or continue: --resume)
    python training/text/train.py --run main --export-only             # export latest checkpoint

Checkpoints go to training/text/runs/<run>/ckpt.pt (every --ckpt-minutes) and, if
--export-to is given, each checkpoint is also exported there with
``save_pretrained(safe_serialization=True)`` together with the tokenizer, so a
usable model exists from the first checkpoint on.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_EXPORT = REPO / "genmagic" / "models" / "tiny-text"

# recommended sampling defaults, written to generation_config.json
GEN_DEFAULTS = dict(do_sample=True, temperature=0.7, top_p=0.9, top_k=0, repetition_penalty=1.15,
                    max_new_tokens=120)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------------------- data
def tokenize_split(tok, jsonl: Path, cache: Path) -> np.ndarray:
    if cache.exists():
        return np.load(cache, mmap_mode="r")
    texts = [json.loads(l)["text"] for l in open(jsonl, encoding="utf-8")]
    tok.model_max_length = 10 ** 9  # silence the length warning; we cut windows ourselves
    ids = []
    bos, eos = tok.bos_token_id, tok.eos_token_id
    B = 512
    for i in range(0, len(texts), B):
        batch = texts[i:i + B]
        enc = tok(batch, add_special_tokens=False)["input_ids"]
        for t, e in zip(batch, enc):
            if t.startswith("<s>"):          # chat conversation, already has <s> ... </s>
                ids.extend(e)
            else:
                ids.append(bos)
                ids.extend(e)
                ids.append(eos)
    arr = np.asarray(ids, dtype=np.uint16)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, arr)
    return arr


# --------------------------------------------------------------------------- model
def make_config(tok, args):
    from transformers import LlamaConfig
    return LlamaConfig(
        vocab_size=len(tok),
        hidden_size=args.hidden,
        intermediate_size=args.intermediate,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.ctx,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        attention_dropout=0.0,
        hidden_act="silu",
        initializer_range=0.02,
        use_cache=True,
    )


def progress(step, train_seconds, args):
    """Fraction of the run done: by steps, or by training time if --budget-minutes is set."""
    p = (step - args.warmup) / max(1, args.max_steps - args.warmup)
    if args.budget_minutes:
        p = max(p, train_seconds / (args.budget_minutes * 60))
    return min(1.0, p)


def lr_at(step, train_seconds, args):
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    p = progress(step, train_seconds, args)
    return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * p))


@torch.no_grad()
def evaluate(model, held: np.ndarray, ctx: int, n_windows: int, bf16: bool):
    model.eval()
    n = min(n_windows, (len(held) - 1) // ctx)
    losses = []
    for i in range(0, n, 8):
        xs = [torch.from_numpy(held[j * ctx:(j + 1) * ctx].astype(np.int64)) for j in range(i, min(n, i + 8))]
        x = torch.stack(xs)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=x, labels=x)
        losses.append(out.loss.float().item() * len(xs))
    model.train()
    return sum(losses) / n


# --------------------------------------------------------------------------- export
def export(model, tok, out: Path, info: dict | None = None):
    from transformers import GenerationConfig
    out.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / (out.name + ".tmp-export")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    m = model.float()
    m.config.dtype = "float32"
    m.config.use_cache = True
    m.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        **GEN_DEFAULTS)
    m.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    src_sp = HERE / "tokenizer" / "tokenizer.model"
    if src_sp.exists():
        shutil.copy(src_sp, tmp / "tokenizer.model")
    if info:
        (tmp / "training_info.json").write_text(json.dumps(info, indent=1) + "\n")
    # move files in place (keeps README.md and anything else already in `out`)
    for f in tmp.iterdir():
        os.chmod(f, 0o644)
        os.replace(f, out / f.name)
    tmp.rmdir()


def load_tokenizer():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(HERE / "tokenizer"))


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", default="main")
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--intermediate", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--kv-heads", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--max-steps", type=int, default=6000)
    ap.add_argument("--budget-minutes", type=float, default=0,
                    help="also end the cosine schedule (and the run) after this many minutes of training")
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-windows", type=int, default=96)
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--resume", action="store_true", help="continue from runs/<run>/ckpt.pt")
    ap.add_argument("--init", default=None,
                    help="warm start: the weights of this model folder (same architecture and tokenizer); "
                         "fresh optimizer and schedule")
    ap.add_argument("--export-to", default=None,
                    help=f"export on every checkpoint to this folder (e.g. {DEFAULT_EXPORT})")
    ap.add_argument("--export-only", action="store_true",
                    help="export runs/<run>/ckpt.pt to --export-to (default: the shipped folder) and exit")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()

    run_dir = HERE / "runs" / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "ckpt.pt"
    tok = load_tokenizer()

    if args.export_only:
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        saved = argparse.Namespace(**ck["args"])
        model = LlamaForCausalLM(make_config(tok, saved))
        model.load_state_dict(ck["model"])
        out = Path(args.export_to or DEFAULT_EXPORT)
        export(model, tok, out, ck.get("info"))
        log(f"exported step {ck['step']} to {out}")
        return

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)

    data = Path(args.data)
    t0 = time.time()
    cache = run_dir.parent / "cache" / data.name
    train = tokenize_split(tok, data / "train.jsonl", cache / "train_tokens.npy")
    held = tokenize_split(tok, data / "heldout.jsonl", cache / "heldout_tokens.npy")
    log(f"tokens: train {len(train):,} heldout {len(held):,} ({time.time() - t0:.0f}s)")

    config = make_config(tok, args)
    model = LlamaForCausalLM(config)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"params {n_params:,} ({n_params * 4 / 1e6:.1f} MB fp32)")

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)
    gen = torch.Generator().manual_seed(args.seed)
    step, train_seconds, history = 0, 0.0, []
    if args.resume and ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        gen.set_state(ck["gen"])
        step, train_seconds, history = ck["step"], ck["train_seconds"], ck["history"]
        torch.set_rng_state(ck["torch_rng"])
        args.init = args.init or ck.get("info", {}).get("init")  # the lineage survives a resume
        log(f"resumed from step {step} ({train_seconds / 60:.1f} min trained)")
    elif ckpt_path.exists():
        sys.exit(f"{ckpt_path} exists: pass --resume or choose another --run")
    elif args.init:
        model.load_state_dict(LlamaForCausalLM.from_pretrained(args.init).state_dict())
        log(f"warm start from {args.init}")

    def save(tag=""):
        info = {"step": step, "tokens_seen": step * args.batch * args.ctx,
                "train_minutes": round(train_seconds / 60, 1), "params": n_params,
                "history": history[-1:] if history else [], "init": args.init}
        ck = {"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
              "torch_rng": torch.get_rng_state(), "step": step, "train_seconds": train_seconds,
              "history": history, "args": vars(args), "info": info}
        torch.save(ck, str(ckpt_path) + ".tmp")
        os.replace(str(ckpt_path) + ".tmp", ckpt_path)
        (run_dir / "history.json").write_text(json.dumps(history, indent=0))
        msg = f"checkpoint step {step}{tag}"
        if args.export_to:
            export_model = LlamaForCausalLM(config)
            export_model.load_state_dict(model.state_dict())
            export(export_model, tok, Path(args.export_to), info)
            msg += f", exported to {args.export_to}"
        log(msg)

    bf16 = not args.no_bf16
    model.train()
    last_ckpt = time.time()
    tok_count, t_log = 0, time.time()
    N = len(train) - args.ctx - 1
    while step < args.max_steps and not (step > args.warmup and progress(step, train_seconds, args) >= 1.0):
        t_step = time.time()
        lr = lr_at(step, train_seconds, args)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, N, (args.batch,), generator=gen).tolist()
        x = torch.from_numpy(np.stack([train[s:s + args.ctx] for s in starts]).astype(np.int64))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = model(input_ids=x, labels=x)
        loss = out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        train_seconds += time.time() - t_step
        tok_count += x.numel()
        if step % 25 == 0:
            dt = time.time() - t_log
            log(f"step {step} loss {loss.item():.3f} lr {lr:.2e} gnorm {gnorm:.2f} "
                f"{tok_count / dt:,.0f} tok/s epoch {step * args.batch * args.ctx / len(train):.2f}")
            tok_count, t_log = 0, time.time()
        if step % args.eval_every == 0:
            hl = evaluate(model, held, args.ctx, args.eval_windows, bf16)
            history.append({"step": step, "train_loss": round(loss.item(), 4), "heldout_loss": round(hl, 4),
                            "heldout_ppl": round(math.exp(hl), 2), "train_minutes": round(train_seconds / 60, 1)})
            log(f"EVAL step {step} heldout loss {hl:.4f} ppl {math.exp(hl):.2f}")
        if time.time() - last_ckpt > args.ckpt_minutes * 60:
            save()
            last_ckpt = time.time()
    hl = evaluate(model, held, args.ctx, args.eval_windows, bf16)
    history.append({"step": step, "train_loss": round(loss.item(), 4), "heldout_loss": round(hl, 4),
                    "heldout_ppl": round(math.exp(hl), 2), "train_minutes": round(train_seconds / 60, 1)})
    log(f"EVAL step {step} heldout loss {hl:.4f} ppl {math.exp(hl):.2f}")
    save(" (final)")
    log("done")


if __name__ == "__main__":
    main()
