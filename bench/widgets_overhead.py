"""A 3×3 image comparison grid against nine separate runs of the same cells.

Interleaved rounds in one process on the embedded ``tiny-image`` (``--no-cache``, safety off:
the run layer's own cost): ``%%imagine --compare seed=1,2,3 --compare steps=S1,S2,S3`` against the
nine ``%%imagine --seed X --steps Y`` runs it stands for. Reports the median wall times and
the ratio grid / nine runs (it should be below 1 once cells sharing a model and size run as
one batch; while cells run one by one it is about 1 plus the grid's rendering), and checks
that every cell's pixels equal its separate run's (within the batched UNet's rounding: 2 levels).

Usage: python bench/widgets_overhead.py [--model DIR] [--steps 4,8,12] [--rounds N]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=str(ROOT / "genmagic" / "models" / "tiny-image"))
    parser.add_argument("--steps", default="4,8,12", help="the three step counts (the grid's rows)")
    parser.add_argument("--seeds", default="1,2,3", help="the three seeds (the grid's columns)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--prompt", default="a red circle on a blue background")
    args = parser.parse_args()

    os.environ["GENMAGIC_HOME"] = tempfile.mkdtemp(prefix="genmagic-bench-")
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    model_dir = Path(args.model)
    if not (model_dir / "model_index.json").exists():
        from genmagic.testing import build_tiny_image_pipeline

        model_dir = build_tiny_image_pipeline(Path(os.environ["GENMAGIC_HOME"]) / "tiny-sd")
        print(f"(embedded model missing: using a tiny Stable Diffusion built in code at {model_dir})")

    from IPython.testing.globalipapp import start_ipython

    ip = start_ipython()
    ip.run_line_magic("load_ext", "genmagic")
    base = f"-m {model_dir} --no-cache --safety off --no-stream"  # neither shows a live view
    seeds, steps = args.seeds.split(","), args.steps.split(",")
    grid_cell = f"%%imagine {base} --compare seed={args.seeds} --compare steps={args.steps}\n{args.prompt}"
    singles = [f"%%imagine {base} --seed {s} --steps {n}\n{args.prompt}" for n in steps for s in seeds]

    def run(cell: str) -> Any:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = ip.run_cell(cell)  # rendered as a cell's output, not printed
        if not result.success:
            sys.exit(f"failed: {cell.splitlines()[0]}: {result.error_in_exec or result.error_before_exec}")
        result.result._repr_mimebundle_()  # what a notebook would get: the HTML grid / the image grid
        return result.result

    def timed(cells: list[str]) -> tuple[float, list[Any]]:
        t0 = time.perf_counter()
        out = [run(c) for c in cells]
        return time.perf_counter() - t0, out

    timed([grid_cell])  # load the model, warm up
    timed(singles[:1])
    grid_s: list[float] = []
    nine_s: list[float] = []
    for _ in range(args.rounds):
        g, (grid,) = timed([grid_cell])
        n, results = timed(singles)
        grid_s.append(g)
        nine_s.append(n)
    # cells sharing the steps run as one batch: the batched UNet rounds differently, by a pixel level or two
    drift = max(int(np.abs(np.asarray(cell.image, dtype=np.int16) - np.asarray(single.image, dtype=np.int16)).max())
                for cell, single in zip(grid.cells, results, strict=True))
    same = drift <= 2
    g, n = statistics.median(grid_s), statistics.median(nine_s)
    print(f"3x3 image comparison grid vs nine separate runs ({args.rounds} interleaved rounds, steps {args.steps}, "
          f"{args.threads} thread(s))")
    print(f"  grid (--compare, rendered)  median {g * 1000:8.0f} ms")
    print(f"  nine separate %%imagine     median {n * 1000:8.0f} ms")
    print(f"  ratio grid / nine runs      {g / n:.3f} (below 1 where cells run as one batch)")
    print(f"  every cell's pixels vs its separate run's: at most {drift} levels apart (8-bit; batch rounding "
          f"allows 2): {'ok' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
