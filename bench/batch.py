"""``%%generate --over`` against a loop of single ``%%generate`` cells, and served-model concurrency.

Three cases (ratios within one run; the outputs are checked equal):

- tiny: 64 prompts through ``%%generate --over`` vs 64 ``%%generate`` cells, greedy, ``--no-cache``, on
  the embedded ``tiny-text``, in a real IPython shell (target >= 4x).
- realistic: the same on a ~180M-parameter Llama with random weights, built in code and saved in
  bf16 (its own dtype), short outputs (``--max-new-tokens 16``).
- remote: 32 prompts to a local OpenAI-compatible server with ``--concurrency 8`` vs 1. Without
  ``--url`` the server is the tests' small endpoint (tests/fault_server.py) answering each request
  after ``--latency`` seconds (what a busy server or a network adds); with ``--url`` any server.

Usage: python bench/batch.py [--case tiny|realistic|remote|all] [--rows N] [--tokens N] [--threads N]
       [--real-dir DIR] [--url URL --model NAME] [--latency S]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORDS = ("fox", "star", "sea", "book", "notebook", "model", "prompt", "forest", "sky", "data", "token", "dog",
         "river", "code", "answer", "night")


def prompts(n: int) -> list[str]:
    """``n`` different prompts of different lengths (padding has something to do)."""
    out = []
    for i in range(n):
        words = [WORDS[(i * 7 + k) % len(WORDS)] for k in range(2 + i % 9)]
        out.append(f"Write about the {' and the '.join(words)}.")
    return out


def shell() -> Any:
    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "genmagic")
    return ip


def cell(ip: Any, text: str) -> Any:
    result = ip.run_cell(text)
    if result.error_in_exec is not None or result.error_before_exec is not None:
        raise SystemExit(f"cell failed: {result.error_in_exec or result.error_before_exec}\n{text[:200]}")
    return result.result


def over_vs_loop(ip: Any, model: str, rows: list[str], tokens: int, label: str, batch: str = "") -> float:
    ip.user_ns["bench_rows"] = rows
    flags = f"-m {model} --temperature 0 --max-new-tokens {tokens} --no-cache --safety off"
    cell(ip, f"%%generate {flags}\nwarm up")  # the model loaded once, for both
    t = time.perf_counter()
    batched = cell(ip, f"%%generate {flags} --over bench_rows {batch}\n{{item}}")
    over_s = time.perf_counter() - t
    t = time.perf_counter()
    looped = [cell(ip, f"%%generate {flags}\n{p}").text for p in rows]
    loop_s = time.perf_counter() - t
    same = sum(a == b for a, b in zip(batched, looped, strict=True))
    ratio = loop_s / over_s
    print(f"{label}: {len(rows)} rows x {tokens} tokens: --over {over_s:.2f} s ({len(rows) / over_s:.1f} rows/s), "
          f"loop {loop_s:.2f} s ({len(rows) / loop_s:.1f} rows/s); --over is {ratio:.1f}x faster; "
          f"{same}/{len(rows)} outputs identical")
    return ratio


def realistic_model(folder: Path) -> Path:
    """A ~180M-parameter Llama (random weights, bf16) with the embedded model's tokenizer."""
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ROOT / "genmagic" / "models" / "tiny-text")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=1024, intermediate_size=2816, num_hidden_layers=16,
                         num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=1024,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, dtype="bfloat16")
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    print(f"built a {sum(p.numel() for p in model.parameters()) / 1e6:.0f}M-parameter Llama in {folder}")
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def logit_drift(folder: Path, rows: list[str]) -> None:
    """How much left padding moves the next-token logits (batch of ``rows`` vs each row alone), in
    float32 and in the model's bf16: the largest difference, against the logits' spread."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from genmagic.backends.batching import left_pad

    tok = AutoTokenizer.from_pretrained(folder)
    ids = [tok(p)["input_ids"] for p in rows]
    for dtype in (torch.float32, torch.bfloat16):
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).eval()
        batch, mask = left_pad(ids, tok.eos_token_id, "cpu")
        with torch.inference_mode():
            position = (mask.cumsum(-1) - 1).clamp(min=0)
            batched = model(input_ids=batch, attention_mask=mask, position_ids=position).logits[:, -1].float()
            alone = torch.stack([model(torch.tensor([r])).logits[0, -1].float() for r in ids])
        drift = (batched - alone).abs().max().item()
        top2 = alone.topk(2).values
        print(f"padding drift {str(dtype).removeprefix('torch.')}: max |logit difference| {drift:.2e} "
              f"(logits' std {alone.std().item():.2f}; median top-1/top-2 gap {(top2[:, 0] - top2[:, 1]).median().item():.2e})")


def remote(rows: list[str], url: str | None, model: str, latency: float) -> float:
    from genmagic.engine import Engine
    from genmagic.options import TextOptions

    server_cm = None
    if url is None:
        sys.path.insert(0, str(ROOT / "tests"))
        from fault_server import fault_server

        server_cm = fault_server()
        server = server_cm.__enter__()
        for _ in range(2 * len(rows)):
            server.then("slow", latency)
        url = server.url
    try:
        engine = Engine(home=tempfile.mkdtemp())
        engine.registry.register("served", f"openai:{url}", settings={"model": model, "stream": False,
                                                                      "server": "llama.cpp"})
        engine.checks = []
        times = {}
        for concurrency in (1, 8):
            requests = [engine.request("text", p, TextOptions(temperature=0, max_new_tokens=16), model="served")
                        for p in rows]
            t = time.perf_counter()
            out = engine.run_many(requests, concurrency=concurrency, cache=False)
            times[concurrency] = time.perf_counter() - t
            assert all(r.ok for r in out), [r.error for r in out if not r.ok][:3]
        ratio = times[1] / times[8]
        print(f"remote: {len(rows)} rows, concurrency 1 {times[1]:.2f} s, concurrency 8 {times[8]:.2f} s: "
              f"{ratio:.1f}x faster")
        return ratio
    finally:
        if server_cm is not None:
            server_cm.__exit__(None, None, None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=("tiny", "realistic", "remote", "all"), default="all")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--real-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--real-dir", default=str(Path(tempfile.gettempdir()) / "genmagic-bench-llama-180m"))
    parser.add_argument("--url")
    parser.add_argument("--model", default="m1")
    parser.add_argument("--latency", type=float, default=0.2)
    args = parser.parse_args()
    os.environ.setdefault("GENMAGIC_HOME", tempfile.mkdtemp())
    import torch

    torch.set_num_threads(args.threads)
    rows = prompts(args.rows)
    if args.case in ("tiny", "realistic", "all"):
        ip = shell()
        if args.case in ("tiny", "all"):
            over_vs_loop(ip, "tiny-text", rows, args.tokens, "tiny-text")
        if args.case in ("realistic", "all"):
            folder = realistic_model(Path(args.real_dir))
            cell(ip, f"%genmagic register bench-llama {folder}")
            over_vs_loop(ip, "bench-llama", rows, args.real_tokens, "llama-180m bf16")
            logit_drift(folder, rows[:16])
    if args.case in ("remote", "all"):
        remote(rows[:32], args.url, args.model, args.latency)


if __name__ == "__main__":
    main()
