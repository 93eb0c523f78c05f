"""A short GPU check: text and image generation on CUDA against the same runs on the CPU.

Models: a tiny GPT-2 and a tiny Stable Diffusion built in code, and the shipped ``tiny-text``
and ``tiny-image``. Text: greedy decoding must give the same tokens on CUDA (in the model's
own dtype) as on the CPU. Images: float32 on CUDA must be close to the CPU's pixels (mean
absolute difference within ``--tolerance`` on 0-255); float16 on CUDA is reported. Also
checks that unloading frees the GPU memory the models took.

Prints "no CUDA device: skipped" and exits 0 where there is no CUDA device.
Usage: python bench/gpu_smoke.py [--tokens N] [--steps N] [--tolerance X]
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


def mean_abs_diff(a: Any, b: Any) -> float:
    import numpy as np

    return float(np.abs(np.asarray(a, dtype=np.float32) - np.asarray(b, dtype=np.float32)).mean())


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=24)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--tolerance", type=float, default=2.0, help="mean |CPU - CUDA float32| per pixel, 0-255")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA device: skipped")
        return 0
    home = tempfile.mkdtemp(prefix="genmagic-gpu-smoke-")
    os.environ["GENMAGIC_HOME"] = home
    import genmagic
    from genmagic.engine import default_engine
    from genmagic.testing import build_tiny_image_pipeline, build_tiny_text_model

    print(f"device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    failures: list[str] = []
    texts = {
        "tiny GPT-2 (built here)": str(build_tiny_text_model(Path(home) / "gpt2", context=128)),
        "tiny-text (shipped)": str(ROOT / "genmagic" / "models" / "tiny-text"),
    }
    for label, model in texts.items():
        runs = {}
        for device in ("cpu", "cuda"):
            t0 = time.perf_counter()
            runs[device] = genmagic.generate("Once upon a time", model=model, device=device, temperature=0,
                                             repetition_penalty=1.0, max_new_tokens=args.tokens, cache=False)
            runs[device].timings["wall"] = time.perf_counter() - t0
        cpu, cuda = runs["cpu"], runs["cuda"]
        same = cpu.text == cuda.text and cpu.tokens == cuda.tokens
        print(f"text  {label:26} cuda {cuda.info['dtype']:8} same greedy tokens: {'yes' if same else 'NO'}  "
              f"tokens/s cpu {cpu.timings['tokens_per_s']:.0f} cuda {cuda.timings['tokens_per_s']:.0f}  "
              f"first token cuda {cuda.timings['first_token'] * 1000:.1f} ms")
        if not same:
            failures.append(f"text {label}: CPU {cpu.text!r} != CUDA {cuda.text!r}")

    images = {
        "tiny SD (built here)": str(build_tiny_image_pipeline(Path(home) / "sd")),
        "tiny-image (shipped)": str(ROOT / "genmagic" / "models" / "tiny-image"),
    }
    for label, model in images.items():
        common: dict[str, Any] = {"model": model, "steps": args.steps, "seed": 1, "cache": False}
        prompt = "a red circle on a blue background"
        pictures = [genmagic.imagine(prompt, device="cpu", **common),
                    genmagic.imagine(prompt, device="cuda", dtype="float32", **common),
                    genmagic.imagine(prompt, device="cuda", **common)]
        d32, d16 = (mean_abs_diff(pictures[0].images[0], other.images[0]) for other in pictures[1:])
        cpu_image, f16 = pictures[0], pictures[2]
        ok = d32 <= args.tolerance
        print(f"image {label:26} |cpu - cuda float32| {d32:.2f}  |cpu - cuda {f16.info['dtype']}| {d16:.2f}  "
              f"(tolerance {args.tolerance}) {'ok' if ok else 'TOO FAR'}  "
              f"steps/s cpu {cpu_image.timings['steps_per_s']:.1f} cuda {f16.timings['steps_per_s']:.1f}")
        if not ok:
            failures.append(f"image {label}: CUDA float32 differs from CPU by {d32:.2f} per pixel")

    held = torch.cuda.memory_allocated()
    default_engine().models.unload()
    freed = torch.cuda.memory_allocated()
    print(f"GPU memory allocated: {held / 2**20:.1f} MB with the models loaded, {freed / 2**20:.1f} MB after unload")
    if freed >= held and held > 0:
        failures.append("unloading freed no GPU memory")
    for failure in failures:
        print("FAIL:", failure)
    print("gpu smoke:", "FAILED" if failures else "passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
