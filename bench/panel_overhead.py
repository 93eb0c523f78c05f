"""A control panel's re-run (Generate → worker thread → run layer → the panel's output) vs the
same ``%%generate`` run in a cell, in one IPython process.

Both draw the same live view (the text streamed as HTML, as in a notebook: the bench says it runs in a
kernel, so the magic's view is a display updated in place and the panel's is its Output widget).
Each round runs both on the same prompt, seed and options (a new prompt and seed per round, and
``--no-cache``, so nothing is served from history), alternating which goes first; the panel's time
is from the click to ``wait()`` returning (thread start and join included). Reports the medians
and their ratio, and the median of each round's ratio (target <= 1.05; on a busy machine the
rounds' ratio is the steadier figure).

Usage: python bench/panel_overhead.py [--model DIR] [--tokens N] [--rounds N] [--safety LEVEL]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "genmagic" / "models" / "tiny-text"))
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--safety", default="off", choices=("off", "warn", "standard", "strict"))
    args = parser.parse_args()
    os.environ["GENMAGIC_HOME"] = tempfile.mkdtemp(prefix="genmagic-bench-")
    sys.path.insert(0, str(ROOT))
    from IPython.testing.globalipapp import start_ipython

    from genmagic import display
    from genmagic.panel import Panel

    display.in_kernel = lambda: True  # the magic streams into a live HTML view, as the panel does
    ip = start_ipython()
    ip.run_line_magic("load_ext", "genmagic")
    line = f"-m {args.model} --no-cache --safety {args.safety} --max-new-tokens {args.tokens} --temperature 0.8"
    panel = Panel("text", model=args.model,
                  options={"max_new_tokens": args.tokens, "temperature": 0.8, "seed": 0})
    panel.controls["cache"].set(False)
    panel.controls["safety"].set(args.safety)

    def magic(prompt: str, seed: int) -> float:
        started = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            result = ip.run_cell(f"%%generate {line} --seed {seed}\n{prompt}")
        elapsed = time.perf_counter() - started
        assert result.success and result.result.status == "ok", result.error_in_exec
        return elapsed

    def panel_run(prompt: str, seed: int) -> float:
        panel.prompt.value, panel.seed.value = prompt, str(seed)
        started = time.perf_counter()
        panel.generate_button.click()
        result = panel.wait()
        elapsed = time.perf_counter() - started
        assert result is not None and result.status == "ok" and result.request.options.seed == seed, panel.status_text
        return elapsed

    magic("warm up", 1)  # the model's load is not what is measured
    panel_run("warm up", 1)
    times: dict[str, list[float]] = {"magic": [], "panel": []}
    for i in range(args.rounds):
        prompt, seed = f"Story {i}: once upon a time", 1000 + i
        order = [("magic", magic), ("panel", panel_run)]
        for name, run in order if i % 2 == 0 else reversed(order):
            times[name].append(run(prompt, seed))
    magic_s, panel_s = statistics.median(times["magic"]), statistics.median(times["panel"])
    print(f"tiny-text, {args.tokens} tokens, {args.rounds} rounds, safety {args.safety}")
    print(f"%%generate --no-cache: median {magic_s * 1000:.1f} ms")
    print(f"panel Generate:        median {panel_s * 1000:.1f} ms")
    paired = statistics.median(p / m for p, m in zip(times["panel"], times["magic"]))
    print(f"ratio panel / magic:   {panel_s / magic_s:.3f} of the medians, {paired:.3f} median of the rounds' "
          "ratios (target <= 1.05)")


if __name__ == "__main__":
    main()
