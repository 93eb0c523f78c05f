"""%%imagine vs calling the same diffusers pipeline directly, same seed, same steps.

Interleaved runs in one process, each 1 image: a direct ``pipe(...)`` call, ``%%imagine
--no-cache`` with the notebook's live view (progress bar + a preview every
``--preview`` steps, rendered as in a kernel), and ``%%imagine --preview 0``. Reports the
median wall times, the overhead ratio including the live preview (target <= 1.05), the
cost of the preview per step, and checks that the magic's pixels equal the direct call's.

Usage: python bench/imagine_overhead.py [--model DIR] [--steps N] [--rounds N] [--preview N]
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "genmagic" / "models" / "tiny-image"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--preview", type=int, default=5, help="preview every N steps in the magic runs")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompt", default="a red circle on a blue background")
    parser.add_argument("--safety", default="off", choices=("off", "warn", "standard", "strict"),
                        help="safety level of the magic runs (default off: the run layer's own cost)")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="genmagic-bench-")
    os.environ["GENMAGIC_HOME"] = home
    import torch

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    if not (model_dir / "model_index.json").exists():
        from genmagic.testing import build_tiny_image_pipeline

        model_dir = build_tiny_image_pipeline(Path(home) / "tiny-sd")
        print(f"(embedded model missing: using a tiny Stable Diffusion built in code at {model_dir})")

    from diffusers import DiffusionPipeline
    from IPython.testing.globalipapp import start_ipython

    import genmagic.display
    from genmagic.sinks import CellImageSink

    genmagic.display.in_kernel = lambda: True  # render the live view (bar + previews) as in a notebook
    display_s = [0.0]
    update = CellImageSink._update

    def timed_update(self: Any, note: str = "") -> None:
        t0 = time.perf_counter()
        update(self, note)
        display_s[0] += time.perf_counter() - t0

    CellImageSink._update = timed_update  # type: ignore[method-assign]

    ip = start_ipython()
    ip.run_line_magic("load_ext", "genmagic")
    base = f"%%imagine -m {model_dir} --seed 1 --steps {args.steps} --no-cache --safety {args.safety}"
    cell = f"{base} --preview {args.preview}\n{args.prompt}"
    bare = f"{base} --preview 0\n{args.prompt}"

    pipe: Any = DiffusionPipeline.from_pretrained(model_dir, dtype=torch.float32, use_safetensors=True)
    pipe.set_progress_bar_config(disable=True)

    def direct() -> tuple[float, Any]:
        # inference_mode as the backend uses it, so the ratio measures genmagic's own overhead
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = pipe(args.prompt, num_inference_steps=args.steps, guidance_scale=7.5,
                       generator=torch.Generator("cpu").manual_seed(1))
        return time.perf_counter() - t0, out.images[0]

    def magic(c: str) -> tuple[float, Any]:
        real = sys.stdout
        sys.stdout = io.StringIO()  # the terminal shell prints the display updates' text
        try:
            t0 = time.perf_counter()
            res = ip.run_cell(c)
            t1 = time.perf_counter()
        finally:
            sys.stdout = real
        res.raise_error()
        return t1 - t0, res.result

    t_first, _ = magic(cell)  # loads the model
    direct()
    d_times, m_times, b_times, previews, displays, steps = [], [], [], [], [], []
    for _ in range(args.rounds):
        t, image = direct()
        d_times.append(t)
        display_s[0] = 0.0
        t, result = magic(cell)
        m_times.append(t)
        displays.append(display_s[0])
        previews.append(result.timings["preview"])
        steps.append(result.timings["steps"])
        t, _ = magic(bare)
        b_times.append(t)
    assert result.images[0].tobytes() == image.tobytes(), "the magic's pixels differ from the direct call's"

    dm, mm, bm = statistics.median(d_times), statistics.median(m_times), statistics.median(b_times)
    shown = args.steps // args.preview if args.preview else 0
    compute = statistics.median(previews) / max(1, shown)
    per_step = (statistics.median(previews) + statistics.median(displays)) / args.steps
    print(f"model: {model_dir}  steps: {args.steps}  rounds: {args.rounds}  threads: {args.threads}  "
          f"preview every {args.preview} steps ({shown} per image)")
    print(f"direct pipe(...):                  {dm * 1000:8.1f} ms")
    print(f"%%imagine --no-cache (live view):  {mm * 1000:8.1f} ms")
    print(f"%%imagine --no-cache --preview 0:  {bm * 1000:8.1f} ms")
    print(f"overhead ratio incl. preview:      {mm / dm:8.3f}   (target <= 1.05; best-of: {min(m_times) / min(d_times):.3f})")
    print(f"overhead ratio without preview:    {bm / dm:8.3f}   (best-of: {min(b_times) / min(d_times):.3f})")
    print(f"live view cost per step:           {per_step * 1000:8.2f} ms  (previews + display updates, "
          f"{per_step / (dm / args.steps):.1%} of a step)")
    print(f"one preview (latent -> RGB):       {compute * 1000:8.2f} ms")
    print(f"display updates per image:         {statistics.median(displays) * 1000:8.2f} ms")
    print(f"same pixels as the direct call:    yes ({int(statistics.median(steps))} steps)")
    print(f"first run incl. load:              {t_first * 1000:8.1f} ms")


if __name__ == "__main__":
    main()
