"""%%generate vs a direct `model.generate` on the same model, same seed, same tokens.

Interleaved runs in one process; reports median wall time, the ratio (target <= 1.05),
time to first token for both, and the cached re-run vs the first run (target >= 100x).
Usage: python bench/generate_overhead.py [--model DIR] [--tokens N] [--rounds N]
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
    parser.add_argument("--model", default=str(ROOT / "genmagic" / "models" / "tiny-text"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

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
    cell = f"%%generate -m {model_dir} --seed 1 --max-new-tokens {args.tokens} {opts} --no-cache\n{prompt}"

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


if __name__ == "__main__":
    main()
