"""%%generate vs a direct `model.generate` on the same model, same seed, same tokens.

Two cases:

- tiny (the embedded model): interleaved runs in one process; reports median wall time, the
  ratio (target <= 1.05), time to first token for both, and the cached re-run vs the first
  run (target >= 100x).
- realistic: a ~370M-parameter Llama with random weights, built in code and saved in bf16
  (its own dtype). `genmagic.generate` and raw `from_pretrained` + `generate` each run in a
  fresh subprocess (so peak RSS means something), alternating; reports load time, time to
  first token, tokens/s, total time and peak RSS, and their ratios (targets: <= 1.05x time,
  <= 1.1x peak memory).

Usage: python bench/generate_overhead.py [--case tiny|realistic|all] [--model DIR] [--tokens N]
       [--rounds N] [--threads N] [--real-tokens N] [--real-rounds N] [--real-dir DIR]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class FirstWrite(io.StringIO):
    """Stands in for stdout: records when the first streamed token is written."""

    def __init__(self) -> None:
        super().__init__()
        self.first: float | None = None

    def write(self, s: str) -> int:
        if self.first is None and s.strip():
            self.first = time.perf_counter()
        return super().write(s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--case", choices=("tiny", "realistic", "all"), default="all")
    parser.add_argument("--model", default=str(ROOT / "genmagic" / "models" / "tiny-text"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--safety", default="off", choices=("off", "warn", "standard", "strict"),
                        help="safety level of the genmagic runs (default off: the run layer's own cost; "
                        "bench/safety_overhead.py measures the checks)")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--real-tokens", type=int, default=32)
    parser.add_argument("--real-rounds", type=int, default=3)
    parser.add_argument("--real-threads", type=int, default=2)
    parser.add_argument("--real-dir", default=str(Path(tempfile.gettempdir()) / "genmagic-bench-llama-370m"))
    parser.add_argument("--child", choices=("raw", "genmagic"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.case in ("tiny", "all"):
        tiny_case(args)
    if args.case in ("realistic", "all"):
        realistic_case(args)


def tiny_case(args: argparse.Namespace) -> None:
    import os

    home = tempfile.mkdtemp(prefix="genmagic-bench-")
    os.environ["GENMAGIC_HOME"] = home
    import torch

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    if not (model_dir / "config.json").exists():
        from genmagic.testing import build_tiny_text_model

        model_dir = build_tiny_text_model(Path(home) / "tiny", context=256)
        print(f"(embedded model missing: using a tiny GPT-2 built in code at {model_dir})")

    from IPython.testing.globalipapp import start_ipython
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    ip = start_ipython()
    ip.run_line_magic("load_ext", "genmagic")
    prompt = "And it came to pass"
    opts = "--temperature 0.8 --top-p 0.95 --top-k 50 --repetition-penalty 1.1"
    cell = (f"%%generate -m {model_dir} --seed 1 --max-new-tokens {args.tokens} {opts} --no-cache "
            f"--safety {args.safety}\n{prompt}")

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = tok(prompt, return_tensors="pt")

    class TTFT:
        def __init__(self) -> None:
            self.calls = 0
            self.first: float | None = None

        def put(self, value: Any) -> None:
            self.calls += 1
            if self.calls == 2 and self.first is None:
                self.first = time.perf_counter()

        def end(self) -> None:
            pass

    def direct() -> tuple[float, float, int]:
        streamer = TTFT()
        config = GenerationConfig(max_new_tokens=args.tokens, do_sample=True, temperature=0.8, top_p=0.95, top_k=50,
                                  repetition_penalty=1.1, eos_token_id=model.generation_config.eos_token_id,
                                  pad_token_id=tok.pad_token_id or model.generation_config.eos_token_id)
        t0 = time.perf_counter()
        torch.manual_seed(1)
        with torch.inference_mode():
            out = model.generate(**inputs, generation_config=config, streamer=streamer)
        t1 = time.perf_counter()
        return t1 - t0, (streamer.first or t1) - t0, out.shape[1] - inputs["input_ids"].shape[1]

    def magic(c: str = cell) -> tuple[float, float, Any]:
        real, fake = sys.stdout, FirstWrite()
        sys.stdout = fake
        try:
            t0 = time.perf_counter()
            res = ip.run_cell(c)
            t1 = time.perf_counter()
        finally:
            sys.stdout = real
        res.raise_error()
        return t1 - t0, (fake.first or t1) - t0, res.result

    first_load = magic()  # includes loading the model
    direct()
    d_times, d_ttft, m_times, m_ttft = [], [], [], []
    for _ in range(args.rounds):
        t, f, n_direct = direct()
        d_times.append(t)
        d_ttft.append(f)
        t, f, result = magic()
        m_times.append(t)
        m_ttft.append(f)
    assert result.tokens[0] == n_direct, (result.tokens, n_direct)

    cached_cell = cell.replace(" --no-cache", "")
    magic(cached_cell)  # records the entry
    c_times = [magic(cached_cell)[0] for _ in range(args.rounds)]
    assert magic(cached_cell)[2].cached

    dm, mm, cm = statistics.median(d_times), statistics.median(m_times), statistics.median(c_times)
    print(f"model: {model_dir}  tokens: {n_direct}  rounds: {args.rounds}  threads: {args.threads}")
    print(f"direct model.generate:     {dm * 1000:8.1f} ms   first token {statistics.median(d_ttft) * 1000:6.1f} ms")
    print(f"%%generate --no-cache:     {mm * 1000:8.1f} ms   first token {statistics.median(m_ttft) * 1000:6.1f} ms")
    print(f"overhead ratio:            {mm / dm:8.3f}   (target <= 1.05)")
    print(f"first run incl. load:      {first_load[0] * 1000:8.1f} ms")
    print(f"cached re-run:             {cm * 1000:8.2f} ms   -> {mm / cm:,.0f}x faster than a fresh run (target >= 100x)")



# --------------------------------------------------------------------------- realistic case

PROMPT = "And it came to pass"


def build_realistic_model(folder: Path) -> Path:
    """A Llama with ~370M parameters and random weights, saved in bfloat16 (its own dtype),
    with the embedded model's tokenizer (its chat template dropped: plain continuation)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (folder / "config.json").exists():
        return folder
    tok = AutoTokenizer.from_pretrained(ROOT / "genmagic" / "models" / "tiny-text")
    tok.chat_template = None
    config = LlamaConfig(
        vocab_size=len(tok), hidden_size=1280, intermediate_size=3456, num_hidden_layers=18,
        num_attention_heads=20, num_key_value_heads=20, max_position_embeddings=2048,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model: Any = LlamaForCausalLM(config)
    model = model.to(torch.bfloat16)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    (folder / "chat_template.jinja").unlink(missing_ok=True)
    return folder


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's peak
    across exec on Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One measured run in this fresh process; prints a JSON line."""
    import json
    import os

    import torch
    import transformers  # noqa: F401  (both sides pay for the same imports)

    torch.set_num_threads(args.real_threads)
    folder = args.real_dir
    base_rss = peak_rss_mb()
    if args.child == "raw":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        class Streamer:
            first: float | None = None
            calls = 0

            def put(self, value: Any) -> None:
                self.calls += 1
                if self.calls == 2:
                    self.first = time.perf_counter()

            def end(self) -> None:
                pass

        t0 = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype="auto").eval()
        t_load = time.perf_counter()
        ids = tok(PROMPT, return_tensors="pt")
        streamer = Streamer()
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=args.real_tokens, do_sample=False, repetition_penalty=1.0,
                                 streamer=streamer, pad_token_id=tok.eos_token_id)
        t1 = time.perf_counter()
        new = out[0, ids["input_ids"].shape[1]:]
        generate_s = t1 - t_load
        row = {"load": t_load - t0, "ttft": (streamer.first or t1) - t_load, "generate": generate_s,
               "tokens": int(new.shape[0]), "text": tok.decode(new, skip_special_tokens=True),
               "dtype": str(model.dtype).removeprefix("torch.")}
    else:
        os.environ.setdefault("GENMAGIC_HOME", tempfile.mkdtemp(prefix="genmagic-bench-"))
        import genmagic

        t0 = time.perf_counter()
        result = genmagic.generate(PROMPT, model=folder, temperature=0, repetition_penalty=1.0,
                                   max_new_tokens=args.real_tokens, cache=False, safety=args.safety)
        t1 = time.perf_counter()
        row = {"load": result.timings["load"], "ttft": result.timings["first_token"],
               "generate": result.timings["generate"], "tokens": result.tokens[0], "text": result.text,
               "dtype": result.info["dtype"]}
    row.update(total=t1 - t0, peak_rss=peak_rss_mb(), import_rss=base_rss)
    print(json.dumps(row))


def realistic_case(args: argparse.Namespace) -> None:
    import json
    import os
    import subprocess

    folder = build_realistic_model(Path(args.real_dir))
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors")) / 2**20
    env = {**os.environ, "OMP_NUM_THREADS": str(args.real_threads), "PYTHONPATH": str(ROOT)}
    runs: dict[str, list[dict[str, Any]]] = {"raw": [], "genmagic": []}
    for _ in range(args.real_rounds):
        for side in ("raw", "genmagic"):
            out = subprocess.run(
                [sys.executable, __file__, "--child", side, "--real-dir", str(folder), "--real-tokens",
                 str(args.real_tokens), "--real-threads", str(args.real_threads), "--safety", args.safety],
                env=env, capture_output=True, text=True, check=True,
            )
            runs[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    raw, ours = runs["raw"], runs["genmagic"]
    assert raw[0]["text"] == ours[0]["text"], (raw[0]["text"], ours[0]["text"])

    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"\nrealistic: {folder} ({size:.0f} MB of bf16 weights), {raw[0]['tokens']} greedy tokens, "
          f"{args.real_threads} threads, {args.real_rounds} fresh processes per side (medians)")
    print(f"{'':28}{'raw transformers':>18}{'genmagic.generate':>19}{'ratio':>8}{'ratio of minima':>17}")
    for key, label, unit in (
        ("load", "load", "s"), ("ttft", "time to first token", "s"), ("generate", "generate", "s"),
        ("total", "load + generate", "s"), ("peak_rss", "peak RSS", "MB"),
    ):
        a, b = med(raw, key), med(ours, key)
        low = min(r[key] for r in ours) / min(r[key] for r in raw)
        print(f"{label:28}{a:>15.2f} {unit:2}{b:>16.2f} {unit:2}{b / a:>8.3f}{low:>17.3f}")
    tps_raw = raw[0]["tokens"] / med(raw, "generate")
    tps_ours = ours[0]["tokens"] / med(ours, "generate")
    print(f"{'tokens/s':28}{tps_raw:>18.2f}{tps_ours:>19.2f}{tps_ours / tps_raw:>8.3f}")
    print(f"{'peak RSS above imports':28}{med(raw, 'peak_rss') - med(raw, 'import_rss'):>15.0f} MB"
          f"{med(ours, 'peak_rss') - med(ours, 'import_rss'):>16.0f} MB")
    for key in ("load", "generate"):
        print(f"{key} per run (s): raw {[round(r[key], 2) for r in raw]}, genmagic {[round(r[key], 2) for r in ours]}")
    print(f"dtype: raw {raw[0]['dtype']}, genmagic {ours[0]['dtype']}; same text: yes; "
          "targets: time <= 1.05x, peak memory <= 1.1x")


if __name__ == "__main__":
    main()
