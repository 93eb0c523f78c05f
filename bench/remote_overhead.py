"""The remote backend's overhead: ``%%generate -m served`` vs the bare ``openai`` client on the
same llama.cpp server, same prompt, greedy, same number of tokens, interleaved rounds.

Reports the median latency per call of each (and their ratio, target <= 1.05) and the time to
first token: through the magic (from the start of the cell to the first streamed text written
to the cell) and through the bare client (from the call to the first streamed chunk with text).

Without ``--url`` it starts llama.cpp's server on the embedded tiny-text (GGUF made as the
tests make it; ``make engine`` installs the server) and stops it at the end.

Usage: python bench/remote_overhead.py [--url URL --model NAME] [--tokens N] [--rounds N]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROMPT = "Tell me a story about a dragon"


class FirstWrite(io.StringIO):
    """Stands in for stdout: records when the first streamed text is written."""

    def __init__(self) -> None:
        super().__init__()
        self.first: float | None = None

    def write(self, s: str) -> int:
        if self.first is None and s.strip():
            self.first = time.perf_counter()
        return super().write(s)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", help="an OpenAI-compatible server (default: start llama.cpp's on tiny-text)")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    os.environ["GENMAGIC_HOME"] = tempfile.mkdtemp(prefix="genmagic-bench-")
    os.environ["GENMAGIC_CONFIG_DIR"] = tempfile.mkdtemp(prefix="genmagic-bench-config-")
    server = None
    if not args.url:
        sys.path.insert(0, str(ROOT / "tests"))
        from conftest_engines import EngineServer, make_tiny_gguf

        server = EngineServer(make_tiny_gguf(), Path(tempfile.mkdtemp()) / "server.log").start()
        args.url = server.url
    try:
        measure(args)
    finally:
        if server is not None:
            server.stop()


def measure(args: argparse.Namespace) -> None:
    import openai
    from IPython.testing.globalipapp import start_ipython

    client = openai.OpenAI(base_url=args.url, api_key="none")
    sampling = {"max_tokens": args.tokens, "temperature": 0.0, "top_p": 0.95, "seed": 1,
                "extra_body": {"top_k": 0, "repeat_penalty": 1.0}}

    def bare() -> tuple[float, float, str]:
        t0 = time.perf_counter()
        first, text = None, ""
        stream = client.chat.completions.create(model=args.model, messages=[{"role": "user", "content": PROMPT}],
                                                stream=True, **sampling)
        for chunk in stream:
            delta = chunk.choices[0].delta.content if chunk.choices else None
            if delta:
                first = first or time.perf_counter()
                text += delta
        t1 = time.perf_counter()
        return t1 - t0, (first or t1) - t0, text

    ip = start_ipython()
    ip.run_line_magic("load_ext", "genmagic")
    ip.run_line_magic("genmagic", f"register served openai:{args.url} --model {args.model} --server llama.cpp")
    cell = (f"%%generate -m served --temperature 0 --top-k 0 --repetition-penalty 1 --seed 1 "
            f"--max-new-tokens {args.tokens} --no-cache\n{PROMPT}")

    def magic() -> tuple[float, float, Any]:
        real, fake = sys.stdout, FirstWrite()
        sys.stdout = fake
        try:
            t0 = time.perf_counter()
            res = ip.run_cell(cell)
            t1 = time.perf_counter()
        finally:
            sys.stdout = real
        res.raise_error()
        return t1 - t0, (fake.first or t1) - t0, res.result

    first_run = magic()  # opens the client and asks the server for the model's identity
    bare()
    b_times, b_ttft, m_times, m_ttft = [], [], [], []
    for _ in range(args.rounds):
        t, f, text = bare()
        b_times.append(t)
        b_ttft.append(f)
        t, f, result = magic()
        m_times.append(t)
        m_ttft.append(f)
    assert result.text == text, (result.text, text)  # the same request, the same answer

    bm, mm = statistics.median(b_times), statistics.median(m_times)
    print(f"server: {args.url}  model: {args.model}  tokens: {result.tokens[0]}  rounds: {args.rounds}")
    print(f"bare openai client (stream):  {bm * 1000:8.1f} ms   first token {statistics.median(b_ttft) * 1000:6.1f} ms")
    print(f"%%generate -m served:         {mm * 1000:8.1f} ms   first token {statistics.median(m_ttft) * 1000:6.1f} ms"
          " (from the start of the cell)")
    print(f"overhead ratio:               {mm / bm:8.3f}   (target <= 1.05)")
    print(f"first run (client + identity): {first_run[0] * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
