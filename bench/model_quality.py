"""Quality benchmark for the built-in models.

    python bench/model_quality.py [--model genmagic/models/tiny-image] [--steps 25]
                                  [--guidance 5] [--grid PATH] [--json PATH]

tiny-image: generates images with stock ``diffusers.StableDiffusionPipeline`` for
a fixed, seeded set of evaluation prompts written with *held-out* phrasings
(never used as training captions) and scores them with the pixel-based checker
in ``training/image/checker.py``: shape colour, shape, background colour and
position accuracy.  A nearest-neighbour-upscaled sample grid is written next to
the model (``samples.png``) unless --grid says otherwise.

tiny-text: if ``training/text/evaluate.py`` and ``genmagic/models/tiny-text``
exist, reports ``heldout_perplexity(model_dir)``; otherwise says it is skipped. Then the
figures of ``bench/text_quality.py`` (answers with the magic's defaults on its prompt set,
seeds ``--seeds``): share with >= 8 words, median story length, distinct 4-grams,
attribution endings, definitions naming their word, code-likeness, load time, size.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(REPO, "training", "image"))

from checker import analyze, score  # noqa: E402
from shapes import COLOR_NAMES, POSITION_NAMES, SHAPES, article  # noqa: E402

# Evaluation phrasings: none of these templates is used for training (see
# HELDOUT_TEMPLATES_FULL / POS_PHRASES_HELDOUT in training/image/shapes.py; a
# few are written only here).  Fields: obj, pos, bg.
EVAL_TEMPLATES = [
    "there is {obj} {pos} and the background is {bg}",
    "draw {obj} {pos} over {a_bg} backdrop",
    "{bg} colored background featuring {obj} {pos}",
    "{obj} sitting {pos} against {a_bg} background",
    "on {a_bg} background: {obj}, {pos}",
    "a simple illustration of {obj} placed {pos} on {bg}",
    "{bg} background and {obj} {pos}",
    "Show me {obj} {pos}. Background: {bg}.",
]
EVAL_POS = {
    "center": "in the centre", "top": "near the top edge", "bottom": "down at the bottom",
    "left": "on the left-hand side", "right": "towards the right",
    "top left": "in the top-left corner", "top right": "upper right corner",
    "bottom left": "in the bottom-left corner", "bottom right": "lower right corner",
}
SIZE_WORDS = ["", "large", "small", ""]


def eval_prompts(n=66):
    """Deterministic list of (prompt, expected-attributes).  Colours cycle
    fastest and shapes change every 11 prompts, so with n=66 every (colour,
    shape) pair occurs 6/len(SHAPES) times; positions, sizes and templates
    cycle independently of the shape."""
    import random
    rng = random.Random(2024)
    out = []
    for i in range(n):
        color = COLOR_NAMES[i % len(COLOR_NAMES)]
        shape = SHAPES[(i // len(COLOR_NAMES)) % len(SHAPES)]
        bg = rng.choice([c for c in COLOR_NAMES if c != color])
        pos = POSITION_NAMES[i % len(POSITION_NAMES)]
        size = SIZE_WORDS[i % len(SIZE_WORDS)]
        words = ([size] if size else []) + [color, shape]
        obj = article(words[0]) + " " + " ".join(words)
        t = EVAL_TEMPLATES[i % len(EVAL_TEMPLATES)]
        prompt = t.format(obj=obj, pos=EVAL_POS[pos], bg=bg, a_bg=article(bg) + " " + bg)
        out.append((prompt, {"color": color, "shape": shape, "background": bg, "position": pos}))
    return out


def evaluate_image_model(model_dir, steps=25, guidance=5.0, seeds=(0, 1), n_prompts=66,
                         grid=None, scheduler=None, batch=11, verbose=False):
    import torch
    from diffusers import StableDiffusionPipeline

    t0 = time.time()
    pipe = StableDiffusionPipeline.from_pretrained(model_dir)
    load_s = time.time() - t0
    if scheduler:
        import diffusers
        pipe.scheduler = getattr(diffusers, scheduler).from_config(pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    prompts = eval_prompts(n_prompts)
    keys = ["color", "shape", "background", "position"]
    hits = {k: 0 for k in keys}
    all_ok, total = 0, 0
    per_shape = {s: [0, 0] for s in SHAPES}
    images = []
    t1 = time.time()
    for seed in seeds:
        for b in range(0, len(prompts), batch):
            chunk = prompts[b:b + batch]
            gens = [torch.Generator().manual_seed(seed * 100000 + b + j) for j in range(len(chunk))]
            with torch.no_grad():
                imgs = pipe([p for p, _ in chunk], num_inference_steps=steps, guidance_scale=guidance,
                            generator=gens).images
            for (p, exp), img in zip(chunk, imgs):
                res = analyze(img)
                sc = score(res, exp)
                for k in keys:
                    hits[k] += sc[k]
                all_ok += all(sc.values())
                total += 1
                per_shape[exp["shape"]][0] += sc["shape"]
                per_shape[exp["shape"]][1] += 1
                images.append((img, p, sc))
                if verbose and not all(sc.values()):
                    print(f"  miss: {p!r} -> {({k: res[k] for k in keys})}")
    gen_s = time.time() - t1
    result = {k: hits[k] / total for k in keys}
    result["all_four"] = all_ok / total
    result["n_images"] = total
    result["per_shape"] = {s: v[0] / max(v[1], 1) for s, v in per_shape.items()}
    result["load_s"] = round(load_s, 3)
    result["s_per_image"] = round(gen_s / total, 3)
    result["settings"] = {"steps": steps, "guidance": guidance, "seeds": list(seeds),
                          "scheduler": type(pipe.scheduler).__name__}
    if grid:
        write_grid(images[:48], grid)
    return result


def write_grid(images, path, cols=8, scale=3):
    from PIL import Image
    w = 64 * scale
    rows = (len(images) + cols - 1) // cols
    g = Image.new("RGB", (cols * w, rows * w), (255, 255, 255))
    for i, (img, _, _) in enumerate(images):
        g.paste(img.resize((w, w), Image.NEAREST), ((i % cols) * w, (i // cols) * w))
    g.save(path)
    with open(os.path.splitext(path)[0] + ".txt", "w") as f:
        for i, (_, p, sc) in enumerate(images):
            f.write(f"{i // cols},{i % cols}\t{p}\t{'ok' if all(sc.values()) else 'miss: ' + ','.join(k for k, v in sc.items() if not v)}\n")


def evaluate_text_model():
    ev = os.path.join(REPO, "training", "text", "evaluate.py")
    md = os.path.join(REPO, "genmagic", "models", "tiny-text")
    if not (os.path.exists(ev) and os.path.isdir(md)):
        print("tiny-text: skipped (training/text/evaluate.py or genmagic/models/tiny-text not found)")
        return None
    try:
        spec = importlib.util.spec_from_file_location("tiny_text_evaluate", ev)
        mod = importlib.util.module_from_spec(spec)
        for p in (os.path.dirname(ev), REPO):
            if p not in sys.path:
                sys.path.insert(0, p)
        spec.loader.exec_module(mod)
        ppl = mod.heldout_perplexity(md)
    except Exception as e:  # another engineer's code; report, don't crash
        print(f"tiny-text: skipped ({type(e).__name__}: {e})")
        return None
    print(f"tiny-text: held-out perplexity {ppl}")
    return ppl


def evaluate_text_writing(seeds):
    """tiny-text's answers with the magic's defaults (bench/text_quality.py): length, loops,
    attribution endings, definitions, code."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import text_quality

    figures = text_quality.score(text_quality.generate_all(text_quality.MODEL, list(seeds)))
    figures.update(text_quality.load_stats(text_quality.MODEL))
    print(f"tiny-text ({figures['answers']} answers, seeds {list(seeds)}, the magic's defaults):")
    for k, v in figures.items():
        print(f"  {k:<28} {v:.3f}" if isinstance(v, float) else f"  {k:<28} {v}")
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "genmagic", "models", "tiny-image"))
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n-prompts", type=int, default=66)
    ap.add_argument("--scheduler", default=None, help="diffusers scheduler class name to swap in")
    ap.add_argument("--grid", default=None, help="sample grid path (default: MODEL/samples.png)")
    ap.add_argument("--no-grid", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures as JSON here")
    ap.add_argument("--skip-text", action="store_true")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    import torch
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1") or 1))

    out = {}
    if os.path.isdir(a.model):
        grid = None if a.no_grid else (a.grid or os.path.join(a.model, "samples.png"))
        r = evaluate_image_model(a.model, a.steps, a.guidance, tuple(a.seeds), a.n_prompts, grid,
                                 a.scheduler, verbose=a.verbose)
        out["tiny-image"] = r
        print(f"tiny-image ({r['n_images']} images, {r['settings']}):")
        for k in ["color", "shape", "background", "position", "all_four"]:
            print(f"  {k:<10} {100 * r[k]:5.1f} %")
        print("  shape accuracy by shape: " + ", ".join(f"{s} {100*v:.0f}%" for s, v in r["per_shape"].items()))
        print(f"  load {r['load_s']} s, {r['s_per_image']} s/image (batched, CPU)")
        if grid:
            print(f"  sample grid: {grid}")
    else:
        print(f"tiny-image: skipped ({a.model} not found)")
    if not a.skip_text:
        os.environ.setdefault("GENMAGIC_HOME", tempfile.mkdtemp(prefix="genmagic-bench-"))
        out["tiny-text"] = {"heldout_perplexity": evaluate_text_model(), **evaluate_text_writing(a.seeds)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
